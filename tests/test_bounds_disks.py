"""Partitioned disks: partitions are opened when a lookup reaches them, once.

The hostile disks are 2 MB: a real ext2 filesystem (mke2fs -d) at 1 MiB and
a GPT whose thousand entries all name it, written here (sfdisk refuses to
write overlapping partitions, which is the point).
"""

from __future__ import annotations

import os
import struct
import zlib

import pytest

from support.images import (
    CASES,
    KERNEL,
    SMALL,
    BytesSource,
    Catalog,
    build_ext,
    nothing_mounted,  # noqa: F401  (autouse fixture: nothing gets mounted)
)
from xenpvnetboot.containers import open_image
from xenpvnetboot.errors import NotFound
from xenpvnetboot.transports.base import TransportOptions
from xenpvnetboot.transports.local import LocalSource

OPTIONS = TransportOptions()
LINUX_DATA = bytes.fromhex("AF3DC60F838472478E793D69D8477DE4")  # 0FC63DAF-... on disk
FS_LBA = 2048


def gpt_disk(filesystem: bytes, entries) -> bytes:
    """A disk with *filesystem* at LBA 2048 and a GPT of *entries* (first, last LBA)."""
    table = b"".join(LINUX_DATA + os.urandom(16) + struct.pack("<QQQ", first, last, 0)
                     + bytes(72) for first, last in entries)
    header = bytearray(struct.pack("<8sIIIIQQQQ16sQIII", b"EFI PART", 0x10000, 92, 0, 0, 1,
                                   0, 34, FS_LBA - 1, os.urandom(16), 2, len(entries), 128,
                                   zlib.crc32(table)))
    struct.pack_into("<I", header, 16, zlib.crc32(bytes(header)))
    mbr = bytearray(512)
    struct.pack_into("<B3xB3xII", mbr, 446, 0, 0xEE, 1, 0xFFFFFFFF)
    mbr[510:512] = b"\x55\xaa"
    disk = bytearray(FS_LBA * 512 + len(filesystem))
    disk[0:512] = mbr
    disk[512:512 + len(header)] = header
    disk[1024:1024 + len(table)] = table
    disk[FS_LBA * 512:] = filesystem
    return bytes(disk)


@pytest.fixture(scope="module")
def filesystem(tmp_path_factory):
    work = tmp_path_factory.mktemp("disk")
    os.makedirs(work / "tree" / "boot")
    (work / "tree" / "boot" / "vmlinuz").write_bytes(b"kernel\n" * 1000)
    with open(build_ext(str(work / "tree"), str(work / "fs.img"), "ext2", "1M"), "rb") as image:
        return image.read()


def test_a_thousand_entries_naming_one_filesystem_open_it_once(filesystem):
    last = FS_LBA + len(filesystem) // 512 - 1
    disk = gpt_disk(filesystem, [(FS_LBA, last)] * 1000)
    assert len(disk) <= 2 << 20
    with open_image(BytesSource(disk, "disk.img"), OPTIONS) as tree:
        assert tree.read_bytes("boot/vmlinuz") == b"kernel\n" * 1000
        with pytest.raises(NotFound, match=r"disk.img:/boot/absent: no such file in "
                                           r"partitions 1$"):
            tree.stat("boot/absent")
        assert [number for number, _ in tree.trees] == [1]


def test_entries_that_differ_a_little_open_at_most_the_cap(filesystem):
    """Same start, a thousand different ends: distinct entries, but the
    number of partitions ever opened is capped."""
    from xenpvnetboot.containers.partitions import MAX_PARTITIONS_OPENED

    last = FS_LBA + len(filesystem) // 512 - 1
    disk = gpt_disk(filesystem, [(FS_LBA, last - i) for i in range(1000)])
    with open_image(BytesSource(disk, "disk.img"), OPTIONS) as tree:
        with pytest.raises(NotFound):
            tree.stat("boot/absent")
        assert len(tree.trees) == MAX_PARTITIONS_OPENED


@pytest.fixture(scope="module")
def catalog(tmp_path_factory):
    return Catalog(str(tmp_path_factory.mktemp("images")))


def test_partitions_open_when_a_lookup_reaches_them(catalog):
    """The GPT disk of the catalogue: FAT first, then ext4 with the kernel."""
    disk = catalog.image(next(case for case in CASES if case.name == "disk-gpt"))
    with open_image(LocalSource(disk), OPTIONS) as tree:
        assert [number for number, _ in tree.trees] == [1]
        tree.stat(SMALL)  # partition 1 has it
        assert [number for number, _ in tree.trees] == [1]
        tree.stat(KERNEL)  # only partition 2 has it
        assert [number for number, _ in tree.trees] == [1, 2]
