"""The image chain: a real ISO (xorriso) holding the real Debian installer pair,
with signed checksum lists or signatures beside it, local and over http."""

from __future__ import annotations

import contextlib
import os
import shutil
from urllib.parse import unquote

import pytest

from support import env as test_env
from support.env import need_program
from support.http_server import TestHTTPServer
from support.images import build_iso
from support.pgp import Key, fetch_checked, pgp, sha256_file, write
from xenpvnetboot.containers import take_image
from xenpvnetboot.errors import BootError
from xenpvnetboot.layout import select_files
from xenpvnetboot.location import parse_location
from xenpvnetboot.transports import TransportOptions, open_url_tree
from xenpvnetboot.transports.base import ByteSource, OwningSource
from xenpvnetboot.transports.local import LocalSource, LocalTree
from xenpvnetboot.verify import Failed, KeyringData, NoChain, NoKey, Origin, Verified, Verifier
from xenpvnetboot.verify.images import BLOCK, CheckedSource, digest_source, sha256_source

OPTIONS = TransportOptions(timeout=5, retries=0)
KERNEL, INITRD = "install.amd/xen/vmlinuz", "install.amd/xen/initrd.gz"


@pytest.fixture(scope="module")
def iso_file(tmp_path_factory):
    """A Debian-media-like ISO holding the real installer pair."""
    pgp()
    need_program("xorriso", "xorriso")
    kernel, initrd = test_env.debian_installer_files()
    root = tmp_path_factory.mktemp("media")
    tree = root / "tree"
    os.makedirs(tree / "install.amd/xen")
    shutil.copy(kernel, tree / KERNEL)
    shutil.copy(initrd, tree / INITRD)
    return build_iso(str(tree), str(root / "debian-12.5.0-amd64-netinst.iso"), "rockridge")


@pytest.fixture
def media(tmp_path, iso_file):
    """A fresh directory holding a copy of the ISO, and a server for it."""
    directory = tmp_path / "iso"
    directory.mkdir()
    iso = str(directory / os.path.basename(iso_file))
    shutil.copy(iso_file, iso)
    server = TestHTTPServer(str(directory)).start()
    yield iso, server
    server.stop()


def _open(location: str, verifier: Verifier, stack: contextlib.ExitStack):
    """What location.open_location does for an image, with the verifier's hook in place."""
    if location.startswith("http://"):
        parsed = parse_location(location)
        parent = open_url_tree(parsed.parent(), OPTIONS)
        name = unquote(parsed.name)
        source: ByteSource = OwningSource(parent.open_source(name), parent)
        source = verifier.image_hook(parent, name, source, remote=True)
    else:
        parent = stack.enter_context(LocalTree(os.path.dirname(location)))
        source = verifier.image_hook(parent, os.path.basename(location), LocalSource(location), remote=False)
    return stack.enter_context(take_image(source, OPTIONS))


def _check(location, key, policy="auto", dry_run=False):
    keyrings = [KeyringData("test", key.public)] if key is not None else []
    verifier = Verifier(policy, keyrings, fallback=None, dry_run=dry_run)
    stack = contextlib.ExitStack()
    tree = _open(location, verifier, stack)
    selection = select_files(tree, KERNEL, INITRD, OPTIONS, stack)
    report = verifier.check(selection, [Origin(parse_location(location), tree, lambda loc: pytest.fail("no climbing"))])
    return report, selection, stack


def _fedora_checksum(key: Key, iso: str) -> None:
    name = os.path.basename(iso)
    text = (f"# {name}: {os.path.getsize(iso)} bytes\n"
            f"SHA256 ({name}) = {sha256_file(iso)}\n").encode()
    write(os.path.join(os.path.dirname(iso), "CHECKSUM"), key.clearsign(text))


def _debian_sums(key: Key, iso: str, signature: str = "SHA256SUMS.sign") -> None:
    directory = os.path.dirname(iso)
    text = f"{'1' * 64}  debian-edu-12.5.0-amd64-netinst.iso\n{sha256_file(iso)}  {os.path.basename(iso)}\n"
    write(os.path.join(directory, "SHA256SUMS"), text.encode())
    write(os.path.join(directory, signature), key.detach(text.encode()))


def test_local_iso_with_clearsigned_checksum(media, tmp_path):
    iso, _ = media
    key = Key.make("CentOS Official Signing Key <security@centos.org>")
    _fedora_checksum(key, iso)
    report, selection, stack = _check(iso, key)
    with stack:
        verdict = report.verdict("kernel")
        assert isinstance(verdict, Verified), report.lines()
        assert verdict.chain == (os.path.join(os.path.dirname(iso), "CHECKSUM"), iso)
        assert verdict.sha256 is None  # covered by the image's hash
        assert report.verdict("ramdisk") == verdict
        report.enforce("require", pytest.fail)
        got = fetch_checked(report.apply(selection), str(tmp_path))
        assert sha256_file(got["kernel"]) == sha256_file(test_env.debian_installer_files()[0])


@pytest.mark.parametrize("signature", ["SHA256SUMS.sign", "SHA256SUMS.gpg"])
def test_remote_iso_with_detached_sums_under_require(media, tmp_path, signature):
    iso, server = media
    key = Key.make("Debian CD signing key <debian-cd@lists.debian.org>")
    _debian_sums(key, iso, signature)
    report, selection, stack = _check(server.url(os.path.basename(iso)), key, policy="require")
    with stack:
        verdict = report.verdict("kernel")
        assert isinstance(verdict, Verified), report.lines()
        assert verdict.chain[0] == server.url("SHA256SUMS")
        whole = [r for r in server.requests if r[0] == "GET" and r[1].endswith(".iso")]
        assert any(r[2] == f"bytes=0-{os.path.getsize(iso) - 1}" for r in whole)  # one hashing pass
        got = fetch_checked(report.apply(selection), str(tmp_path))
        assert sha256_file(got["ramdisk"]) == sha256_file(test_env.debian_installer_files()[1])


def test_remote_iso_under_auto_is_not_downloaded_whole(media):
    iso, server = media
    key = Key.make()
    _debian_sums(key, iso)
    report, _, stack = _check(server.url(os.path.basename(iso)), key, policy="auto")
    with stack:
        verdict = report.verdict("kernel")
        assert isinstance(verdict, NoChain) and "--verify=require" in verdict.reason
        assert server.bytes_sent < os.path.getsize(iso) // 2
        assert not any(r[1].endswith("SHA256SUMS") for r in server.requests)


def test_dry_run_checks_the_list_but_does_not_hash(media):
    iso, server = media
    key = Key.make()
    _debian_sums(key, iso)
    report, _, stack = _check(server.url(os.path.basename(iso)), key, policy="require", dry_run=True)
    with stack:
        verdict = report.verdict("kernel")
        assert isinstance(verdict, Verified) and sha256_file(iso) in verdict.note
        assert "not hashed in a dry run" in report.lines()[0]
        assert server.bytes_sent < os.path.getsize(iso) // 2


def test_alpine_signature_over_the_iso(media):
    iso, server = media
    key = Key.make("Natanael Copa <ncopa@alpinelinux.org>")
    with open(iso, "rb") as handle:
        write(iso + ".asc", key.detach(handle.read()))
    for location, policy in ((iso, "auto"), (server.url(os.path.basename(iso)), "require")):
        report, _, stack = _check(location, key, policy)
        with stack:
            verdict = report.verdict("kernel")
            assert isinstance(verdict, Verified), report.lines()
            assert verdict.chain[0].endswith(".iso.asc") and verdict.signer.fingerprint == key.fingerprint


def test_iso_whose_hash_differs_from_the_signed_list_fails(media):
    iso, _ = media
    key = Key.make()
    _fedora_checksum(key, iso)
    with open(iso, "r+b") as handle:  # the image changed after it was signed
        handle.seek(os.path.getsize(iso) - 1)
        handle.write(b"\x01")
    report, _, stack = _check(iso, key)
    with stack:
        verdict = report.verdict("kernel")
        assert isinstance(verdict, Failed) and verdict.reason.startswith(f"{iso}: SHA-256 is")
        with pytest.raises(BootError, match="debian-12.5.0-amd64-netinst.iso: SHA-256 is"):
            report.enforce("auto", lambda line: None)


def test_tampered_checksum_list_fails(media):
    iso, _ = media
    key = Key.make()
    _debian_sums(key, iso)
    sums = os.path.join(os.path.dirname(iso), "SHA256SUMS")
    with open(sums, "rb") as handle:
        data = handle.read()
    write(sums, data.replace(b"1111", b"2222"))
    report, _, stack = _check(iso, key)
    with stack:
        verdict = report.verdict("kernel")
        assert isinstance(verdict, Failed) and "SHA256SUMS: bad signature" in verdict.reason


def test_iso_signed_by_an_unknown_key(media):
    iso, _ = media
    _fedora_checksum(Key.make(), iso)
    report, _, stack = _check(iso, Key.make())
    with stack:
        assert isinstance(report.verdict("kernel"), NoKey)
        with pytest.raises(BootError, match="not verified"):
            report.enforce("require", lambda line: None)


def test_iso_without_anything_signed(media):
    iso, _ = media
    write(os.path.join(os.path.dirname(iso), "SHA256SUMS"), f"{sha256_file(iso)}  {os.path.basename(iso)}\n".encode())
    report, _, stack = _check(iso, Key.make())
    with stack:
        verdict = report.verdict("kernel")
        assert isinstance(verdict, NoChain) and "not signed" in verdict.reason


def test_remote_iso_changed_after_the_hashing_pass_is_caught(media, tmp_path):
    iso, server = media
    key = Key.make()
    _debian_sums(key, iso)
    report, selection, stack = _check(server.url(os.path.basename(iso)), key, policy="require")
    with stack:
        assert isinstance(report.verdict("kernel"), Verified)
        with open(iso, "r+b") as handle:  # the server now serves other bytes
            data = bytearray(handle.read())
            at = data.index(open(test_env.debian_installer_files()[0], "rb").read(4096))
            handle.seek(at + 100)
            handle.write(b"\x00" * 16)
        with pytest.raises(BootError, match="differ from the image that was verified"):
            fetch_checked(report.apply(selection), str(tmp_path))


# -- the streaming hash itself ---------------------------------------------------

class _Memory(ByteSource):
    def __init__(self, data: bytes) -> None:
        self.data = bytearray(data)
        self.name = "memory"
        self.reads = 0

    @property
    def size(self) -> int:
        return len(self.data)

    def pread(self, offset: int, length: int) -> bytes:
        self.reads += 1
        return bytes(self.data[offset:offset + length])


@pytest.mark.parametrize("size", [0, 1, BLOCK - 1, BLOCK, 3 * BLOCK + 17])
def test_digest_source_matches_hashlib(size):
    import hashlib

    data = os.urandom(size)
    digest = digest_source(_Memory(data), blocks=True)
    assert digest.sha256 == hashlib.sha256(data).hexdigest() == sha256_source(_Memory(data))
    assert len(digest.blocks) == -(-size // BLOCK)


def test_checked_source_reads_match_and_detect_changes():
    data = os.urandom(5 * BLOCK + 123)
    memory = _Memory(data)
    checked = CheckedSource(memory, digest_source(memory, blocks=True))
    for offset, length in ((0, 10), (BLOCK - 5, 10), (4 * BLOCK, 2 * BLOCK), (0, len(data) + 50)):
        assert checked.pread(offset, length) == data[offset:offset + length]
    reads = memory.reads
    assert checked.pread(3, 7) == data[3:10] and memory.reads == reads  # small reads are cached
    memory.data[4 * BLOCK + 9] ^= 1
    with pytest.raises(BootError, match="differ from the image that was verified"):
        checked.copy_range(4 * BLOCK, 100, _sink())


def _sink():
    import io

    from xenpvnetboot.transports import Sink

    return Sink(io.BytesIO(), "out")
