"""Layout detection: every family and version shape, from a directory, over http, in an ISO."""

from __future__ import annotations

import contextlib
import os
import subprocess

import pytest
from support import env as test_env
from support.layout_trees import (x86_64_host,  # noqa: F401 (a fixture)
                                  BY_NAME, SAMPLE_MARKERS, TREES, LayoutTree, TreeServer, build,
                                  build_all, sha256)

from xenpvnetboot.errors import BootError
from xenpvnetboot.layout import select_files
from xenpvnetboot.layouts import arch as arch_mod
from xenpvnetboot.layouts.arch import canonical_arch
from xenpvnetboot.layouts.table import FAMILIES, MARKERS, ORIGINAL_PAIRS, all_pairs
from xenpvnetboot.location import open_location
from xenpvnetboot.transports import TransportOptions
from xenpvnetboot.transports.local import LocalTree

OPTIONS = TransportOptions(retries=0, timeout=10)


pytestmark = pytest.mark.usefixtures("x86_64_host")


@pytest.fixture(scope="module")
def layout_root(tmp_path_factory):
    return build_all(str(tmp_path_factory.mktemp("layouts")), TREES)


#: How servers answer for directories: nginx/Apache with and without a listing,
#: and object stores, which answer for files only (see TreeServer).
DIRECTORY_ANSWERS = ["listing", "403", "files-only"]


@pytest.fixture(scope="module", params=DIRECTORY_ANSWERS)
def layout_server(layout_root, request):
    server = TreeServer(layout_root, directories=request.param).start()
    yield server
    server.stop()


def choose(location, tree: LayoutTree, kernel_bytes: bool = False, note=None):
    """Detect in *location* (a string or an opened tree) as the bootloader does.

    With *kernel_bytes*, return the selection and the kernel's contents.
    """
    options = OPTIONS if note is None else TransportOptions(retries=0, timeout=10, log=note,
                                                            verbose=True)
    with contextlib.ExitStack() as stack:
        opened = location if not isinstance(location, str) else stack.enter_context(
            open_location(location, options))
        wanted = canonical_arch(tree.arch) if tree.arch else None
        selection = select_files(opened, None, None, options, stack, arch=wanted)
        if kernel_bytes:
            return selection, opened.read_bytes(selection.kernel.path)
        return selection


def check(selection, tree: LayoutTree, base_url: str = "") -> None:
    assert selection.kernel.path == tree.kernel, selection.reason
    assert selection.ramdisk is not None and selection.ramdisk.path == tree.ramdisk
    assert tree.reason in selection.reason
    if base_url and tree.install:
        assert selection.install_args == f"{tree.install}={base_url}"
    else:
        assert selection.install_args == ""


GOOD = [tree for tree in TREES if not tree.error]
BAD = [tree for tree in TREES if tree.error]


@pytest.mark.parametrize("tree", GOOD, ids=lambda tree: tree.name)
def test_local_directory(layout_root, tree):
    check(choose(os.path.join(layout_root, tree.name), tree), tree)


@pytest.mark.parametrize("tree", GOOD, ids=lambda tree: tree.name)
def test_over_http(layout_server, tree):
    url = layout_server.url(tree.name) + "/"
    check(choose(url, tree), tree, url)


@pytest.mark.parametrize("tree", BAD, ids=lambda tree: tree.name)
def test_refused(layout_root, layout_server, tree):
    for location in (os.path.join(layout_root, tree.name), layout_server.url(tree.name)):
        with pytest.raises(BootError, match=tree.error):
            choose(location, tree)


def test_treeinfo_checksums_reach_the_file_refs(layout_root):
    tree = BY_NAME["fedora40"]
    selection = choose(os.path.join(layout_root, tree.name), tree)
    assert selection.kernel.sha256 == sha256(tree.content(tree.kernel))
    assert selection.ramdisk.sha256 == sha256(tree.content(tree.ramdisk))
    assert selection.kernel.info.size == len(tree.content(tree.kernel))


# -- what is asked, and in which order ---------------------------------------------

class Recording(LocalTree):
    """A local directory (asked one path at a time) that writes down each question."""

    def __init__(self, root):
        super().__init__(root)
        self.asked = []

    def stat(self, path):
        self.asked.append(path)
        return super().stat(path)

    def read_bytes(self, path, limit=1 << 20):
        self.asked.append("read " + path)
        return super().read_bytes(path, limit)


MARKER_READS = ["read .treeinfo", "read treeinfo", "read .disk/info", "read content", "read VERSION",
                "read .alpine-release"]


@pytest.mark.parametrize("name,asked", [
    ("fedora40", ["read .treeinfo", "images/pxeboot/vmlinuz", "images/pxeboot/initrd.img"]),
    ("sles11", MARKER_READS[:4] + ["boot/x86_64/vmlinuz-xen", "boot/x86_64/initrd-xen"]),
    ("debian-mirror", MARKER_READS
     + ["current/images/netboot/xen/vmlinuz", "current/images/netboot/xen/initrd.gz"]),
])
def test_one_path_at_a_time_in_the_order_of_the_search(layout_root, name, asked):
    """A tree that cannot overlap requests is asked what the search needs next, and stops."""
    tree = Recording(os.path.join(layout_root, name))
    check(choose(tree, BY_NAME[name]), BY_NAME[name])
    assert tree.asked == asked


def test_each_path_is_asked_once(layout_server):
    empty = LayoutTree("empty-tree", {}, ["README"])
    build(layout_server.root, empty)
    layout_server.clear()
    told = []
    with pytest.raises(BootError, match="no kernel found: ") as failure:
        choose(layout_server.url(empty.name), empty, note=told.append)
    paths = [path for _, path, _ in layout_server.log]
    assert paths and len(paths) == len(set(paths))
    message = str(failure.value)
    assert "\n" not in message and len(message) < 400, message
    for family in ("not a .treeinfo tree", "Debian/Ubuntu", "SUSE", "Mageia", "Alpine", "Arch",
                   "isolinux", "six pairs", "-v lists the paths"):
        assert family in message
    assert "images/pxeboot/vmlinuz" not in message  # the paths are for -v
    assert len(told) == 1 and "images/pxeboot/vmlinuz" in told[0] and "boot/vmlinuz-virt" in told[0]


def test_a_kernel_without_its_ramdisk_is_named_in_the_failure(tmp_path):
    lone = LayoutTree("lone", {".alpine-release": "alpine-virt-3.19.1\n"}, ["boot/vmlinuz-virt"])
    with pytest.raises(BootError, match="found boot/vmlinuz-virt but not boot/initramfs-virt"):
        choose(build(str(tmp_path), lone), lone)


# -- the table itself: a tree per row --------------------------------------------

def _row_cases():
    for family in FAMILIES:
        for arch in (arch_mod.X86_64, arch_mod.I686, arch_mod.AARCH64):
            for candidate in family.candidates((arch,)):
                yield pytest.param(family, arch, candidate,
                                   id=f"{family.key}-{arch}-{candidate.pair.kernel}")


@pytest.mark.parametrize("family,arch,candidate", list(_row_cases()))
def test_every_row_is_found(tmp_path, family, arch, candidate):
    """A tree holding only one row's pair (and its family marker) yields that pair."""
    files = [candidate.pair.kernel, candidate.pair.ramdisk]
    meta = {}
    if family.key in SAMPLE_MARKERS:
        path, text = SAMPLE_MARKERS[family.key]
        meta[path] = text.format(arch=arch)
    tree = LayoutTree("t", meta, files, *files, arch=arch)
    selection = choose(build(str(tmp_path), tree), tree)
    assert (selection.kernel.path, selection.ramdisk.path) == tuple(files)
    if candidate.row.walk:
        bare = LayoutTree("bare", {}, files, *files, arch=arch)
        selection = choose(build(str(tmp_path), bare), bare)
        assert (selection.kernel.path, selection.ramdisk.path) == tuple(files)


def test_table_shape():
    assert all(f.marker in MARKERS for f in FAMILIES if f.marker)
    assert len({f.key for f in FAMILIES}) == len(FAMILIES)
    assert ORIGINAL_PAIRS[0].kernel == "images/xen/vmlinuz" and len(ORIGINAL_PAIRS) == 6
    pairs = all_pairs((arch_mod.X86_64,))
    assert len(pairs) == len({(p.kernel, p.ramdisk) for p in pairs})
    for family in FAMILIES:
        for candidate in family.candidates((arch_mod.X86_64, arch_mod.I686, arch_mod.AARCH64)):
            assert "{" not in candidate.pair.kernel + candidate.pair.ramdisk


def test_explicit_kernel_brings_the_ramdisk_of_its_row(layout_root):
    tree = BY_NAME["debian12-cd"]
    with contextlib.ExitStack() as stack:
        opened = stack.enter_context(open_location(os.path.join(layout_root, tree.name), OPTIONS))
        selection = select_files(opened, "install.amd/xen/vmlinuz", None, OPTIONS, stack)
    assert selection.ramdisk.path == "install.amd/xen/initrd.gz"


# -- real data: the Debian installer package ---------------------------------------

def test_real_debian_netboot_tree():
    kernel, _ = test_env.debian_installer_files()
    root = os.path.dirname(os.path.dirname(os.path.dirname(kernel)))
    tree = LayoutTree("real", {}, [], "debian-installer/amd64/linux", "debian-installer/amd64/initrd.gz",
                      "Debian netboot kernel in debian-installer/amd64")
    selection = choose(root, tree)
    check(selection, tree)
    assert selection.kernel.info.size == os.path.getsize(kernel)


def test_real_debian_mirror_over_http(debian_mirror):
    root, rel = debian_mirror
    server = TreeServer(root).start()
    try:
        location = server.url(rel.split("/current/")[0]) + "/"
        tree = LayoutTree("mirror", {}, [], "current/images/netboot/xen/vmlinuz",
                          "current/images/netboot/xen/initrd.gz", "Xen PV kernel")
        check(choose(location, tree), tree)
    finally:
        server.stop()


# -- ISO images --------------------------------------------------------------------

ISO_TREES = ["fedora40", "debian12-cd", "ubuntu2204-live-server", "sles11", "alpine319-virt",
             "mageia9", "archlinux-2024"]


@pytest.fixture(scope="module")
def iso_dir(layout_root, tmp_path_factory):
    xorriso = test_env.need_program("xorriso", "xorriso")
    out = tmp_path_factory.mktemp("isos")
    for name in ISO_TREES:
        subprocess.run([xorriso, "-as", "mkisofs", "-R", "-J", "-o", str(out / f"{name}.iso"),
                        os.path.join(layout_root, name)], check=True, capture_output=True)
    return str(out)


@pytest.mark.parametrize("name", ISO_TREES)
def test_iso_image(iso_dir, name):
    tree = BY_NAME[name]
    selection, kernel = choose(os.path.join(iso_dir, f"{name}.iso"), tree, kernel_bytes=True)
    check(selection, tree)  # no installer source: the guest cannot reach a local ISO
    assert kernel == tree.content(tree.kernel)
