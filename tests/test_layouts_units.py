"""The pieces of layout detection: .treeinfo parsing, markers, installer arguments, arches."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from xenpvnetboot.errors import BootError, NotFound
from xenpvnetboot.layouts import installargs, markers
from xenpvnetboot.layouts.arch import AARCH64, I686, X86_64, arches_to_try, canonical_arch
from xenpvnetboot.layouts.detect import Probe, from_treeinfo
from xenpvnetboot.layouts.model import FileRef, Selection
from xenpvnetboot.layouts.report import describe
from xenpvnetboot.layouts.treeinfo import TreeInfoError, load, parse_ini, safe_path
from xenpvnetboot.transports import FileInfo, Tree

# -- the .treeinfo parser ---------------------------------------------------------

OLD = b"""[general]
family = Red Hat Enterprise Linux
version = 6.0
arch = x86_64

[images-xen]
kernel = images/pxeboot/vmlinuz
initrd = images/pxeboot/initrd.img

[checksums]
images/pxeboot/vmlinuz = sha256:""" + b"AB" * 32 + b"""
images/pxeboot/initrd.img = md5:0123
"""


def test_old_format():
    info = load(OLD, "t")
    assert info.label == "Red Hat Enterprise Linux 6.0 x86_64"
    assert info.images == {"xen": ("images/pxeboot/vmlinuz", "images/pxeboot/initrd.img")}
    assert info.sha256("images/pxeboot/vmlinuz") == "ab" * 32
    assert info.sha256("images/pxeboot/initrd.img") is None  # md5: not checked
    assert info.platform_order((X86_64, I686)) == ["xen", "x86_64"]


def test_platforms_list_stands_in_for_a_missing_arch():
    info = load(b"[tree]\nplatforms = xen, aarch64\n[images-aarch64]\nkernel=a\ninitrd=b\n", "t")
    assert info.tree_arch == "aarch64"
    assert info.platform_order((AARCH64,)) == ["aarch64"]
    with pytest.raises(TreeInfoError, match="for aarch64"):
        info.check_arch((X86_64, I686))


def test_parser_is_forgiving():
    sections = parse_ini(b"\xef\xbb\xbfjunk before\n[General]\nFamily: Fedora\n  ; comment\n"
                         b"[broken\nno delimiter\n=novalue\n[images-x86_64]\nKernel = ./a//b\n"
                         b"initrd=c\n\xff\xfe\n")
    assert sections["general"] == {"Family": "Fedora"}
    info = load(b"[general]\nFamily: Fedora\n[images-x86_64]\nKernel = ./a//b\ninitrd=c\n", "t")
    assert info.name == "Fedora" and info.images["x86_64"] == ("a/b", "c")


def test_not_a_treeinfo():
    assert load(b"<html><body>404</body></html>", "t") is None
    assert load(b"", "t") is None


@pytest.mark.parametrize("value", ["../x", "a/../../x", "/etc/passwd", "~root/x", "http://h/x",
                                   "a\\..\\x", "a\x1b[2Jb", ".", ""])
def test_unsafe_paths_are_refused(value):
    with pytest.raises(TreeInfoError):
        safe_path(value, "t")


def test_checksum_and_stage2_paths_are_checked_too():
    with pytest.raises(TreeInfoError):
        load(b"[general]\nfamily=F\n[checksums]\n../../x = sha256:00\n", "t")
    with pytest.raises(TreeInfoError):
        load(b"[general]\nfamily=F\n[stage2]\nmainimage = /etc/shadow\n", "t")


def test_malformed_sha256_is_an_error():
    info = load(b"[general]\n[images-xen]\nkernel=k\ninitrd=i\n[checksums]\nk = sha256:xyz\n", "t")
    with pytest.raises(TreeInfoError, match="malformed"):
        info.sha256("k")


class FakeTree(Tree):
    """Every file exists except those named missing; nothing is ever read."""

    def __init__(self, missing=()):
        self.missing = set(missing)

    def url(self, path):
        return f"http://h/t/{path}"

    def stat(self, path):
        if path in self.missing:
            raise NotFound(path)
        return FileInfo(size=1)

    def fetch(self, path, sink):
        raise NotFound(path)


TEXT = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=400)
LINES = st.lists(st.one_of(
    st.sampled_from(["[general]", "[tree]", "[images-xen]", "[images-x86_64]", "[checksums]",
                     "[stage2]", "[release]", "kernel = images/pxeboot/vmlinuz", "initrd = x",
                     "arch = x86_64", "arch = i386", "version = 6", "name = Fedora",
                     "platforms = xen,x86_64", "x = sha256:" + "0" * 64, "kernel = ../k"]),
    TEXT), max_size=30).map("\n".join)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(st.binary(max_size=600), LINES.map(str.encode), TEXT.map(str.encode)))
def test_any_text_parses_or_raises_our_error(data):
    try:
        info = load(data, "t")
        if info is None:
            return
        _ = info.label, info.is_suse, info.platform_order((X86_64, I686))
        for kernel, initrd in info.images.values():
            info.sha256(kernel), info.sha256(initrd)
        probe = Probe(FakeTree())
        from_treeinfo(probe, ".treeinfo", info, (X86_64, I686))
    except BootError:
        pass


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=300))
def test_marker_readers_never_raise(text):
    for reader in (markers.debian_disk_info, markers.ubuntu_disk_info, markers.suse_content,
                   markers.mageia_version, markers.alpine_release):
        label = reader(text)
        assert label is None or (label.isprintable() and len(label) <= 120)


# -- markers ---------------------------------------------------------------------

def test_marker_labels():
    assert markers.suse_content("DISTRO cpe:/o:opensuse:opensuse:13.1,openSUSE 13.1\n") == "openSUSE 13.1"
    assert markers.suse_content("PRODUCT openSUSE\nVERSION 12.3\n") == "openSUSE 12.3"
    assert markers.suse_content("hello world\n") is None
    assert markers.mageia_version("Mageia 9 x86_64\n") == "Mageia 9 x86_64"
    assert markers.mageia_version("Fedora 40\n") is None
    assert markers.debian_disk_info("Ubuntu 22.04") is None
    assert markers.alpine_release("") == "Alpine Linux"
    assert "\x1b" not in markers.debian_disk_info("Debian \x1b[2J evil")


# -- installer arguments ---------------------------------------------------------

@pytest.mark.parametrize("name,version,option", [
    ("Fedora", "40", "inst.repo"), ("Fedora", "17", "inst.repo"), ("Fedora", "14", "repo"),
    ("Fedora", "8", "method"), ("Red Hat Enterprise Linux", "9.3", "inst.repo"),
    ("CentOS", "6.10", "repo"), ("Red Hat Enterprise Linux Server", "5.11", "method"),
    ("CentOS Stream", "", "inst.repo"), ("Oracle Linux Server", "7.9", "inst.repo"),
])
def test_anaconda_option_by_release(name, version, option):
    assert installargs.anaconda_option(name, version) == option


class UrlTree(FakeTree):
    def __init__(self, base, rooted=False):
        super().__init__()
        self.base = base
        self.rooted = rooted

    def url(self, path):
        return self.base + path


@pytest.mark.parametrize("base,installer,expected", [
    ("http://mirror/f40/", "anaconda", "inst.repo=http://mirror/f40/"),
    ("ftp://mirror/sles/", "linuxrc", "install=ftp://mirror/sles/"),
    ("nfs:server:/export/f40/", "anaconda", "inst.repo=nfs:server:/export/f40/"),
    ("nfs:vers=4:server:/export/f40/", "anaconda", "inst.repo=nfs:server:/export/f40/"),
    ("nfs:server:/export/sles/", "linuxrc", "install=nfs://server/export/sles/"),
    ("http://user:***@mirror/f40/", "anaconda", ""),
    ("/srv/trees/f40/", "anaconda", ""),
    ("tftp://server/f40/", "anaconda", ""),
])
def test_install_args_only_for_reachable_locations(base, installer, expected):
    assert installargs.install_args(UrlTree(base), installer, "Fedora", "40") == expected


def test_no_install_args_for_an_image():
    assert installargs.install_args(UrlTree("http://h/x.iso:/", rooted=True), "anaconda") == ""


@pytest.mark.parametrize("cmdline,expected", [
    ("", "inst.repo=U"),
    ("console=hvc0", "console=hvc0 inst.repo=U"),
    ("console=hvc0 repo=X", "console=hvc0 repo=X"),
    ("inst.repo=X", "inst.repo=X"),
    ('method="X"', 'method="X"'),
    ("console=hvc0 -- single", "console=hvc0 inst.repo=U -- single"),
    ("-- single", "inst.repo=U -- single"),
])
def test_merge(cmdline, expected):
    assert installargs.merge(cmdline, "inst.repo=U") == expected


# -- architectures and the dry-run report ----------------------------------------------

def test_arch_names():
    assert [canonical_arch(a) for a in ("amd64", "X86_64", "i386", "i586", "arm64", "ppc64")] == [
        X86_64, X86_64, I686, I686, AARCH64, None]
    assert arches_to_try(I686) == (I686,)


def test_describe():
    tree = FakeTree()
    selection = Selection(FileRef(tree, "k", FileInfo(size=2048), "ab" * 32), FileRef(tree, "r"),
                          "Fedora 40 x86_64 (.treeinfo [images-xen])", "inst.repo=http://h/t/")
    text = describe(selection, "console=hvc0 inst.repo=http://h/t/")
    assert "Found: Fedora 40 x86_64" in text
    assert "Kernel: http://h/t/k (2048 bytes, 2.0 KiB)" in text
    assert "Ramdisk: http://h/t/r (size unknown)" in text
    assert "Installer source: inst.repo=http://h/t/ (added)" in text
    assert "(not added" in describe(selection, "console=hvc0")


# -- architecture variants in .treeinfo ------------------------------------------------

def test_variant_sections_count_as_their_base_arch_after_the_exact_one():
    from xenpvnetboot.layouts.arch import base_arch

    assert [base_arch(a) for a in ("x86_64_v2", "X86_64_V4", "amd64", "aarch64", "ppc64le_v2", "_v2")] == [
        X86_64, X86_64, X86_64, AARCH64, None, None]
    info = load(b"[tree]\narch = x86_64\n[images-x86_64_v3]\nkernel=c\ninitrd=d\n"
                b"[images-x86_64_v2]\nkernel=a\ninitrd=b\n[images-x86_64]\nkernel=e\ninitrd=f\n"
                b"[images-aarch64]\nkernel=g\ninitrd=h\n", "t")
    assert info.platform_order((X86_64, I686)) == ["xen", "x86_64", "x86_64_v2", "x86_64_v3"]
    only = load(b"[tree]\narch = x86_64_v2\n[images-x86_64_v2]\nkernel=a\ninitrd=b\n", "t")
    only.check_arch((X86_64, I686))
    assert only.platform_order((X86_64, I686)) == ["xen", "x86_64", "x86_64_v2"]
    with pytest.raises(TreeInfoError, match="x86_64_v2"):
        only.check_arch((AARCH64,))


# -- names that pair in one directory, for a --kernel or --ramdisk alone ---------------

def test_names_that_pair_come_from_the_table():
    from xenpvnetboot.layouts.table import kernel_names, ramdisk_names

    assert ramdisk_names("vmlinuz-virt")[0] == "initramfs-virt"
    assert "initrd.img-6.1.0-18-amd64" in ramdisk_names("vmlinuz-6.1.0-18-amd64")
    assert "initramfs-6.1.0-18-amd64.img" in ramdisk_names("vmlinuz-6.1.0-18-amd64")
    assert ramdisk_names("linux")[0] == "initrd.gz"
    assert ramdisk_names("bzImage") == []
    assert kernel_names("initrd.gz")[:2] == ["vmlinuz", "linux"]
    assert kernel_names("initramfs-virt") == ["vmlinuz-virt"]
    assert kernel_names("custom.cpio") == []


def test_partners_of_a_full_url_stay_in_its_directory():
    from xenpvnetboot.layouts.explicit import NAME, ROW, partners
    from xenpvnetboot.layouts.table import ORIGINAL_PAIRS

    found = partners("http://h/OL6/images/pxeboot/vmlinuz", "vmlinuz", ORIGINAL_PAIRS, True)
    assert (found[0].path, found[0].how) == ("initrd.img", ROW)
    assert all(guess.how == NAME for guess in found[1:]) and "initrd.gz" in [g.path for g in found]
    back = partners("boot/x86_64/initrd-xen", "boot/x86_64/initrd-xen", ORIGINAL_PAIRS, False)
    assert back[0].path == "boot/x86_64/vmlinuz-xen" and back[0].how == ROW


# -- one path at a time, or many at once: the same answers -------------------------------

def test_parallel_and_sequential_searches_agree(tmp_path, monkeypatch):
    """Every tree gives the same selection whether its tree overlaps requests or not."""
    from support.layout_trees import TREES, build

    from xenpvnetboot.layouts import arch as arch_mod
    from xenpvnetboot.layouts.detect import detect
    from xenpvnetboot.transports.local import LocalTree

    monkeypatch.setattr(arch_mod, "host_arch", lambda: X86_64)

    class Parallel(LocalTree):
        parallel_stats = True

        def __init__(self, root):
            super().__init__(root)
            self.asked = []

        def stat_many(self, paths, reads=None):
            self.asked += list(paths) + list(reads or {})
            return super().stat_many(paths, reads)

    for tree in TREES:
        base = build(str(tmp_path), tree)
        arches = arches_to_try(canonical_arch(tree.arch) if tree.arch else None)
        outcomes = []
        for opened in (LocalTree(base), Parallel(base)):
            try:
                found = detect(opened, arches)
                outcomes.append((found.kernel.path, found.ramdisk.path, found.reason))
            except BootError as exc:
                outcomes.append(str(exc))
        assert outcomes[0] == outcomes[1], tree.name
        assert len(opened.asked) == len(set(opened.asked)), tree.name
