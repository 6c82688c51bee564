"""The Debian mirror chain end to end: a mirror laid out here, served over http
on 127.0.0.1, holding the real Debian 12 installer files, signed with keys made
in the test; the files are then fetched through the boot's streaming check."""

from __future__ import annotations

import contextlib
import os
import shutil

import pytest

from support import env as test_env
from support.http_server import TestHTTPServer
from support.pgp import (DATED, Key, build_mirror, fetch_checked, pgp, sha256_file, sign_release,
                         write)
from xenpvnetboot.errors import BootError
from xenpvnetboot.layout import select_files
from xenpvnetboot.location import open_location, parse_location
from xenpvnetboot.transports import TransportOptions
from xenpvnetboot.verify import (Failed, KeyringData, NoChain, NoKey, Origin, Verified, Verifier)

OPTIONS = TransportOptions(timeout=5, retries=0)
INSTALLER = "debian/dists/bookworm/main/installer-amd64"


@pytest.fixture
def real_pair():
    pgp()
    return test_env.debian_installer_files()


@pytest.fixture
def key():
    return Key.make("Test Archive Automatic Signing Key <ftpmaster@example.org>")


@pytest.fixture
def served(tmp_path):
    servers = []

    def serve(root):
        server = TestHTTPServer(str(root)).start()
        servers.append(server)
        return server

    yield serve
    for server in servers:
        server.stop()


def _check(server, key_or_none, location=INSTALLER, kernel=None, ramdisk=None, policy="auto"):
    """Open the location, choose the files, run the chain; return (report, selection, stack).

    *key_or_none*: the installed key (a Key, a certificate's bytes, or None).
    """
    stack = contextlib.ExitStack()
    spec = server.url(location)
    tree = stack.enter_context(open_location(spec, OPTIONS))
    selection = select_files(tree, kernel, ramdisk, OPTIONS, stack, arch="x86_64")
    public = key_or_none.public if isinstance(key_or_none, Key) else key_or_none
    keyrings = [KeyringData("test", public)] if public is not None else []
    verifier = Verifier(policy, keyrings, fallback=None)
    report = verifier.check(selection, [Origin(parse_location(spec), tree, lambda loc: open_location(loc, OPTIONS))])
    return report, selection, stack


def _gets(server):
    return [path for method, path, _ in server.requests if method == "GET"]


def test_inrelease_chain_verifies_and_boots(tmp_path, served, key, real_pair):
    kernel, initrd = real_pair
    build_mirror(str(tmp_path), key, kernel, initrd)
    server = served(tmp_path)
    report, selection, stack = _check(server, key)
    with stack:
        kv, rv = report.verdict("kernel"), report.verdict("ramdisk")
        assert isinstance(kv, Verified) and isinstance(rv, Verified)
        assert kv.sha256 == sha256_file(kernel) and rv.sha256 == sha256_file(initrd)
        assert kv.signer.fingerprint == key.fingerprint
        assert kv.signer.owner == "Test Archive Automatic Signing Key <ftpmaster@example.org>"
        assert kv.chain == (server.url("debian/dists/bookworm/InRelease"),
                            server.url(f"{INSTALLER}/current/images/SHA256SUMS"))
        assert "Verified kernel" in report.lines()[0] and key.fingerprint[:4].upper() in report.lines()[0]
        # two small files added: InRelease and one SHA256SUMS for both files
        lists = [p for p in _gets(server) if p.endswith(("InRelease", "SHA256SUMS"))]
        assert sorted(lists) == ["/debian/dists/bookworm/InRelease",
                                 f"/{INSTALLER}/current/images/SHA256SUMS"]
        report.enforce("require", pytest.fail)
        applied = report.apply(selection)
        assert applied.kernel.sha256 == kv.sha256
        out = tmp_path / "out"
        out.mkdir()
        got = fetch_checked(applied, str(out))
        assert sha256_file(got["kernel"]) == kv.sha256 and sha256_file(got["ramdisk"]) == rv.sha256


def test_release_with_detached_release_gpg(tmp_path, served, key, real_pair):
    build_mirror(str(tmp_path), key, *real_pair, signing="detached")
    server = served(tmp_path)
    report, _, stack = _check(server, key)
    with stack:
        verdict = report.verdict("kernel")
        assert isinstance(verdict, Verified), verdict
        assert verdict.chain[0] == server.url("debian/dists/bookworm/Release")
        assert "/debian/dists/bookworm/InRelease" in _gets(server)  # tried first, 404


def test_html_page_for_a_missing_inrelease_is_no_inrelease(tmp_path, served, key, real_pair):
    suite = build_mirror(str(tmp_path), key, *real_pair, signing="detached")
    write(os.path.join(suite, "InRelease"), b"<!DOCTYPE html><html><body>Not here</body></html>\n")
    server = served(tmp_path)
    report, _, stack = _check(server, key)
    with stack:
        verdict = report.verdict("kernel")
        assert isinstance(verdict, Verified) and verdict.chain[0].endswith("/Release")


@pytest.mark.parametrize("location, files, sums", [
    (f"{INSTALLER}/current/images", (None, None), f"{INSTALLER}/current/images/SHA256SUMS"),
    (f"{INSTALLER}/{DATED}/images/netboot", (None, None), f"{INSTALLER}/{DATED}/images/SHA256SUMS"),
    (f"{INSTALLER}/current/images/netboot/xen", ("vmlinuz", "initrd.gz"),
     f"{INSTALLER}/current/images/SHA256SUMS"),
])
def test_any_directory_below_the_suite(tmp_path, served, key, real_pair, location, files, sums):
    build_mirror(str(tmp_path), key, *real_pair)
    server = served(tmp_path)
    report, _, stack = _check(server, key, location, *files)
    with stack:
        verdict = report.verdict("kernel")
        assert isinstance(verdict, Verified), verdict
        assert verdict.chain[-1] == server.url(sums)


def test_location_above_dists_with_named_files(tmp_path, served, key, real_pair):
    build_mirror(str(tmp_path), key, *real_pair)
    server = served(tmp_path)
    base = "dists/bookworm/main/installer-amd64/current/images/netboot/xen"
    report, _, stack = _check(server, key, location="debian", kernel=f"{base}/vmlinuz",
                              ramdisk=f"{base}/initrd.gz")
    with stack:
        assert all(isinstance(f.verdict, Verified) for f in report.files), report.lines()


def test_tampered_kernel_fails_while_streaming(tmp_path, served, key, real_pair):
    kernel, initrd = real_pair
    build_mirror(str(tmp_path), key, kernel, initrd, copy=True)
    target = tmp_path / INSTALLER / DATED / "images/netboot/xen/vmlinuz"
    data = bytearray(target.read_bytes())
    data[len(data) // 2] ^= 0xFF
    target.write_bytes(bytes(data))
    server = served(tmp_path)
    report, selection, stack = _check(server, key)
    with stack:
        assert isinstance(report.verdict("kernel"), Verified)  # the list is genuine
        out = tmp_path / "out"
        out.mkdir()
        with pytest.raises(BootError, match=r"netboot/xen/vmlinuz: SHA-256 is [0-9a-f]+, expected"):
            fetch_checked(report.apply(selection), str(out))


def test_tampered_sha256sums_fails_under_auto(tmp_path, served, key, real_pair):
    build_mirror(str(tmp_path), key, *real_pair)
    sums = tmp_path / INSTALLER / DATED / "images/SHA256SUMS"
    sums.write_bytes(sums.read_bytes().replace(b"./netboot/xen/vmlinuz", b"./netboot/xen/vmlinuX"))
    server = served(tmp_path)
    report, _, stack = _check(server, key)
    with stack:
        verdict = report.verdict("kernel")
        assert isinstance(verdict, Failed)
        assert server.url(f"{INSTALLER}/current/images/SHA256SUMS") in verdict.reason
        assert "InRelease lists" in verdict.reason
        with pytest.raises(BootError, match="SHA256SUMS: SHA-256 is"):
            report.enforce("auto", lambda line: None)


def test_tampered_inrelease_fails(tmp_path, served, key, real_pair):
    suite = build_mirror(str(tmp_path), key, *real_pair)
    path = os.path.join(suite, "InRelease")
    with open(path, "rb") as handle:
        data = handle.read()
    write(path, data.replace(b"Codename: bookworm", b"Codename: bookwork"))
    server = served(tmp_path)
    report, _, stack = _check(server, key)
    with stack:
        verdict = report.verdict("ramdisk")
        assert isinstance(verdict, Failed) and "bad signature" in verdict.reason
        with pytest.raises(BootError, match="InRelease: bad signature"):
            report.enforce("auto", lambda line: None)


@pytest.mark.parametrize("which", ["wrong", "none"])
def test_missing_key_auto_warns_require_refuses(tmp_path, served, key, real_pair, which):
    build_mirror(str(tmp_path), key, *real_pair)
    server = served(tmp_path)
    installed = Key.make() if which == "wrong" else None
    report, _, stack = _check(server, installed)
    with stack:
        verdict = report.verdict("kernel")
        assert isinstance(verdict, NoKey)
        warnings = []
        report.enforce("auto", warnings.append)
        # one line for both files: they are unverified for the same reason
        assert len(warnings) == 1 and "--keyring" in warnings[0]
        assert "kernel" in warnings[0] and "ramdisk" in warnings[0]
        with pytest.raises(BootError, match="vmlinuz: not verified .*--verify=require refuses it"):
            report.enforce("require", warnings.append)


def test_expired_key_fails(tmp_path, served, key, real_pair):
    import datetime

    build_mirror(str(tmp_path), key, *real_pair)
    server = served(tmp_path)
    expired = key.expired_at(datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(seconds=30))
    report, _, stack = _check(server, expired)
    with stack:
        verdict = report.verdict("kernel")
        assert isinstance(verdict, Failed) and "expired on" in verdict.reason


def test_unsigned_release_is_no_chain(tmp_path, served, key, real_pair):
    build_mirror(str(tmp_path), None, *real_pair, signing="none")
    server = served(tmp_path)
    report, _, stack = _check(server, key)
    with stack:
        verdict = report.verdict("kernel")
        assert isinstance(verdict, NoChain) and "not signed (no Release.gpg" in verdict.reason
        with pytest.raises(BootError, match="not verified"):
            report.enforce("require", lambda line: None)


@pytest.mark.parametrize("resign, reason", [
    ({"suite": "bullseye"}, "not of dists/bookworm"),  # a genuine Release of another suite
    ({"extra": "Valid-Until: Sat, 17 Feb 2024 10:46:46 UTC"}, "Valid-Until"),  # a replayed old one
])
def test_genuine_but_wrong_release_fails(tmp_path, served, key, real_pair, resign, reason):
    suite = build_mirror(str(tmp_path), key, *real_pair)
    sign_release(suite, key, **resign)
    server = served(tmp_path)
    report, _, stack = _check(server, key)
    with stack:
        verdict = report.verdict("kernel")
        assert isinstance(verdict, Failed) and reason in verdict.reason


def test_file_missing_from_the_signed_list(tmp_path, served, key, real_pair):
    suite = build_mirror(str(tmp_path), key, *real_pair)
    sums = os.path.join(suite, "main/installer-amd64", DATED, "images/SHA256SUMS")
    with open(sums, "rb") as handle:
        kept = b"".join(line for line in handle if b"netboot/xen/initrd.gz" not in line)
    write(sums, kept)
    sign_release(suite, key)
    server = served(tmp_path)
    report, _, stack = _check(server, key)
    with stack:
        assert isinstance(report.verdict("kernel"), Verified)
        verdict = report.verdict("ramdisk")
        assert isinstance(verdict, NoChain) and "is not listed in" in verdict.reason


def test_hostile_sums_with_duplicate_entries_fail(tmp_path, served, key, real_pair):
    evil = "0" * 64 + "  ./netboot/xen/vmlinuz\n"
    build_mirror(str(tmp_path), key, *real_pair, extra_sums=[evil])
    server = served(tmp_path)
    report, _, stack = _check(server, key)
    with stack:
        verdict = report.verdict("kernel")
        assert isinstance(verdict, Failed) and "two different SHA-256" in verdict.reason


def test_endless_inrelease_is_bounded(tmp_path, served, key, real_pair):
    build_mirror(str(tmp_path), key, *real_pair)
    server = served(tmp_path)
    server.faults["/debian/dists/bookworm/InRelease"] = "endless"
    with pytest.raises(BootError, match="InRelease: more than 8388608 bytes"):
        _check(server, key)


def test_netboot_tree_outside_dists_has_no_chain(tmp_path, served, key, real_pair):
    kernel, initrd = real_pair
    tree = tmp_path / "netboot" / "debian-installer" / "amd64"
    tree.mkdir(parents=True)
    shutil.copy(kernel, tree / "linux")
    shutil.copy(initrd, tree / "initrd.gz")
    server = served(tmp_path)
    report, _, stack = _check(server, key, location="netboot")
    with stack:
        verdict = report.verdict("kernel")
        assert isinstance(verdict, NoChain) and "no signed checksum list is known" in verdict.reason


def test_treeinfo_tree_says_it_has_no_signature(tmp_path, served, key, real_pair):
    kernel, initrd = real_pair
    root = tmp_path / "fedora"
    (root / "images/pxeboot").mkdir(parents=True)
    shutil.copy(kernel, root / "images/pxeboot/vmlinuz")
    shutil.copy(initrd, root / "images/pxeboot/initrd.img")
    (root / ".treeinfo").write_text(
        "[general]\nfamily = Fedora\nversion = 40\narch = x86_64\n"
        "[images-x86_64]\nkernel = images/pxeboot/vmlinuz\ninitrd = images/pxeboot/initrd.img\n"
        f"[checksums]\nimages/pxeboot/vmlinuz = sha256:{sha256_file(kernel)}\n")
    server = served(tmp_path)
    report, selection, stack = _check(server, key, location="fedora")
    with stack:
        verdict = report.verdict("kernel")
        assert isinstance(verdict, NoChain) and ".treeinfo trees carry no signature" in verdict.reason
        assert report.apply(selection).kernel.sha256 == sha256_file(kernel)  # .treeinfo's hash stays


def test_both_lists_in_one_round_trip_on_the_locations_connections(tmp_path, key, real_pair):
    """The InRelease and the likely SHA256SUMS are asked together, and the
    suite directory's tree reuses the location's connections (a new tree of
    its own would open new ones: a round trip more, two or three with TLS)."""
    from support.layout_trees import TreeServer

    from xenpvnetboot.transports.curl.pool import MAX_HOST_CONNECTIONS

    build_mirror(str(tmp_path), key, *real_pair)
    server = TreeServer(str(tmp_path), directories="403", quiet=0.3).start()
    try:
        report, _, stack = _check(server, key)
        with stack:
            assert isinstance(report.verdict("kernel"), Verified)
            assert isinstance(report.verdict("ramdisk"), Verified)
        lists = [batch for _, path, batch in server.log if path.endswith(("InRelease", "SHA256SUMS"))]
        assert len(lists) == 2 and lists[0] == lists[1], server.log
        assert server.connections <= MAX_HOST_CONNECTIONS
    finally:
        server.stop()


@pytest.mark.parametrize("rel, sums", [
    ("main/installer-amd64/current/images/netboot/xen/vmlinuz",
     "main/installer-amd64/current/images/SHA256SUMS"),
    ("main/installer-amd64/current/legacy-images/netboot/ubuntu-installer/amd64/linux",
     "main/installer-amd64/current/legacy-images/SHA256SUMS"),
    ("main/images/x/images/linux", "main/images/x/images/SHA256SUMS"),
    ("main/installer-amd64/current/netboot/linux", None),
    ("images", None),
])
def test_the_likely_sums_of_a_file(rel, sums):
    from xenpvnetboot.verify.debian import likely_sums

    assert likely_sums(rel) == sums
