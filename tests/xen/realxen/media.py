"""What the guests boot: the real Debian 12 installer, laid out every way a
scenario reaches it, made once per installer version in ``media-<key>/``.

* ``tftp/``: the unpacked netboot tree of the Debian package (its symbolic
  links followed, as a TFTP server serves them), with its own
  ``pxelinux.cfg/default`` and the menus it includes;
* ``www/``: what the HTTP server serves (NFS exports it too):
  the same tree as ``netboot/``; the installer pair as a Debian mirror
  (``debian/dists/bookworm/main/installer-amd64/``) and again below
  ``stall/`` (servers.py stalls its kernel); ``signed/``, a mirror whose
  ``InRelease`` and ``SHA256SUMS`` are signed with a key made here;
  ``signed-tampered/``, the same signed lists over a Xen ramdisk with one
  byte changed; ``iso/``, an ISO in Debian media layout made with xorriso;
* ``keys/``: the public key of ``signed/`` (no secret key is kept) and its
  fingerprint.

Files are hard links of one copy of each, so the whole is about 150 MB.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
from dataclasses import dataclass
from typing import Dict

from .scenarios import KEYRING, MIRROR, NETBOOT_TREE, NETBOOT_XEN, SIGNED, TAMPERED
from .steps import Missing, digest, fresh, link, need, prune, run

DI_PACKAGE = "debian-installer-12-netboot-amd64"
DI_TREE = "/usr/lib/debian-installer/images/12/amd64/text"
PAIR = {"linux": "debian-installer/amd64/linux", "initrd": "debian-installer/amd64/initrd.gz"}
ISO_NAME = "debian-12-netboot.iso"
SIGNER_ID = "xenpvnetboot real-Xen test archive <xen-test@example.org>"
#: The file of signed-tampered/ that differs from its signed list.
TAMPERED_FILE = f"{NETBOOT_XEN}/initrd.gz"
#: Bump to make the media again after a change of how they are made.
FORMAT = "2"


@dataclass(frozen=True)
class Media:
    root: str
    www: str
    tftp: str
    iso: str
    keyring: str
    #: The signing key's fingerprint as the bootloader prints it (groups of four).
    signer: str

    @classmethod
    def at(cls, root: str) -> "Media":
        keys = os.path.join(root, "keys")
        try:
            with open(os.path.join(keys, "fingerprint")) as handle:
                fingerprint = handle.read().strip().upper()
        except OSError:
            fingerprint = ""
        signer = " ".join(fingerprint[i:i + 4] for i in range(0, len(fingerprint), 4))
        return cls(root, os.path.join(root, "www"), os.path.join(root, "tftp"),
                   os.path.join(root, "www", "iso", ISO_NAME), os.path.join(keys, KEYRING), signer)

    def data_files(self) -> Dict[str, str]:
        """Files dom0 finds in {data}: name there -> path here."""
        return {KEYRING: self.keyring}


def copy_tree(source: str, target: str) -> None:
    """A copy of *source* whose symbolic links are followed (files and directories)."""
    for folder, _dirs, files in os.walk(source, followlinks=True):
        inside = os.path.join(target, os.path.relpath(folder, source))
        os.makedirs(inside, exist_ok=True)
        for name in files:
            shutil.copyfile(os.path.join(folder, name), os.path.join(inside, name))


def link_tree(source: str, target: str) -> None:
    """*source* again at *target*: files hard-linked, symbolic links as they are."""
    for folder, dirs, files in os.walk(source):
        inside = os.path.join(target, os.path.relpath(folder, source))
        os.makedirs(inside, exist_ok=True)
        for name in dirs + files:
            path = os.path.join(folder, name)
            if os.path.islink(path):
                os.symlink(os.readlink(path), os.path.join(inside, name))
            elif name in files:
                os.link(path, os.path.join(inside, name))


def harden_links(root: str) -> None:
    """Symbolic links to files below *root* become hard links (the build
    directory they point into is renamed when complete)."""
    for folder, _dirs, files in os.walk(root):
        for name in files:
            path = os.path.join(folder, name)
            if os.path.islink(path) and os.path.isfile(path):
                real = os.path.realpath(path)
                os.unlink(path)
                os.link(real, path)


def tamper(path: str) -> None:
    """Replace *path* (a hard link) by a copy with its middle byte changed."""
    with open(path, "rb") as handle:
        data = bytearray(handle.read())
    data[len(data) // 2] ^= 0xFF
    os.unlink(path)
    with open(path, "wb") as handle:
        handle.write(data)


def signed_mirror(www: str, keys: str, kernel: str, initrd: str) -> None:
    """``signed/`` and ``signed-tampered/`` below *www*; the public key in *keys*."""
    if importlib.util.find_spec("pysequoia") is None:
        raise Missing("needs the Python package pysequoia on the host (to sign the test mirror)")
    from support import pgp

    key = pgp.Key.make(SIGNER_ID)
    os.makedirs(keys)
    key.write_keyring(os.path.join(keys, KEYRING))
    with open(os.path.join(keys, "fingerprint"), "w") as handle:
        handle.write(key.fingerprint + "\n")
    pgp.build_mirror(os.path.join(www, SIGNED), key, kernel, initrd)
    harden_links(os.path.join(www, SIGNED))
    link_tree(os.path.join(www, SIGNED), os.path.join(www, TAMPERED))
    tamper(os.path.join(www, TAMPERED, TAMPERED_FILE))


def make_iso(build: str, www: str, pair: Dict[str, str], version: str, log: str) -> None:
    isotree = os.path.join(build, "isotree")
    link(pair["linux"], os.path.join(isotree, "install.amd", "vmlinuz"))
    link(pair["initrd"], os.path.join(isotree, "install.amd", "initrd.gz"))
    os.makedirs(os.path.join(isotree, ".disk"))
    with open(os.path.join(isotree, ".disk", "info"), "w") as handle:
        handle.write(f'Debian GNU/Linux 12 "Bookworm" - netboot amd64 (installer {version})')
    os.makedirs(os.path.join(www, "iso"))
    run([need("xorriso", "xorriso"), "-as", "mkisofs", "-R", "-J", "-V", "DEBIAN12", "-o",
         os.path.join(www, "iso", ISO_NAME), isotree], log)
    shutil.rmtree(isotree)


def guest_media(work: str, log: str) -> Media:
    need("xorriso", "xorriso")
    if not all(os.path.isfile(os.path.join(DI_TREE, rel)) for rel in PAIR.values()):
        raise Missing(f"needs the Debian installer (Debian package {DI_PACKAGE})")
    version = subprocess.run(["dpkg-query", "-W", "-f=${Version}", DI_PACKAGE],
                             capture_output=True, text=True).stdout
    key = digest(FORMAT, version, MIRROR, ISO_NAME, SIGNED, TAMPERED, NETBOOT_TREE)
    target = os.path.join(work, f"media-{key}")
    if os.path.exists(Media.at(target).iso):
        return Media.at(target)
    build = fresh(target + ".tmp")
    tftp, www = os.path.join(build, "tftp"), os.path.join(build, "www")
    copy_tree(DI_TREE, tftp)
    link_tree(tftp, os.path.join(www, NETBOOT_TREE))
    pair = {role: os.path.join(tftp, rel) for role, rel in PAIR.items()}
    for top in ("", "stall/"):  # stall/: the same mirror, its kernel stalls (servers.py)
        link(pair["linux"], os.path.join(www, top + NETBOOT_XEN, "vmlinuz"))
        link(pair["initrd"], os.path.join(www, top + NETBOOT_XEN, "initrd.gz"))
        netboot = os.path.join(www, top + MIRROR, "current/images/netboot/debian-installer/amd64")
        link(pair["linux"], os.path.join(netboot, "linux"))
        link(pair["initrd"], os.path.join(netboot, "initrd.gz"))
    signed_mirror(www, os.path.join(build, "keys"), pair["linux"], pair["initrd"])
    make_iso(build, www, pair, version, log)
    prune(work, "media-*", build)
    os.rename(build, target)
    return Media.at(target)
