"""ext2/ext4 images whose inodes lie: the reader stops, whatever they claim.

Each image is made by mke2fs -d, then one inode or block is changed the way
a hostile image author would (debugfs ``sif`` for inode fields, a few bytes
written for a block's contents).  Before, a file claiming 128 MiB behind an
indirect block that points at itself kept The Sleuth Kit busy in C for
minutes; the C spin is why these run in a child with a CPU watchdog.
"""

from __future__ import annotations

import os
import re
import struct

import pytest

from support.images import BytesSource, PaddedSource, build_ext, run, run_bounded
from xenpvnetboot.containers import open_image
from xenpvnetboot.transports.base import TransportOptions

OPTIONS = TransportOptions()
KIB = 1024


def blocks_of(image: str, path: str) -> str:
    """What debugfs says about the blocks of *path* (BLOCKS: or EXTENTS: line)."""
    return run(["debugfs", "-R", f"stat /{path}", image]).decode().rsplit(":\n", 1)[-1]


def set_field(image: str, path: str, field: str, value: int) -> None:
    run(["debugfs", "-w", "-R", f"sif /{path} {field} {value}", image])


def write_at(image: str, offset: int, data: bytes) -> None:
    with open(image, "r+b") as out:
        out.seek(offset)
        out.write(data)


def read(image: str) -> bytes:
    with open(image, "rb") as fileobj:
        return fileobj.read()


@pytest.fixture
def ext2(tmp_path):
    """A 4 MiB ext2 of 1 KiB blocks whose boot/vmlinuz needs an indirect block."""
    os.makedirs(tmp_path / "tree" / "boot")
    (tmp_path / "tree" / "boot" / "vmlinuz").write_bytes(os.urandom(20 * KIB))
    image = build_ext(str(tmp_path / "tree"), str(tmp_path / "ext2.img"), "ext2", "4M",
                      options=["-b", "1024"])
    indirect = int(re.search(r"\(IND\):(\d+)", blocks_of(image, "boot/vmlinuz")).group(1))
    return image, indirect


def loop_back(image: str, block: int, size: int, *fields: str) -> bytes:
    """Make boot/vmlinuz claim *size* bytes, its *fields* (block pointers)
    name *block*, and fill *block* with its own number; the image's bytes."""
    set_field(image, "boot/vmlinuz", "size", size)
    for field in fields:
        set_field(image, "boot/vmlinuz", field, block)
    write_at(image, block * KIB, struct.pack("<256I", *[block] * 256))
    return read(image)


def outcome_of_reading(source) -> tuple:
    def read_kernel() -> int:
        with open_image(source, OPTIONS) as tree:
            return len(tree.read_bytes("boot/vmlinuz", limit=1 << 30))
    return run_bounded(read_kernel)


def test_a_claim_beyond_the_filesystem_is_refused_before_any_walk(ext2):
    """The issue's image: 4 MiB of filesystem, a file claiming 128 MiB, its
    indirect block full of its own number; the image claims 129 MiB, as a
    sparse file or a server's Content-Length would."""
    data = loop_back(*ext2, 128 << 20)
    kind, message = outcome_of_reading(PaddedSource(data, 129 << 20, "big.img"))
    assert kind == "BootError", message
    assert re.fullmatch(r"big.img:/boot/vmlinuz: inode \d+ claims 134217728 bytes, more than "
                        r"the 4194304 its filesystem can hold \(corrupt image\?\)", message)


def test_an_indirect_block_pointing_at_itself_is_a_loop(ext2):
    """A claim the filesystem could hold, over the same self-referencing block."""
    kind, message = outcome_of_reading(BytesSource(loop_back(*ext2, 3 << 20), "loop.img"))
    assert kind == "BootError", message
    assert re.match(rf"loop.img:/boot/vmlinuz \(inode \d+\): its block map loops through "
                    rf"block {ext2[1]} \(corrupt image\?\)$", message)


def test_a_double_indirect_block_pointing_at_itself_is_a_loop(ext2):
    data = loop_back(*ext2, 3 << 20, "block[DIND]")
    kind, message = outcome_of_reading(BytesSource(data, "loop.img"))
    assert kind == "BootError" and "its block map loops" in message, message


def test_a_block_outside_the_filesystem_is_refused(ext2):
    image, indirect = ext2
    write_at(image, indirect * KIB, struct.pack("<I", 5 << 20))
    kind, message = outcome_of_reading(BytesSource(read(image), "far.img"))
    assert kind == "BootError", message
    assert f"block {5 << 20} is outside the filesystem" in message


@pytest.fixture
def ext4(tmp_path):
    """An 8 MiB ext4 whose boot/vmlinuz has 6 extents: a tree of depth 1."""
    os.makedirs(tmp_path / "tree" / "boot")
    with open(tmp_path / "tree" / "boot" / "vmlinuz", "wb") as out:
        for number in range(6):  # holes between: one extent each
            out.seek(number * 200 * KIB)
            out.write(os.urandom(8 * KIB))
    image = build_ext(str(tmp_path / "tree"), str(tmp_path / "ext4.img"), "ext4", "8M",
                      options=["-b", "4096"])
    leaf = int(re.search(r"\(ETB0\):(\d+)", blocks_of(image, "boot/vmlinuz")).group(1))
    return image, leaf


def test_the_extent_tree_reads_back(ext4, tmp_path):
    image, _ = ext4
    expected = (tmp_path / "tree" / "boot" / "vmlinuz").read_bytes()
    with open_image(BytesSource(read(image)), OPTIONS) as tree:
        assert tree.read_bytes("boot/vmlinuz", limit=1 << 30) == expected


def test_an_extent_block_pointing_back_up_is_refused(ext4):
    """The leaf rewritten as an index node whose child is itself."""
    image, leaf = ext4
    write_at(image, leaf * 4096, struct.pack("<HHHHI", 0xF30A, 1, 340, 1, 0)
             + struct.pack("<IIHH", 0, leaf, 0, 0))
    kind, message = outcome_of_reading(BytesSource(read(image), "up.img"))
    assert kind == "BootError", message
    assert "an extent block of depth 1 where 0 belongs" in message


def test_an_extent_tree_deeper_than_the_kernel_allows_is_refused(ext4):
    image, _ = ext4
    set_field(image, "boot/vmlinuz", "block[1]", 6 << 16 | 4)  # eh_max 4, eh_depth 6
    kind, message = outcome_of_reading(BytesSource(read(image), "deep.img"))
    assert kind == "BootError" and "an extent tree 6 deep" in message, message


def test_an_extent_outside_the_filesystem_is_refused(ext4):
    image, leaf = ext4
    write_at(image, leaf * 4096 + 12 + 8, struct.pack("<I", 1 << 30))  # first ee_start_lo
    kind, message = outcome_of_reading(BytesSource(read(image), "far.img"))
    assert kind == "BootError", message
    assert f"an extent at block {1 << 30}, outside the filesystem" in message
