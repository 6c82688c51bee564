"""The signed-list parsers, path logic and verdict model: pure, no network, no keys."""

from __future__ import annotations

import hashlib
from datetime import datetime, timezone

import pytest

from xenpvnetboot.errors import BootError, UsageError
from xenpvnetboot.layouts.model import FileRef, Selection
from xenpvnetboot.transports.local import LocalTree
from xenpvnetboot.location import parse_location
from xenpvnetboot.verify import (Failed, NoChain, NoKey, Report, Signer, Verified, location_parts,
                                 parse_policy)
from xenpvnetboot.verify.debian import nearest_sums, suite_path
from xenpvnetboot.verify.images import checksum_lists, image_signatures
from xenpvnetboot.verify.lists import (MAX_LIST_SIZE, ListError, list_path, parse_release,
                                       parse_sums)
from xenpvnetboot.verify.model import FileVerdict

A = "a" * 64
B = "b" * 64
C = "c" * 64


# -- SHA256SUMS / CHECKSUM ------------------------------------------------------

def test_gnu_list_as_debian_writes_it():
    data = f"{A}  ./netboot/xen/vmlinuz\n{B}  ./netboot/xen/initrd.gz\n".encode()
    assert parse_sums(data, "S") == {"netboot/xen/vmlinuz": A, "netboot/xen/initrd.gz": B}


def test_gnu_binary_marker_and_upper_case_hex():
    data = f"{A.upper()} *ubuntu-22.04.4-live-server-amd64.iso\n".encode()
    assert parse_sums(data, "S") == {"ubuntu-22.04.4-live-server-amd64.iso": A}


def test_bsd_list_as_fedora_writes_it():
    data = (b"# Fedora-Server-netinst-x86_64-40-1.14.iso: 2612854784 bytes\n"
            + f"SHA256 (Fedora-Server-netinst-x86_64-40-1.14.iso) = {A}\n".encode()
            + f"SHA512 (Fedora-Server-netinst-x86_64-40-1.14.iso) = {'d' * 128}\n".encode())
    assert parse_sums(data, "C") == {"Fedora-Server-netinst-x86_64-40-1.14.iso": A}


def test_crlf_lines_and_bom():
    data = f"\ufeff{A}  x.iso\r\nSHA256 (y.iso) = {B}\r\n".encode()
    assert parse_sums(data, "S") == {"x.iso": A, "y.iso": B}


def test_malformed_lines_are_skipped():
    data = (b"garbage\n" + f"{A[:-1]}  short.iso\n".encode() + f"{A}x  long.iso\n".encode()
            + f"{A}\tnotab.iso\n".encode() + b"SHA256 (unterminated = " + A.encode() + b"\n"
            + b"\xff\xfe\x00binary\n" + f"{'z' * 64}  nothex.iso\n".encode()
            + f"{B}  good.iso\n".encode() + b"x" * 5000 + b"\n")
    assert parse_sums(data, "S") == {"good.iso": B}


def test_duplicate_with_same_hash_is_fine():
    data = f"{A}  ./x\n{A}  x\n".encode()
    assert parse_sums(data, "S") == {"x": A}


def test_duplicate_with_different_hash_refuses_the_list():
    data = f"{A}  netboot/xen/vmlinuz\n{B}  ./netboot/xen/vmlinuz\n".encode()
    with pytest.raises(ListError, match="two different SHA-256 for netboot/xen/vmlinuz"):
        parse_sums(data, "http://m/SHA256SUMS")


@pytest.mark.parametrize("name", ["../../etc/shadow", "netboot/../../x", "/etc/passwd",
                                  "a\\b", "a/\x1b[2Jb", "./", "."])
def test_paths_leaving_the_directory_refuse_the_list(name):
    data = f"{B}  ok\n{A}  {name}\n".encode()
    with pytest.raises(ListError, match="not a file below its directory"):
        parse_sums(data, "http://m/SHA256SUMS")


def test_bsd_path_with_dotdot_refuses_too():
    with pytest.raises(ListError):
        parse_sums(f"SHA256 (../x.iso) = {A}\n".encode(), "C")


def test_huge_list_refused_without_parsing():
    with pytest.raises(ListError, match="more than"):
        parse_sums(b"#" * (MAX_LIST_SIZE + 1), "http://m/SHA256SUMS")


def test_list_path_normalises():
    assert list_path("./netboot//xen/./vmlinuz", "S") == "netboot/xen/vmlinuz"


# -- Release ---------------------------------------------------------------------

RELEASE = (
    "Origin: Debian\nSuite: stable\nCodename: bookworm\nDate: Sat, 10 Feb 2024 10:46:46 UTC\n"
    "MD5Sum:\n 00000000000000000000000000000000   100 main/x\n"
    f"SHA256:\n {A}    78509 main/installer-amd64/current/images/SHA256SUMS\n"
    f" {B}      12 main/binary-amd64/Release\n"
)


def test_release_fields_and_sha256():
    release = parse_release(RELEASE.encode(), "R")
    assert (release.suite, release.codename, release.valid_until) == ("stable", "bookworm", None)
    entry = release.entry("main/installer-amd64/current/images/SHA256SUMS")
    assert (entry.sha256, entry.size) == (A, 78509)
    assert release.entry("main/x") is None  # an MD5Sum entry is not a SHA-256 one


def test_release_crlf():
    release = parse_release(RELEASE.replace("\n", "\r\n").encode(), "R")
    assert release.entry("main/binary-amd64/Release").size == 12


def test_release_without_sha256_field():
    release = parse_release(b"Origin: Debian\nCodename: bookworm\nMD5Sum:\n 0 1 x\n", "R")
    assert release.sha256 is None and release.entry("x") is None


def test_release_with_two_sha256_fields_refused():
    with pytest.raises(ListError, match="two SHA256 fields"):
        parse_release((RELEASE + f"SHA256:\n {C} 1 main/other\n").encode(), "R")


def test_release_duplicate_path_different_hash_refused():
    text = RELEASE + f" {C}    78509 main/installer-amd64/current/images/SHA256SUMS\n"
    with pytest.raises(ListError, match="two different"):
        parse_release(text.encode(), "R")


def test_release_path_with_dotdot_refused():
    with pytest.raises(ListError):
        parse_release((RELEASE + f" {C} 5 main/../../../etc/x\n").encode(), "R")


def test_release_malformed_entries_skipped():
    text = RELEASE + " nothex 12 main/a\n" + f" {C} notanumber main/b\n" + f" {C}\n"
    release = parse_release(text.encode(), "R")
    assert sorted(release.sha256) == ["main/binary-amd64/Release",
                                      "main/installer-amd64/current/images/SHA256SUMS"]


def test_release_second_paragraph_ignored():
    text = RELEASE + f"\nSHA256:\n {C} 1 main/injected\n"
    assert parse_release(text.encode(), "R").entry("main/injected") is None


def test_release_of_another_suite_refused():
    release = parse_release(RELEASE.encode(), "http://m/dists/trixie/InRelease")
    release.check_suite("bookworm")
    release.check_suite("stable")
    with pytest.raises(ListError, match="not of dists/trixie"):
        release.check_suite("trixie")


def test_release_valid_until():
    text = RELEASE.replace("Date:", "Valid-Until: Sat, 17 Feb 2024 10:46:46 UTC\nDate:")
    release = parse_release(text.encode(), "R")
    release.check_fresh(datetime(2024, 2, 11, tzinfo=timezone.utc))
    with pytest.raises(ListError, match="expired on 2024-02-17"):
        release.check_fresh(datetime(2024, 3, 1, tzinfo=timezone.utc))


# -- where the suite and the lists are -------------------------------------------

@pytest.mark.parametrize("root, path, expect", [
    # location = installer-amd64 (the usual), file below it
    (("debian", "dists", "bookworm", "main", "installer-amd64"), "current/images/netboot/xen/vmlinuz",
     (2, "", "bookworm", "main/installer-amd64/current/images/netboot/xen/vmlinuz")),
    # location = the images directory of a dated build
    (("debian", "dists", "bookworm", "main", "installer-amd64", "20230607", "images"),
     "netboot/xen/vmlinuz", (4, "", "bookworm", "main/installer-amd64/20230607/images/netboot/xen/vmlinuz")),
    # location = the suite directory itself
    (("dists", "bookworm"), "main/x/vmlinuz", (0, "", "bookworm", "main/x/vmlinuz")),
    # location above dists: the suite is inside the file's path
    (("debian",), "dists/bookworm/main/installer-amd64/current/images/netboot/xen/vmlinuz",
     (0, "dists/bookworm", "bookworm", "main/installer-amd64/current/images/netboot/xen/vmlinuz")),
])
def test_suite_path(root, path, expect):
    found = suite_path(root, path)
    assert (found.levels_up, found.prefix, found.suite, found.rel) == expect


@pytest.mark.parametrize("root, path", [
    (("srv", "netboot"), "debian-installer/amd64/linux"),
    (("dists",), "vmlinuz"),          # no suite name after dists
    (("x", "dists", "bookworm"), ""),  # nothing below the suite
])
def test_not_a_suite_path(root, path):
    assert suite_path(root, path) is None


def test_nearest_sums_is_the_deepest_listed():
    text = (f"SHA256:\n {A} 1 main/installer-amd64/current/images/SHA256SUMS\n"
            f" {B} 1 main/installer-amd64/current/legacy-images/SHA256SUMS\n")
    release = parse_release(text.encode(), "R")
    assert nearest_sums(release, "main/installer-amd64/current/images/netboot/xen/vmlinuz") == (
        "main/installer-amd64/current/images", "netboot/xen/vmlinuz")
    assert nearest_sums(release, "main/installer-amd64/current/legacy-images/netboot/x") == (
        "main/installer-amd64/current/legacy-images", "netboot/x")
    assert nearest_sums(release, "main/installer-amd64/20230607/images/netboot/x") is None


@pytest.mark.parametrize("spec, levels, parent", [
    ("http://h:8080/debian/dists/bookworm/main/installer-amd64", 2, "http://h:8080/debian/dists/bookworm/"),
    ("http://h/debian/dists/bookworm/main/installer-amd64/", 2, "http://h/debian/dists/bookworm/"),
    ("ftp://user:pw@h/pub/d/x", 1, "ftp://user:pw@h/pub/d/"),
    ("http://[2001:db8::1]/a/b", 2, "http://[2001:db8::1]/"),
    ("nfs:vers=3,port=2050:192.168.0.1:/srv/install/a", 1, "nfs:vers=3,port=2050:192.168.0.1:/srv/install"),
    ("/srv/mirror/a/b", 1, "/srv/mirror/a/"),
])
def test_climbing_a_location_keeps_what_opens_it(spec, levels, parent):
    from xenpvnetboot.verify import Origin

    opened = []
    origin = Origin(parse_location(spec), None, lambda loc: opened.append(loc.url()) or "tree")
    assert origin.ancestor(levels) == ("tree", True)
    assert opened == [parent]
    assert origin.ancestor(0) == (None, False)
    with pytest.raises(ValueError):
        origin.ancestor(len(origin.parts) + 1)


def test_location_parts_decode_urls_only():
    assert location_parts(parse_location("http://h/odd%20name/dists/")) == ("odd name", "dists")
    assert location_parts(parse_location("/srv/odd%20name")) == ("srv", "odd%20name")


def test_checksum_list_names():
    names = [name for name, _ in checksum_lists("Fedora-Server-netinst-x86_64-40-1.14.iso")]
    assert names == ["Fedora-Server-40-1.14-x86_64-CHECKSUM", "CHECKSUM", "SHA256SUMS"]
    assert [n for n, _ in checksum_lists("debian-12.5.0-amd64-netinst.iso")] == ["CHECKSUM", "SHA256SUMS"]
    assert dict(checksum_lists("x.iso"))["SHA256SUMS"][:2] == ("SHA256SUMS.gpg", "SHA256SUMS.sign")
    assert image_signatures("alpine-virt-3.19.1-x86_64.iso")[0] == "alpine-virt-3.19.1-x86_64.iso.asc"


# -- the verdict model -----------------------------------------------------------

SIGNER = Signer("b8b80b5b623eab6ad8775c45b7c5d7d6350947f8", "Debian Archive <ftpmaster@debian.org>", "4cb5")


def _selection(tmp_path, kernel_sha=None):
    tree = LocalTree(str(tmp_path))
    return Selection(FileRef(tree, "vmlinuz", sha256=kernel_sha), FileRef(tree, "initrd.gz"), "test")


def _report(kernel, ramdisk):
    return Report((FileVerdict("kernel", "http://m/vmlinuz", kernel),
                   FileVerdict("ramdisk", "http://m/initrd.gz", ramdisk)))


def test_policy_parsing():
    assert parse_policy("AUTO") == "auto"
    with pytest.raises(UsageError):
        parse_policy("sometimes")


def test_failed_refuses_under_every_policy():
    report = _report(Verified(SIGNER, ("I",), A), Failed("http://m/initrd.gz: bad"))
    for policy in ("auto", "require"):
        with pytest.raises(BootError, match="http://m/initrd.gz: bad"):
            report.enforce(policy, lambda line: None)


def test_auto_warns_require_refuses():
    report = _report(Verified(SIGNER, ("I",), A), NoKey("http://m/InRelease", ("aabb",)))
    warnings, infos = [], []
    report.enforce("auto", warnings.append, infos.append)
    assert len(warnings) == 1 and "AABB" in warnings[0] and "--keyring" in warnings[0]
    assert len(infos) == 1 and infos[0].startswith("Verified kernel")
    with pytest.raises(BootError, match="initrd.gz: not verified.*--verify=require"):
        report.enforce("require", warnings.append)
    report.enforce("require", warnings.append, pinned=("ramdisk",))  # a hand-given hash vouches
    assert warnings[-1].endswith("its SHA-256 was given by hand")


def test_nothing_is_said_before_a_failure():
    said = []
    with pytest.raises(BootError, match="bad"):
        _report(NoChain("x"), Failed("bad")).enforce("auto", said.append, said.append)
    assert said == []


def test_nochain_under_require():
    with pytest.raises(BootError, match="vmlinuz: not verified"):
        _report(NoChain("no list"), NoChain("no list")).enforce("require", print)


def test_lines_name_key_and_chain():
    lines = _report(Verified(SIGNER, ("http://m/InRelease", "http://m/SHA256SUMS"), A),
                    NoChain("nothing signed")).lines()
    assert lines[0] == ("Verified kernel http://m/vmlinuz: signed by B8B8 0B5B 623E AB6A D877 "
                        "5C45 B7C5 D7D6 3509 47F8 (Debian Archive <ftpmaster@debian.org>) via "
                        "http://m/InRelease -> http://m/SHA256SUMS")
    assert lines[1] == "Not verified: ramdisk http://m/initrd.gz: nothing signed"


def test_one_line_for_two_files_of_one_chain():
    chain = ("http://m/InRelease", "http://m/SHA256SUMS")
    lines = _report(Verified(SIGNER, chain, A), Verified(SIGNER, chain, B)).lines()
    assert lines == ["Verified kernel http://m/vmlinuz and ramdisk http://m/initrd.gz: signed by "
                     "B8B8 0B5B 623E AB6A D877 5C45 B7C5 D7D6 3509 47F8 (Debian Archive "
                     "<ftpmaster@debian.org>) via http://m/InRelease -> http://m/SHA256SUMS"]
    other = Signer("ab" * 20, "Other", "")
    assert len(_report(Verified(SIGNER, chain, A), Verified(other, chain, B)).lines()) == 2


def test_confirm_recomputed_hashes():
    report = _report(Verified(SIGNER, ("I", "http://m/SHA256SUMS"), A), NoChain("x"))
    report.confirm("kernel", A.upper())
    report.confirm("ramdisk", B)  # nothing signed to compare with
    with pytest.raises(BootError, match="wrote a kernel with SHA-256 b+, not the a+ that http://m/SHA256SUMS"):
        report.confirm("kernel", B)


def test_sha256_fd(tmp_path):
    import os

    from xenpvnetboot.verify.images import sha256_fd

    path = tmp_path / "f"
    path.write_bytes(b"x" * 3000)
    fd = os.open(path, os.O_RDONLY)
    try:
        os.lseek(fd, 100, os.SEEK_SET)
        assert sha256_fd(fd, chunk=1024) == hashlib.sha256(b"x" * 3000).hexdigest()
        assert sha256_fd(fd, 2500, chunk=1024) == hashlib.sha256(b"x" * 2500).hexdigest()
        assert os.lseek(fd, 0, os.SEEK_CUR) == 100
    finally:
        os.close(fd)


def test_apply_sets_expected_hashes(tmp_path):
    selection = _report(Verified(SIGNER, ("I",), A), Verified(SIGNER, ("I", "ISO"))).apply(_selection(tmp_path))
    assert selection.kernel.sha256 == A and selection.ramdisk.sha256 is None


def test_apply_refuses_a_conflicting_hash(tmp_path):
    with pytest.raises(BootError, match="gives SHA-256 a+, but b+ was expected"):
        _report(Verified(SIGNER, ("I", "S"), A), NoChain("x")).apply(_selection(tmp_path, B))
    same = _report(Verified(SIGNER, ("I", "S"), A), NoChain("x")).apply(_selection(tmp_path, A.upper()))
    assert same.kernel.sha256 == A


def test_wire_round_trip():
    report = Report((FileVerdict("kernel", "u1", Verified(SIGNER, ("a", "b"), A, "n")),
                     FileVerdict("ramdisk", "u2", NoKey("u3", ("ab", "cd")))))
    assert Report.from_wire(report.to_wire()) == report
    other = _report(NoChain("r"), Failed("f"))
    assert Report.from_wire(other.to_wire()) == other


@pytest.mark.parametrize("bad", [
    "x", [1], [{"role": "initrd"}], [{"role": "kernel", "kind": "Verified", "url": "u"}],
    [{"role": "kernel", "kind": "Verified", "url": "u", "fingerprint": "f", "owner": "o", "key": "k",
      "chain": ["a"], "sha256": "not hex"}],
    [{"role": "kernel", "kind": "NoChain", "url": "u", "reason": "r" * 5000}],
    [{"role": "kernel", "kind": "Nope", "url": "u"}],
    [{}, {}, {}],
])
def test_wire_refuses_bad_reports(bad):
    with pytest.raises(BootError, match="bad verification report"):
        Report.from_wire(bad)


def test_wire_hash_is_the_real_one():
    digest = hashlib.sha256(b"k").hexdigest()
    wire = Report((FileVerdict("kernel", "u", Verified(SIGNER, ("a",), digest)),)).to_wire()
    assert wire[0]["sha256"] == digest
