"""Reading kernels out of real images of every supported format, unmounted."""

from __future__ import annotations

import filecmp
import io
import os
import re
import stat
import sys

import pytest

from support.env import debian_installer_files, need_program, need_root
from support.images import (
    CASES,
    ESCAPES,
    IN_HTREE,
    KERNEL,
    BytesSource,
    build_ext,
    Case,
    Catalog,
    loop_devices_of,
    nothing_mounted,  # noqa: F401  (autouse fixture: nothing gets mounted)
    payload,
    run,
)
from xenpvnetboot.containers import UNRECOGNISED, open_image
from xenpvnetboot.containers.ext import InodeTable
from xenpvnetboot.errors import BootError, NotFound
from xenpvnetboot.transports.base import Sink, TransportOptions
from xenpvnetboot.transports.local import LocalSource

OPTIONS = TransportOptions()


@pytest.fixture(scope="session")
def catalog(tmp_path_factory):
    return Catalog(str(tmp_path_factory.mktemp("images")))


def open_case(catalog: Catalog, case: Case):
    return open_image(LocalSource(catalog.image(case)), OPTIONS)


def fetch(tree, path: str) -> bytes:
    buf = io.BytesIO()
    sink = Sink(buf, tree.url(path), max_size=1 << 30)
    tree.fetch(path, sink)
    return buf.getvalue()


CASE_IDS = [case.name for case in CASES]
LINK_CASES = [case for case in CASES if case.links]


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_every_file_reads_back_identical(catalog, case):
    with open_case(catalog, case) as tree:
        assert type(tree).__name__ == case.tree
        assert tree.rooted is True
        for path, data in case.expect(catalog).items():
            assert tree.stat(path).size == len(data), path
            assert fetch(tree, path) == data, path


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_random_access_inside_the_image(catalog, case):
    path, data = max(case.expect(catalog).items(), key=lambda item: len(item[1]))
    with open_case(catalog, case) as tree:
        source = tree.open_source(path)
        assert source.size == len(data)
        for offset, length in [(0, 10), (1, 4096), ((1 << 20) - 3, 9), (len(data) - 5, 100),
                               (len(data), 10), (12345, 1 << 20)]:
            assert source.pread(offset, length) == data[offset:offset + length], offset
        assert source.as_file().read() == data


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_missing_files_are_not_found(catalog, case):
    some_file = next(iter(case.expect(catalog)))
    with open_case(catalog, case) as tree:
        for path in ["images/pxeboot/absent", "no-such-dir/vmlinuz", some_file + "/below",
                     "images/pxeboot", "/"]:
            with pytest.raises(NotFound):
                tree.stat(path)
            with pytest.raises(NotFound):
                fetch(tree, path)


def test_url_names_the_image_and_the_path(catalog):
    case = CASES[0]
    with open_case(catalog, case) as tree:
        image = catalog.image(case)
        assert tree.url("images/pxeboot/vmlinuz") == image + ":/images/pxeboot/vmlinuz"
        assert tree.url("/images/pxeboot/vmlinuz") == image + ":/images/pxeboot/vmlinuz"


@pytest.mark.parametrize("case", LINK_CASES, ids=[case.name for case in LINK_CASES])
def test_symlinks_never_leave_the_image(catalog, case):
    with open_case(catalog, case) as tree:
        for path in ESCAPES:
            with pytest.raises(BootError) as info:
                tree.stat(path)
            assert not isinstance(info.value, NotFound)
            assert catalog.image(case) in str(info.value) and path in str(info.value)
        with pytest.raises(BootError, match="too many levels"):
            tree.stat("boot/loop")


def test_rock_ridge_link_is_no_empty_file_under_its_plain_name(catalog):
    """``VMLINUZ.;1`` is the plain name of the Rock Ridge link ``vmlinuz``: it
    has no data of its own and must not read as an empty kernel."""
    with open_case(catalog, CASES[0]) as tree:
        try:
            size = tree.stat("VMLINUZ").size
        except NotFound:
            return
        assert size == len(catalog.content("full").files["boot/vmlinuz-6.1.0-test"])


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_truncated_image_is_an_error(catalog, case):
    with open(catalog.image(case), "rb") as image:
        data = image.read()
    kernel = max(case.expect(catalog).values(), key=len)
    cut = data.find(kernel[:4096])
    cut = cut + len(kernel) // 2 if cut > 0 else len(data) // 2
    with pytest.raises(BootError):
        with open_image(BytesSource(data[:cut], "cut.img"), OPTIONS) as tree:
            for path in case.expect(catalog):
                fetch(tree, path)


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_corrupt_metadata_is_an_error(catalog, case):
    with open(catalog.image(case), "rb") as image:
        data = bytearray(image.read())
    for seed, (start, end) in enumerate(case.corrupt):
        data[start:end] = payload(100 + seed, end - start)
    with pytest.raises(BootError):
        with open_image(BytesSource(bytes(data), "corrupt.img"), OPTIONS) as tree:
            for path in case.expect(catalog):
                fetch(tree, path)


@pytest.mark.parametrize("size", [0, 1, 511, 70_000, 3 << 20])
def test_random_bytes_are_not_an_image(size):
    source = BytesSource(payload(size, size), "noise.bin")
    with pytest.raises(BootError, match=UNRECOGNISED):
        open_image(source, OPTIONS)


def test_fetch_respects_the_sink_limit(catalog):
    case = CASES[0]
    with open_case(catalog, case) as tree:
        sink = Sink(io.BytesIO(), "kernel", max_size=1000)
        with pytest.raises(BootError, match="--max-size"):
            tree.fetch(KERNEL, sink)


def test_missing_decompressor_names_the_pip_package(catalog, monkeypatch):
    case = next(case for case in CASES if case.name == "squashfs-zstd")
    image = catalog.image(case)
    monkeypatch.setitem(sys.modules, "zstandard", None)  # makes "import zstandard" fail
    with pytest.raises(BootError, match="pip install zstandard"):
        open_image(LocalSource(image), OPTIONS)


def test_closing_the_tree_closes_the_source(catalog):
    source = LocalSource(catalog.image(CASES[4]))
    tree = open_image(source, OPTIONS)
    inner = tree.open_source(KERNEL)
    tree.close()
    with pytest.raises(BootError):
        source.pread(0, 1)
    with pytest.raises(BootError):
        inner.pread(0, 1)
    tree.close()  # a second close is harmless


@pytest.mark.parametrize("outer", ["iso-rockridge", "squashfs-xz", "ext4"])
def test_image_inside_an_image(catalog, tmp_path, outer):
    """An efiboot.img inside an ISO (or an ext2 image inside any image) is
    read in place through open_source, without extracting it first."""
    by_name = {case.name: case for case in CASES}
    inner_dir = tmp_path / "inner"
    outer_dir = tmp_path / "outer"
    os.makedirs(inner_dir / "boot")
    kernel = payload(77, 1_500_000)
    (inner_dir / "boot" / "vmlinuz").write_bytes(kernel)
    os.makedirs(outer_dir / "images")
    build_ext(str(inner_dir), str(outer_dir / "images" / "inner.img"), "ext2", "4M")
    image = by_name[outer].build(_OneDir(str(outer_dir)), str(tmp_path / "outer.img"))
    with open_image(LocalSource(image), OPTIONS) as tree:
        with open_image(tree.open_source("images/inner.img"), OPTIONS) as inner:
            assert inner.url("boot/vmlinuz").endswith("outer.img:/images/inner.img:/boot/vmlinuz")
            assert fetch(inner, "boot/vmlinuz") == kernel


class _OneDir:
    """Stands in for the catalogue when a builder should use one directory."""

    def __init__(self, root: str) -> None:
        self.root = root

    def source_dir(self, name: str) -> str:
        return self.root


def test_inodes_are_found_with_meta_block_groups(catalog, tmp_path):
    """meta_bg moves the group descriptors of later groups; the inode checks
    made before TSK opens an inode must find them where debugfs does."""
    image = build_ext(catalog.source_dir("full"), str(tmp_path / "meta_bg.img"), "ext4", "160M",
                      ["meta_bg", "^resize_inode", "64bit"], ["-b", "1024", "-N", "640"])
    table = InodeTable(LocalSource(image), image)
    files = catalog.content("full").files
    checked = 0
    for path in [IN_HTREE, KERNEL] + [p for p in files if p.startswith("many/")][-40:]:
        listing = run(["debugfs", "-R", f"stat /{path}", image]).decode()
        number = int(re.search(r"Inode: (\d+)", listing).group(1))
        mode, size, _ = table.inode(number)
        assert stat.S_ISREG(mode) and size == len(files[path]), path
        checked += number > 16 * 32  # beyond the first meta group
    assert checked


def test_block_device_read_only(catalog):
    """A read-only loop device stands for a guest's disk given as a device."""
    need_root()
    need_program("losetup", "mount")
    image = catalog.image(next(case for case in CASES if case.name == "ext4"))
    device = run(["losetup", "-r", "-f", "--show", image]).decode().strip()
    try:
        with open_image(LocalSource(device), OPTIONS) as tree:
            assert tree.url(KERNEL) == f"{device}:/{KERNEL}"
            assert fetch(tree, KERNEL) == catalog.content("full").files[KERNEL]
    finally:
        run(["losetup", "-d", device])
    assert loop_devices_of(image) == ""


def test_real_debian_installer_in_an_iso(tmp_path):
    kernel, initrd = debian_installer_files()
    iso = str(tmp_path / "debian.iso")
    run(["xorriso", "-as", "mkisofs", "-quiet", "-graft-points", "-o", iso,
         f"install.amd/vmlinuz={kernel}", f"install.amd/initrd.gz={initrd}"])
    with open_image(LocalSource(iso), OPTIONS) as tree:
        for path, original in [("install.amd/vmlinuz", kernel), ("/install.amd/initrd.gz", initrd)]:
            out = tmp_path / os.path.basename(path)
            with open(out, "wb") as fileobj:
                tree.fetch(path, Sink(fileobj, str(out), max_size=1 << 30))
            assert filecmp.cmp(str(out), original, shallow=False), path
