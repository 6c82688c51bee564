"""squashfs images whose directory tables lie: reading costs what is read.

mksquashfs only writes honest trees, so these images come from a small
writer here that lays out the squashfs 4.0 tables itself (uncompressed
metadata blocks, one data block per file), with directory entries free to
point anywhere: the same directory from many parents, a directory inside
itself.
"""

from __future__ import annotations

import struct
from typing import Dict, List, Tuple

import pytest

from support.images import BytesSource, run_bounded
from xenpvnetboot.containers import open_image
from xenpvnetboot.errors import BootError, NotFound
from xenpvnetboot.transports.base import TransportOptions

OPTIONS = TransportOptions()
BLOCK = 8192  # a metadata block's size once decompressed
KERNEL = b"\x7fELF a kernel, for the test\n" * 40

#: A tree: directory key -> [(name, key of what the entry names)]; keys not
#: in it are files (their data in FILES) or symlinks (targets in LINKS).
Tree = Dict[str, List[Tuple[str, str]]]


def _table(stream: bytes) -> bytes:
    """A metadata table: *stream* in uncompressed blocks of 8 KiB."""
    out = b""
    for start in range(0, len(stream), BLOCK):
        chunk = stream[start:start + BLOCK]
        out += struct.pack("<H", 0x8000 | len(chunk)) + chunk
    return out


def _ref(position: int) -> Tuple[int, int]:
    """(block start within the table, offset) of byte *position* of its stream."""
    return position // BLOCK * (BLOCK + 2), position % BLOCK


def squashfs(tree: Tree, files: Dict[str, bytes], links: Dict[str, str] = {}) -> bytes:
    """A squashfs 4.0 image of *tree* rooted at key "root" (gzip, nothing compressed)."""
    keys = list(tree) + list(files) + list(links)
    data = b""
    data_at = {}
    for key in files:
        data_at[key] = 96 + len(data)
        data += files[key]
    sizes = {key: 32 if key in tree else 32 + 4 if key in files else 24 + len(links[key])
             for key in keys}
    inode_at, position = {}, 0
    for key in keys:
        inode_at[key] = position
        position += sizes[key]
    listings, dir_at = b"", {}
    for key, entries in tree.items():
        dir_at[key] = len(listings)
        for name, target in sorted(entries):
            block, offset = _ref(inode_at[target])
            kind = 1 if target in tree else 2 if target in files else 3
            number = keys.index(target) + 1
            listings += struct.pack("<III", 0, block, number)
            listings += struct.pack("<HhHH", offset, 0, kind, len(name) - 1) + name.encode()
    inodes = b""
    for number, key in enumerate(keys, 1):
        if key in tree:
            size = sum(12 + 8 + len(name) for name, _ in tree[key]) + 3
            block, offset = _ref(dir_at[key])
            inodes += struct.pack("<HHHHII", 1, 0o755, 0, 0, 0, number)
            inodes += struct.pack("<IIHHI", block, 2, size, offset, 1)
        elif key in files:
            inodes += struct.pack("<HHHHII", 2, 0o644, 0, 0, 0, number)
            inodes += struct.pack("<IIII", data_at[key], 0xFFFFFFFF, 0, len(files[key]))
            inodes += struct.pack("<I", len(files[key]) | 1 << 24)  # stored uncompressed
        else:
            inodes += struct.pack("<HHHHII", 3, 0o777, 0, 0, 0, number)
            inodes += struct.pack("<II", 1, len(links[key])) + links[key].encode()
    inode_table = 96 + len(data)
    directory_table = inode_table + len(_table(inodes))
    id_block = directory_table + len(_table(listings))
    id_table = id_block + 2 + 4
    body = data + _table(inodes) + _table(listings) + _table(struct.pack("<I", 0))
    body += struct.pack("<Q", id_block)
    used = 96 + len(body)
    root_block, root_offset = _ref(inode_at["root"])
    superblock = struct.pack(
        "<IIIIIHHHHHHQQQQQQQQ", 0x73717368, len(keys), 0, 131072, 0, 1, 17, 0, 1, 4, 0,
        root_block << 16 | root_offset, used, id_table, (1 << 64) - 1, inode_table,
        directory_table, (1 << 64) - 1, (1 << 64) - 1)
    return superblock + body


def shared_levels(depth: int) -> Tree:
    """*depth* levels, each with two names for the next one: 2**depth paths."""
    tree: Tree = {"root": [("a", "d1"), ("b", "d1")]}
    for level in range(1, depth):
        tree[f"d{level}"] = [("a", f"d{level + 1}"), ("b", f"d{level + 1}")]
    tree[f"d{depth}"] = [("vmlinuz", "kernel")]
    return tree


def open_and_read(image: bytes, path: str) -> bytes:
    with open_image(BytesSource(image, "crafted.squashfs"), OPTIONS) as tree:
        return tree.read_bytes(path, limit=1 << 20)


def test_the_writer_makes_images_the_reader_reads():
    image = squashfs({"root": [("boot", "boot")], "boot": [("vmlinuz", "kernel")]},
                     {"kernel": KERNEL})
    assert open_and_read(image, "boot/vmlinuz") == KERNEL


def test_a_directory_shared_many_times_over_costs_only_the_path_read():
    """40 levels of two names each for the next: 2**40 paths in 4 KB.  The
    whole-tree scan at open never ended; only the path asked for is read."""
    image = squashfs(shared_levels(40), {"kernel": KERNEL})
    assert len(image) < 5 << 10
    path = "/".join("ab"[i % 2] for i in range(40)) + "/vmlinuz"
    assert run_bounded(lambda: open_and_read(image, path)) == ("returned", repr(KERNEL))


def test_a_directory_inside_itself_is_a_path_like_any_other():
    image = squashfs({"root": [("boot", "boot")],
                      "boot": [("boot", "boot"), ("vmlinuz", "kernel")]}, {"kernel": KERNEL})
    outcome = run_bounded(lambda: open_and_read(image, "boot/boot/boot/boot/vmlinuz"))
    assert outcome == ("returned", repr(KERNEL))


def test_directories_are_read_once_whatever_the_paths(monkeypatch):
    """However many paths lead to it, a shared directory costs its entries once."""
    image = squashfs(shared_levels(12), {"kernel": KERNEL})
    with open_image(BytesSource(image), OPTIONS) as tree:
        for first in "ab":
            for second in "ab":
                with pytest.raises(NotFound):
                    tree.stat(f"{first}/{second}/missing")
        assert tree.budget.used["entries"] == 2 + 2 + 2


def test_the_visit_budget_refuses_an_image_that_needs_more(monkeypatch):
    from xenpvnetboot.containers import budget

    monkeypatch.setattr(budget, "MAX_DIRECTORY_ENTRIES", 20)
    image = squashfs(shared_levels(30), {"kernel": KERNEL})
    path = "a/" * 30 + "vmlinuz"
    with pytest.raises(BootError, match=r"^crafted.squashfs: more than 20 directory entries "
                                        r"read \(the bound per image; corrupt or crafted"):
        open_and_read(image, path)


def test_symlink_loops_and_long_link_chains_end(monkeypatch):
    """A link to itself, and links that each climb back up and down again."""
    tree: Tree = {"root": [("boot", "boot"), ("self", "self")],
                  "boot": [("vmlinuz", "kernel"), ("zig", "zig")]}
    links = {"self": "self", "zig": "../boot/../boot/../boot/zig"}
    image = squashfs(tree, {"kernel": KERNEL}, links)
    with open_image(BytesSource(image), OPTIONS) as opened:
        for path in ("self", "boot/zig"):
            with pytest.raises(BootError, match="too many levels of symbolic links"):
                opened.stat(path)
        assert opened.budget.used["lookups"] <= 41 + 1 + 41 * 4


def test_a_huge_directory_size_is_bounded(monkeypatch):
    """A directory claiming 64 KiB of entries over a table that holds one."""
    image = bytearray(squashfs({"root": [("boot", "boot")], "boot": [("vmlinuz", "kernel")]},
                               {"kernel": KERNEL}))
    inode = image.find(struct.pack("<HHHHII", 1, 0o755, 0, 0, 0, 2))
    struct.pack_into("<H", image, inode + 16 + 8, 0xFFFF)  # the file_size field
    with pytest.raises(BootError):
        open_and_read(bytes(image), "boot/vmlinuz")
