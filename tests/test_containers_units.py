"""The pieces of the image readers that need no image tools."""

from __future__ import annotations

import os
import struct
import subprocess
import sys

import pytest

from support.images import BytesSource, payload
from xenpvnetboot.containers import open_image
from xenpvnetboot.containers.detect import filesystem_kind, is_fat_boot_sector
from xenpvnetboot.containers.partitions import find_partitions
from xenpvnetboot.containers.tree import DIR, FILE, LINK, ExtentSource, Node, resolve
from xenpvnetboot.errors import BootError, NotFound
from xenpvnetboot.transports.base import TransportOptions

SRC = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "src")


def test_extent_source_joins_runs_and_clamps():
    parent = BytesSource(bytes(range(256)) * 4)
    view = ExtentSource(parent, [(10, 5), (0, 0), (100, 3), (1000, 50)], "view")
    whole = bytes(range(10, 15)) + bytes(range(100, 103)) + parent.pread(1000, 24)
    assert view.size == 58
    assert view.pread(0, 1000) == whole  # the last run is cut by the parent's end
    assert view.pread(3, 4) == whole[3:7]
    assert view.pread(58, 10) == b"" and view.pread(-1, 10) == b""


# -- symlink resolution, on a hand-made directory tree --------------------------------

TREE = {
    "": {"boot": DIR, "vmlinuz": ("link", "boot/k"), "up": ("link", "boot/../boot/k"),
         "abs": ("link", "/boot/k"), "out": ("link", "../k"), "deep": ("link", "boot/../../k"),
         "self": ("link", "self"), "dirlink": ("link", "boot"), "empty": ("link", "")},
    "boot": {"k": FILE, "rel": ("link", "k"), "back": ("link", "../vmlinuz")},
}


def lookup(parent: Node, name: str):
    entry = TREE.get("/".join(parent.path), {}).get(name)
    path = parent.path + (name,)
    if entry is None:
        return None
    if isinstance(entry, tuple):
        return Node(LINK, path, target=entry[1])
    return Node(entry, path, size=7 if entry == FILE else 0)


@pytest.mark.parametrize("path", ["boot/k", "vmlinuz", "up", "abs", "boot/rel", "boot/back",
                                  "dirlink/k", "dirlink/../boot/k", "dirlink/rel"])
def test_links_resolve_inside_the_tree(path):
    assert resolve(Node(DIR), path, lookup, "img:/" + path).path == ("boot", "k")


@pytest.mark.parametrize("path", ["out", "deep", "dirlink/../.."])
def test_climbing_above_the_root_is_refused(path):
    with pytest.raises(BootError, match="outside the image") as info:
        resolve(Node(DIR), path, lookup, "img:/" + path)
    assert not isinstance(info.value, NotFound)


def test_link_loops_end():
    with pytest.raises(BootError, match="too many levels"):
        resolve(Node(DIR), "self", lookup, "img:/self")


@pytest.mark.parametrize("path", ["nothing", "boot/k/x", "boot", "dirlink", "empty", ""])
def test_missing_or_not_a_file(path):
    with pytest.raises(NotFound):
        resolve(Node(DIR), path, lookup, "img:/" + path)


# -- recognising the bytes --------------------------------------------------------------

def fat_sector(**fields) -> bytearray:
    sector = bytearray(512)
    sector[0:3] = b"\xeb\x3c\x90"
    struct.pack_into("<HBHB", sector, 11, 512, 4, 1, 2)
    struct.pack_into("<H", sector, 19, 8192)
    sector[21] = 0xF8
    for offset, value in fields.items():
        sector[int(offset[1:])] = value
    return sector


def test_fat_boot_sector_checks():
    assert is_fat_boot_sector(bytes(fat_sector()))
    assert not is_fat_boot_sector(bytes(fat_sector(o13=3)))  # cluster size not a power of 2
    assert not is_fat_boot_sector(bytes(fat_sector(o21=0x12)))  # media byte
    ntfs = fat_sector()
    ntfs[3:11] = b"NTFS    "
    assert not is_fat_boot_sector(bytes(ntfs))


def test_filesystem_before_partition_table():
    """A hybrid ISO carries an MBR; the ISO signature must win."""
    head = bytearray(0x8800)
    struct.pack_into("<B3xB3xII", head, 446, 0x80, 0x17, 0, 100)
    head[510:512] = b"\x55\xaa"
    head[0x8001:0x8006] = b"CD001"
    assert filesystem_kind(bytes(head)) == "iso9660"
    head[0x8001:0x8006] = bytes(5)
    assert filesystem_kind(bytes(head)) is None
    assert find_partitions(BytesSource(bytes(head))) == [(1, 0, 100 * 512)]


def mbr(*entries) -> bytearray:
    sector = bytearray(512)
    for i, (ptype, start, count) in enumerate(entries):
        struct.pack_into("<B3xB3xII", sector, 446 + 16 * i, 0, ptype, start, count)
    sector[510:512] = b"\x55\xaa"
    return sector


def test_logical_partition_chain_is_bounded():
    disk = bytearray(64 * 512)
    disk[0:512] = mbr((0x83, 1, 2), (0x05, 4, 40))
    disk[4 * 512:5 * 512] = mbr((0x83, 1, 2), (0x05, 5, 10))   # EBR 1, next at 4+5
    disk[9 * 512:10 * 512] = mbr((0x83, 1, 3), (0x05, 0, 10))  # EBR 2, "next" is itself
    parts = find_partitions(BytesSource(bytes(disk)))
    assert parts == [(1, 512, 1024), (5, 5 * 512, 1024), (6, 10 * 512, 1536)]
    looping = bytearray(disk)
    looping[9 * 512:10 * 512] = mbr((0x83, 1, 3), (0x05, 5, 10))  # points back at EBR 2
    assert len(find_partitions(BytesSource(bytes(looping)))) == 3


def test_unreadable_partitions_are_reported():
    disk = bytearray(8 * 512)
    disk[0:512] = mbr((0x83, 1, 4))
    with pytest.raises(BootError, match="no partition can be read"):
        open_image(BytesSource(bytes(disk), "disk.img"), TransportOptions())


def test_source_stays_open_when_open_image_fails():
    source = BytesSource(payload(1, 4096), "noise")
    with pytest.raises(BootError):
        open_image(source, TransportOptions())
    assert not source.closed


# -- libraries: imported late, and their absence explained ----------------------------

def test_format_libraries_are_imported_only_when_needed():
    code = (
        "import sys, xenpvnetboot.containers, xenpvnetboot.location;"
        "print(sorted(m for m in ('pycdlib', 'pytsk3', 'PySquashfsImage') if m in sys.modules))"
    )
    env = dict(os.environ, PYTHONPATH=SRC)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, env=env, check=True)
    assert out.stdout.strip() == b"[]"


def test_missing_library_names_the_pip_package(monkeypatch):
    monkeypatch.setitem(sys.modules, "pycdlib", None)  # makes "import pycdlib" fail
    head = bytearray(0x9000)
    head[0x8001:0x8006] = b"CD001"
    with pytest.raises(BootError, match=r"pip install pycdlib"):
        open_image(BytesSource(bytes(head), "x.iso"), TransportOptions())


def test_missing_squashfs_library_names_the_pip_package(monkeypatch):
    monkeypatch.setitem(sys.modules, "PySquashfsImage", None)
    with pytest.raises(BootError, match="pip install PySquashfsImage"):
        open_image(BytesSource(b"hsqs" + bytes(200), "x.sqfs"), TransportOptions())
