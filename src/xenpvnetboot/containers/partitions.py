"""Whole-disk images: an MBR (with logical partitions) or GPT partition table.

A guest's disk image holds its ``/boot`` in one of several partitions, and
pygrub searches them in order; so does :class:`PartitionedTree`.  Every
partition whose first bytes carry a filesystem we read is opened as a view
of the disk (no loop device, no offset mount); a file is then looked up in
each of them in table order and the first one holding it wins, for stat,
fetch and open_source alike.  A partition that cannot be read (corrupt, or
needing a library that is missing) is skipped; only when none can be read
is the disk refused.
"""

from __future__ import annotations

import struct
from typing import Callable, List, Optional, Sequence, Tuple

from ..errors import BootError, NotFound
from ..transports.base import ByteSource, FileInfo, Sink, Tree
from .detect import filesystem_kind, read_head
from .tree import ExtentSource

SECTOR = 512
#: Bounds that stop a corrupt table from making us loop or allocate.
MAX_LOGICAL = 128
MAX_GPT_ENTRIES = 1024

_EXTENDED_TYPES = (0x05, 0x0F, 0x85)
_GPT_PROTECTIVE = 0xEE

Partition = Tuple[int, int, int]  # (number, offset, length) in bytes


def _mbr_entries(sector: bytes) -> Optional[List[Tuple[int, int, int]]]:
    """The four (type, first sector, sectors) entries of a valid MBR, else None."""
    if len(sector) < SECTOR or sector[510:512] != b"\x55\xaa":
        return None
    entries = []
    for i in range(4):
        status, ptype, start, count = struct.unpack_from("<B3xB3xII", sector, 446 + 16 * i)
        if status not in (0x00, 0x80):
            return None
        entries.append((ptype, start, count))
    if not any(ptype and count for ptype, _, count in entries):
        return None
    return entries


def _logical(source: ByteSource, extended: int) -> List[Tuple[int, int]]:
    """(offset, length) of the logical partitions chained from an extended one."""
    found: List[Tuple[int, int]] = []
    ebr = extended
    seen = set()
    while len(found) < MAX_LOGICAL and ebr not in seen:
        seen.add(ebr)
        entries = _mbr_entries(source.pread(ebr * SECTOR, SECTOR))
        if entries is None:
            break
        (ptype, start, count), (next_type, next_start, _) = entries[0], entries[1]
        if ptype and count:
            found.append(((ebr + start) * SECTOR, count * SECTOR))
        if next_type not in _EXTENDED_TYPES or not next_start:
            break
        ebr = extended + next_start
    return found


def _gpt(source: ByteSource) -> Optional[List[Tuple[int, int]]]:
    """(offset, length) of the used GPT entries, trying 512 and 4096-byte sectors."""
    for sector in (SECTOR, 4096):
        header = source.pread(sector, 92)
        if len(header) < 92 or header[:8] != b"EFI PART":
            continue
        table_lba, count, entry_size = struct.unpack_from("<QII", header, 72)
        if not 128 <= entry_size <= 4096 or entry_size % 8:
            return None
        count = min(count, MAX_GPT_ENTRIES)
        table = source.pread(table_lba * sector, count * entry_size)
        found = []
        for i in range(len(table) // entry_size):
            entry = table[i * entry_size:(i + 1) * entry_size]
            first, last = struct.unpack_from("<QQ", entry, 32)
            if entry[:16] != bytes(16) and last >= first:
                found.append((first * sector, (last - first + 1) * sector))
        return found
    return None


def find_partitions(source: ByteSource) -> Optional[List[Partition]]:
    """The partitions of a disk image in table order, or None if it has no table.

    Numbers follow Linux: 1-4 primary (or GPT order), 5 on logical ones.
    """
    entries = _mbr_entries(source.pread(0, SECTOR))
    if entries is None:
        return None
    if any(ptype == _GPT_PROTECTIVE for ptype, _, _ in entries):
        gpt = _gpt(source)
        if gpt is not None:
            return [(i + 1, offset, length) for i, (offset, length) in enumerate(gpt)]
    primary: List[Partition] = []
    logical: List[Tuple[int, int]] = []
    for i, (ptype, start, count) in enumerate(entries):
        if not ptype or not count:
            continue
        if ptype in _EXTENDED_TYPES:
            logical.extend(_logical(source, start))
        else:
            primary.append((i + 1, start * SECTOR, count * SECTOR))
    return primary + [(5 + i, offset, length) for i, (offset, length) in enumerate(logical)]


class PartitionedTree(Tree):
    """The filesystems of a partitioned disk, searched in partition order.

    Owns the disk source and the partition trees; closing closes them all.
    """

    rooted = True

    def __init__(self, source: ByteSource, trees: Sequence[Tuple[int, Tree]]) -> None:
        self.source = source
        self.trees = list(trees)

    def url(self, path: str) -> str:
        return f"{self.source.name}:/{path.lstrip('/')}"

    def _locate(self, path: str) -> Tuple[Tree, FileInfo]:
        """The first partition that has *path*, and what it says about it."""
        for _, tree in self.trees:
            try:
                return tree, tree.stat(path)
            except NotFound:
                continue
        numbers = ", ".join(str(number) for number, _ in self.trees)
        raise NotFound(f"{self.url(path)}: no such file in partitions {numbers}")

    def stat(self, path: str) -> FileInfo:
        return self._locate(path)[1]

    def fetch(self, path: str, sink: Sink) -> None:
        self._locate(path)[0].fetch(path, sink)

    def open_source(self, path: str) -> ByteSource:
        return self._locate(path)[0].open_source(path)

    def close(self) -> None:
        trees, self.trees = self.trees, []
        try:
            for _, tree in trees:
                tree.close()
        finally:
            self.source.close()


def open_partitioned(
    source: ByteSource,
    partitions: List[Partition],
    open_filesystem: Callable[[ByteSource, str], Tree],
) -> Tree:
    """A tree over the readable partitions; BootError if there are none."""
    trees: List[Tuple[int, Tree]] = []
    problems: List[str] = []
    try:
        for number, offset, length in partitions:
            length = min(length, max(0, source.size - offset))
            part = ExtentSource(source, [(offset, length)], f"{source.name} partition {number}")
            kind = filesystem_kind(read_head(part)) if length else None
            if kind is None:
                continue
            try:
                trees.append((number, open_filesystem(part, kind)))
            except BootError as exc:
                problems.append(str(exc))
    except BaseException:
        for _, tree in trees:
            tree.close()
        raise
    if not trees:
        detail = "; ".join(problems) if problems else "none holds a recognised filesystem"
        raise BootError(
            f"{source.name}: partitioned disk, but no partition can be read as "
            f"ISO9660, ext2/3/4, FAT or squashfs ({detail})"
        )
    return PartitionedTree(source, trees)
