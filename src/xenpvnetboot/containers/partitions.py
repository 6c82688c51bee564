"""Whole-disk images: an MBR (with logical partitions) or GPT partition table.

A guest's disk image holds its ``/boot`` in one of several partitions, and
pygrub searches them in order; so does :class:`PartitionedTree`.  A file is
looked up in each partition in table order and the first one holding it
wins, for stat, fetch and open_source alike.  Partitions are opened as
views of the disk (no loop device, no offset mount) only when a lookup
reaches them, so a table of a thousand entries costs what the first few
do: the first readable partition is opened with the disk, the next ones
when a file is not found in those before.  Entries that name the same
bytes are opened once, and at most :data:`MAX_PARTITIONS_OPENED` are ever
opened.  A partition that cannot be read (corrupt, or needing a library
that is missing) is skipped; only when none can be read is the disk
refused.  All partitions share the disk's work budget.
"""

from __future__ import annotations

import struct
from typing import Callable, Iterator, List, Optional, Sequence, Set, Tuple, Union

from ..errors import BootError, NotFound
from ..transports.base import ByteSource, FileInfo, Sink, Tree
from .budget import Budget, BudgetExceeded, MeteredSource
from .detect import filesystem_kind, read_head
from .tree import ExtentSource

SECTOR = 512
#: Logical partitions followed along an extended partition's chain.
MAX_LOGICAL = 128
#: GPT entries read (the usual table has 128).
MAX_GPT_ENTRIES = 1024
#: Partitions whose first 34 KiB are read to recognise a filesystem, per
#: disk: beyond these, the rest of the table is not looked at.
MAX_PARTITIONS_PROBED = 128
#: Partition filesystems opened per disk (a real disk has a handful).
MAX_PARTITIONS_OPENED = 16

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


class _Slot:
    """One partition: not tried yet, opened, or skipped (with the reason)."""

    def __init__(self, number: int, offset: int, length: int) -> None:
        self.number = number
        self.offset = offset
        self.length = length
        self.state: Union[None, Tree, str] = None


OpenFilesystem = Callable[[ByteSource, str, Budget], Tree]


class PartitionedTree(Tree):
    """The filesystems of a partitioned disk, opened as lookups reach them.

    Owns the disk source and the partition trees; closing closes them all.
    """

    rooted = True

    def __init__(self, source: ByteSource, partitions: Sequence[Partition],
                 open_filesystem: OpenFilesystem, budget: Budget) -> None:
        self.source = source
        self._open_filesystem = open_filesystem
        self._budget = budget
        self._slots: List[_Slot] = []
        seen: Set[Tuple[int, int]] = set()
        for number, offset, length in partitions:
            length = min(length, max(0, source.size - offset))
            if length and (offset, length) not in seen:
                seen.add((offset, length))
                self._slots.append(_Slot(number, offset, length))
            if len(self._slots) == MAX_PARTITIONS_PROBED:
                break
        self._opened = 0

    @property
    def trees(self) -> List[Tuple[int, Tree]]:
        """The partitions opened so far, in table order."""
        return [(slot.number, slot.state) for slot in self._slots
                if isinstance(slot.state, Tree)]

    def _each(self) -> Iterator[Tuple[int, Tree]]:
        """Every readable partition in table order, opening each when reached."""
        for slot in self._slots:
            if slot.state is None:
                self._try(slot)
            if isinstance(slot.state, Tree):
                yield slot.number, slot.state

    def _try(self, slot: _Slot) -> None:
        if self._opened >= MAX_PARTITIONS_OPENED:
            slot.state = f"partition {slot.number} not opened (at most {MAX_PARTITIONS_OPENED})"
            return
        part = ExtentSource(self.source, [(slot.offset, slot.length)],
                            f"{self.source.name} partition {slot.number}")
        kind = filesystem_kind(read_head(MeteredSource(part, self._budget)))
        if kind is None:
            slot.state = ""
            return
        self._opened += 1
        try:
            slot.state = self._open_filesystem(part, kind, self._budget)
        except BudgetExceeded:
            raise
        except BootError as exc:
            slot.state = str(exc)

    def first(self) -> None:
        """Open the first readable partition; BootError if there is none."""
        for _ in self._each():
            return
        problems = [slot.state for slot in self._slots if isinstance(slot.state, str)
                    and slot.state]
        detail = "; ".join(problems) if problems else "none holds a recognised filesystem"
        raise BootError(
            f"{self.source.name}: partitioned disk, but no partition can be read as "
            f"ISO9660, ext2/3/4, FAT or squashfs ({detail})"
        )

    def url(self, path: str) -> str:
        return f"{self.source.name}:/{path.lstrip('/')}"

    def _locate(self, path: str) -> Tuple[Tree, FileInfo]:
        """The first partition that has *path*, and what it says about it."""
        searched = []
        for number, tree in self._each():
            try:
                return tree, tree.stat(path)
            except NotFound:
                searched.append(str(number))
        raise NotFound(f"{self.url(path)}: no such file in partitions {', '.join(searched)}")

    def stat(self, path: str) -> FileInfo:
        return self._locate(path)[1]

    def fetch(self, path: str, sink: Sink) -> None:
        self._locate(path)[0].fetch(path, sink)

    def open_source(self, path: str, info: Optional[FileInfo] = None) -> ByteSource:
        return self._locate(path)[0].open_source(path)

    def close(self) -> None:
        trees, self._slots = self.trees, []
        try:
            for _, tree in trees:
                tree.close()
        finally:
            self.source.close()


def open_partitioned(source: ByteSource, partitions: List[Partition],
                     open_filesystem: OpenFilesystem, budget: Budget) -> Tree:
    """A tree over the partitions; BootError if none can be read."""
    tree = PartitionedTree(source, partitions, open_filesystem, budget)
    try:
        tree.first()
    except BaseException:
        for _, opened in tree.trees:
            opened.close()
        raise
    return tree
