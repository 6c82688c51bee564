"""OpenPGP keys and signatures made in the tests, with pysequoia itself.

Keys are Ed25519 (fast to make); each test gets fresh ones, so no secret key
is ever stored in the repository.  pysequoia cannot backdate a signature, so
"a key that expired after it signed" is made by signing first and setting an
expiry in the past afterwards (see :meth:`Key.expired_at`).
"""

from __future__ import annotations

import datetime
import hashlib
import os
from dataclasses import dataclass
from typing import Dict, Iterable, Optional, Tuple

import pytest

from .libxl import sha256_file


def pgp():
    return pytest.importorskip("pysequoia", reason="needs the Python package pysequoia")


@dataclass
class Key:
    tsk: object
    cert: object

    @classmethod
    def make(cls, user_id: str = "Test Archive Key <archive@example.org>") -> "Key":
        ps = pgp()
        tsk = ps.Tsk.generate(user_id)
        return cls(tsk, tsk.extract_certificate())

    @property
    def fingerprint(self) -> str:
        return self.cert.fingerprint

    @property
    def public(self) -> bytes:
        return bytes(self.cert)

    def write_keyring(self, path: str, armored: bool = False) -> str:
        with open(path, "wb") as handle:
            handle.write(str(self.cert).encode() if armored else self.public)
        return path

    def clearsign(self, data: bytes) -> bytes:
        ps = pgp()
        return ps.sign(self.tsk.signer(), data, mode=ps.SignatureMode.CLEAR)

    def detach(self, data: bytes, armor: bool = True) -> bytes:
        ps = pgp()
        return ps.sign(self.tsk.signer(), data, mode=ps.SignatureMode.DETACHED, armor=armor)

    def expired_at(self, when: datetime.datetime) -> bytes:
        """The public certificate with its expiry moved to *when* (may be past)."""
        return bytes(self.cert.set_expiration(when, self.tsk.certifier()))

    def revoked(self) -> bytes:
        """The public certificate with a revocation signature appended."""
        return self.public + bytes(self.cert.revoke(self.tsk.certifier()))


def write(path: str, data: bytes) -> str:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as handle:
        handle.write(data)
    return path


def release_text(entries: Dict[str, Tuple[str, int]], suite: str = "bookworm",
                 extra: str = "") -> bytes:
    """A Release file in Debian's layout listing *entries* (path -> (sha256, size))."""
    lines = ["Origin: Debian", "Label: Debian", "Suite: stable", "Version: 12.5",
             f"Codename: {suite}", "Date: Sat, 10 Feb 2024 10:46:46 UTC",
             "Architectures: all amd64", "Components: main"]
    if extra:
        lines.append(extra)
    lines.append("MD5Sum:")
    lines += [f" {'0' * 32} {size:>16} {path}" for path, (_, size) in sorted(entries.items())]
    lines.append("SHA256:")
    lines += [f" {digest} {size:>16} {path}" for path, (digest, size) in sorted(entries.items())]
    return ("\n".join(lines) + "\n").encode()


#: The installer files of the test mirror, below images/ -> source file.
NETBOOT = ("netboot/xen/vmlinuz", "netboot/xen/initrd.gz",
           "netboot/debian-installer/amd64/linux", "netboot/debian-installer/amd64/initrd.gz")
DATED = "20230607+deb12u5"


def build_mirror(root: str, key: Optional[Key], kernel: str, initrd: str, *,
                 signing: str = "inrelease", suite: str = "bookworm",
                 copy: bool = False, extra_sums: Iterable[str] = (), filler: int = 0) -> str:
    """A Debian mirror below *root*: returns the ``dists/<suite>`` directory.

    ``dists/<suite>/main/installer-amd64/<DATED>/images/`` holds the netboot
    files (symlinks to the real ones unless *copy*), its SHA256SUMS, and
    ``current`` links to it, as on the real mirrors.  *signing* is
    ``inrelease`` (clearsigned), ``detached`` (Release + Release.gpg) or
    ``none`` (a Release alone).  *filler* adds that many index entries to
    the Release, as the real one has (~770, for ~150 KiB).
    """
    suite_dir = os.path.join(root, "debian", "dists", suite)
    images = os.path.join(suite_dir, "main", "installer-amd64", DATED, "images")
    for rel in NETBOOT:
        source = kernel if rel.endswith(("vmlinuz", "linux")) else initrd
        target = os.path.join(images, rel)
        os.makedirs(os.path.dirname(target), exist_ok=True)
        if copy:
            with open(source, "rb") as src, open(target, "wb") as dst:
                dst.write(src.read())
        else:
            os.symlink(source, target)
    os.symlink(DATED, os.path.join(suite_dir, "main", "installer-amd64", "current"))
    sums = "".join(f"{sha256_file(os.path.join(images, rel))}  ./{rel}\n" for rel in NETBOOT)
    sums += "".join(extra_sums)
    write(os.path.join(images, "SHA256SUMS"), sums.encode())
    sign_release(suite_dir, key, signing, suite, filler=filler)
    return suite_dir


def sign_release(suite_dir: str, key: Optional[Key], signing: str = "inrelease",
                 suite: str = "bookworm", extra: str = "", filler: int = 0) -> bytes:
    """(Re)write the Release of *suite_dir* from the SHA256SUMS files below it."""
    entries: Dict[str, Tuple[str, int]] = {
        f"main/binary-arch{i}/Packages.xz": (hashlib.sha256(b"%d" % i).hexdigest(), 1000 + i)
        for i in range(filler)
    }
    for version in (DATED, "current"):
        rel = f"main/installer-amd64/{version}/images/SHA256SUMS"
        full = os.path.join(suite_dir, rel)
        entries[rel] = (sha256_file(full), os.path.getsize(full))
    text = release_text(entries, suite, extra)
    for name in ("InRelease", "Release", "Release.gpg"):
        path = os.path.join(suite_dir, name)
        if os.path.exists(path):
            os.unlink(path)
    if signing == "inrelease":
        assert key is not None
        write(os.path.join(suite_dir, "InRelease"), key.clearsign(text))
    else:
        write(os.path.join(suite_dir, "Release"), text)
        if signing == "detached":
            assert key is not None
            write(os.path.join(suite_dir, "Release.gpg"), key.detach(text))
    return text


def fetch_checked(selection, directory: str) -> Dict[str, str]:
    """Stream the selected files through the boot's Sink with their expected
    SHA-256 (``FileRef.sha256``), as the boot does; return role -> path."""
    from xenpvnetboot.transports import Sink

    paths: Dict[str, str] = {}
    for role, ref in (("kernel", selection.kernel), ("ramdisk", selection.ramdisk)):
        if ref is None:
            continue
        path = os.path.join(directory, role)
        with open(path, "wb") as handle:
            ref.tree.fetch(ref.path, Sink(handle, ref.url, sha256=ref.sha256))
        paths[role] = path
    return paths


__all__ = ["DATED", "fetch_checked", "Key", "NETBOOT", "build_mirror", "pgp", "release_text", "sha256_file",
           "sign_release", "write"]
