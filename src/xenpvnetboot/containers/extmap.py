"""Where the bytes of an ext2/3/4 inode are: block maps, extent trees, inline data.

A file's blocks are found one run at a time, from the logical block being
read, so reading costs what is read and not what the inode claims.  Both
structures have a fixed depth, and the path to a logical block is walked
from the root down, never sideways:

* a block map (ext2/ext3) reaches a block through at most three indirect
  blocks, and a block met twice on that path (an indirect block pointing at
  itself or at the one above it) is refused as the loop it is;
* an extent tree (ext4) says its depth in every node; a node whose depth
  is not one less than its parent's (a child pointing back up) or that is
  deeper than the kernel allows is refused, so the walk ends too.

Every pointer must name a block inside the filesystem; anything else is a
corrupt image.  Each indirect or extent block read is charged to the
image's budget.
"""

from __future__ import annotations

import struct
from collections import OrderedDict
from typing import Callable, NoReturn, Optional, Tuple

from ..errors import BootError
from .budget import Budget

#: Deepest extent tree the kernel accepts (EXT4_MAX_EXTENT_DEPTH).
MAX_EXTENT_DEPTH = 5
#: Indirect or extent blocks kept parsed per file.
_CACHED_TABLES = 64
_EXTENT_MAGIC = 0xF30A
_UNINIT = 32768  # ee_len above this: an unwritten extent, read as zeros
_DIRECT = 12
#: Hole length meaning "to the end of the file".
TO_THE_END = 1 << 62

#: ``(first physical block or None for a hole, blocks in the run)``.
BlockRun = Tuple[Optional[int], int]


class _Tables:
    """Blocks of pointers read from the image, parsed once, charged once."""

    def __init__(self, read_block: Callable[[int], bytes], budget: Budget) -> None:
        self._read = read_block
        self._budget = budget
        self._cache: "OrderedDict[int, tuple]" = OrderedDict()

    def get(self, block: int, parse: Callable[[bytes], tuple]) -> tuple:
        table = self._cache.get(block)
        if table is None:
            self._budget.charge("blocks")
            table = parse(self._read(block))
            self._cache[block] = table
            while len(self._cache) > _CACHED_TABLES:
                self._cache.popitem(last=False)
        else:
            self._cache.move_to_end(block)
        return table


class BlockMap:
    """The direct and indirect block pointers of an ext2/ext3 inode."""

    def __init__(self, i_block: bytes, block_size: int, fs_blocks: int,
                 read_block: Callable[[int], bytes], budget: Budget, where: str) -> None:
        self._root = struct.unpack("<15I", i_block[:60])
        self._per = block_size // 4
        self._fs_blocks = fs_blocks
        self._where = where
        self._tables = _Tables(read_block, budget)

    def _pointers(self, block: int) -> tuple:
        self._check(block, 1)
        return self._tables.get(block, lambda data: _unpack_all(self._per, data, self._where))

    def _check(self, block: int, count: int) -> None:
        if block + count > self._fs_blocks:
            raise BootError(f"{self._where}: block {block} is outside the filesystem "
                            "(corrupt image?)")

    def run(self, logical: int) -> BlockRun:
        """The run of blocks starting at *logical*."""
        if logical < _DIRECT:
            return self._scan(self._root[:_DIRECT], logical)
        rel = logical - _DIRECT
        for depth in (1, 2, 3):
            span = self._per ** depth
            if rel < span:
                break
            rel -= span
        else:
            raise BootError(f"{self._where}: block {logical} is beyond what a block map holds")
        pointer = self._root[_DIRECT + depth - 1]
        path: Tuple[int, ...] = ()
        for level in range(depth, 0, -1):
            span = self._per ** (level - 1)
            if pointer == 0:  # a hole over the rest of this subtree
                return None, self._per ** level - rel % (self._per ** level)
            if pointer in path:
                self._loop(pointer)
            path += (pointer,)
            table = self._pointers(pointer)
            if level == 1:
                return self._scan(table, rel % self._per, path)
            pointer = table[rel // span % self._per]
        raise AssertionError("unreachable")

    def _loop(self, block: int) -> NoReturn:
        raise BootError(f"{self._where}: its block map loops through block {block} "
                        "(corrupt image?)")

    def _scan(self, table: tuple, index: int, path: Tuple[int, ...] = ()) -> BlockRun:
        """The run at *index* of one table: consecutive blocks, or zeros."""
        first = table[index]
        end = index + 1
        if first == 0:
            while end < len(table) and table[end] == 0:
                end += 1
            return None, end - index
        while end < len(table) and table[end] == first + end - index:
            end += 1
        self._check(first, end - index)
        for block in path:
            if first <= block < first + end - index:
                self._loop(block)
        return first, end - index


def _unpack_all(count: int, data: bytes, where: str) -> tuple:
    if len(data) < count * 4:
        raise BootError(f"{where}: the image ends inside a block map (truncated image?)")
    return struct.unpack_from(f"<{count}I", data)


class ExtentMap:
    """The extent tree of an ext4 inode (flag EXT4_EXTENTS_FL)."""

    def __init__(self, i_block: bytes, block_size: int, fs_blocks: int,
                 read_block: Callable[[int], bytes], budget: Budget, where: str) -> None:
        self._block_capacity = (block_size - 12) // 12
        self._fs_blocks = fs_blocks
        self._where = where
        self._tables = _Tables(read_block, budget)
        self._root = self._parse(i_block[:60], 4, None)
        if self._root[0] > MAX_EXTENT_DEPTH:
            self._corrupt(f"an extent tree {self._root[0]} deep")

    def _corrupt(self, what: str) -> NoReturn:
        raise BootError(f"{self._where}: {what} (corrupt image?)")

    def _parse(self, data: bytes, capacity: int, depth: Optional[int]) -> tuple:
        """(depth, entries) of one node; entries are (logical, block, length) sorted."""
        if len(data) < 12:
            self._corrupt("the image ends inside an extent block")
        magic, count, most, node_depth = struct.unpack_from("<HHHH", data)
        if magic != _EXTENT_MAGIC:
            self._corrupt("an extent block without its magic number")
        if depth is not None and node_depth != depth:
            self._corrupt(f"an extent block of depth {node_depth} where {depth} belongs")
        if count > most or most > capacity or len(data) < 12 + 12 * count:
            self._corrupt(f"an extent block of {count} entries")
        entries = []
        previous = -1
        for i in range(count):
            if node_depth:
                logical, lo, hi = struct.unpack_from("<IIH", data, 12 + 12 * i)
                block, length = lo | hi << 32, 0
                self._inside(block, 1)
            else:
                logical, length, hi, lo = struct.unpack_from("<IHHI", data, 12 + 12 * i)
                block = lo | hi << 32
                if length > _UNINIT:
                    length, block = length - _UNINIT, -1  # unwritten: zeros
                elif length:
                    self._inside(block, length)
            if logical <= previous:
                self._corrupt("extents out of order")
            previous = logical + max(length, 1) - 1
            entries.append((logical, block, length))
        return node_depth, tuple(entries)

    def _child_parser(self, depth: int) -> Callable[[bytes], tuple]:
        return lambda data: self._parse(data, self._block_capacity, depth)

    def _inside(self, block: int, count: int) -> None:
        if block + count > self._fs_blocks:
            self._corrupt(f"an extent at block {block}, outside the filesystem")

    def run(self, logical: int) -> BlockRun:
        depth, entries = self._root
        limit = TO_THE_END
        while True:
            found = None
            for number, entry in enumerate(entries):
                if entry[0] > logical:
                    limit = min(limit, entry[0])
                    break
                found = number
            if found is None:
                return None, limit - logical
            start, block, length = entries[found]
            if depth == 0:
                if logical >= start + length:
                    return None, limit - logical
                count = start + length - logical
                return (None if block < 0 else block + logical - start), count
            depth, entries = self._tables.get(block, self._child_parser(depth - 1))


def xattr_value(raw: bytes, start: int, index: int, name: bytes) -> Optional[bytes]:
    """The value of the in-inode extended attribute *index*.*name*, if any.

    Inline data (EXT4_INLINE_DATA_FL) keeps what does not fit in i_block in
    ``system.data`` (index 7, name ``data``), after the inode's extra fields.
    """
    if raw[start:start + 4] != b"\x00\x00\x02\xea":
        return None
    base = start + 4
    pos = base
    while pos + 16 <= len(raw):
        if raw[pos:pos + 4] == bytes(4):  # the end of the list
            return None
        name_len, name_index, value_offs, value_inum, value_size = struct.unpack_from(
            "<BBHII", raw, pos)
        entry_name = raw[pos + 16:pos + 16 + name_len]
        if name_index == index and entry_name == name and value_inum == 0:
            value = raw[base + value_offs:base + value_offs + value_size]
            if len(value) != value_size:
                return None
            return value
        pos += (16 + name_len + 3) & ~3
    return None
