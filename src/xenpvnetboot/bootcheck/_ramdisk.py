"""Inspecting a ramdisk the way Linux unpacks it (init/initramfs.c).

A ramdisk is a sequence of members: newc cpio archives, each either plain
or compressed, separated by NUL padding (an uncompressed microcode archive
followed by a compressed initramfs is the common case).  Each compressed
member is decompressed to its end, discarding the output, because that is
the only way to find where a gzip stream ends (so where the next member
starts) and whether the file was cut short: Linux would otherwise stop with
"Initramfs unpacking failed" half-way through the guest's boot.

The work is bounded per file, whatever its members: bytes decompressed in
all, members, cpio entries and CPU time (:class:`Work`).  Reaching a bound
leaves the rest "not checked", which is no fault: the guest's kernel will
unpack it anyway.
"""

from __future__ import annotations

import re
import time
from typing import BinaryIO, Callable, Optional, Tuple, Union

from ._formats import (CPIO_NEWC, CPIO_ODC, HEAD_SIZE, clean, compression_of,
                       describe_other, filesystem_image, hex_start)
from ._reports import RamdiskMember, RamdiskReport
from ._reader import Reader
from ._streams import (LZ4_FRAME, FileRegion, OutOfWork, StreamError, TooLarge, open_decompressed,
                       read_at)

#: Most bytes decompressed from one ramdisk, all its members together; past
#: this the rest is not checked.  Debian's installer initrd gives 131 MiB.
RAMDISK_LIMIT = 1 << 30
#: Members (archives, compressed or not) looked at in one ramdisk.  Real
#: ones have one to three (early microcode, firmware, the initramfs).
RAMDISK_MAX_MEMBERS = 64
#: cpio entries walked in one ramdisk (Debian's installer: 2,400; a large
#: live initramfs: some 50,000).  Each costs the check a few microseconds.
RAMDISK_MAX_ENTRIES = 1 << 20
#: CPU seconds the check of one ramdisk may take (of the thread doing it).
#: A gigabyte of bzip2 or xz takes longer to inflate than one of gzip: this
#: bounds the time where RAMDISK_LIMIT bounds the bytes.
RAMDISK_CPU_SECONDS = 20.0
#: Longest cpio name Linux accepts (PATH_MAX).
MAX_NAME = 4096
_HEADER = 110
_TRAILER = b"TRAILER!!!"
#: The 13 fields of a newc header: 8 hex digits each.
_HEX_FIELDS = re.compile(rb"[0-9A-Fa-f]{104}")


class CpioError(Exception):
    """A cpio archive is damaged (or, with ``cut_short``, ends early)."""

    def __init__(self, detail: str, cut_short: bool = False) -> None:
        super().__init__(detail)
        self.cut_short = cut_short


def inspect_ramdisk(path: Union[str, int], name: Optional[str] = None,
                    verify: bool = True,
                    opened: Optional[Tuple[BinaryIO, int]] = None) -> RamdiskReport:
    """Facts about the ramdisk at *path* (or in the file and size *opened*);
    never raises for what the file holds.

    With *verify* false only the start of each compressed member is looked
    at, which is instant but cannot see a file cut short.
    """
    report = RamdiskReport(path=path, name=name or str(path))
    report.examine(lambda fileobj: _walk_file(fileobj, report, verify), opened)
    report.verified = bool(report.members) and not report.faults and not report.not_checked
    return report


class Work:
    """What checking one ramdisk has cost so far, against the bounds above."""

    def __init__(self) -> None:
        self.produced = 0
        self.entries = 0
        self._cpu_start = time.thread_time()

    @property
    def remaining(self) -> int:
        """Bytes the next member may still be decompressed to."""
        return max(0, RAMDISK_LIMIT - self.produced)

    def metered(self, read: Callable[[int], bytes], fmt: str) -> Callable[[int], bytes]:
        """*read*, refusing to go on once the CPU time is spent."""
        def checked(size: int) -> bytes:
            if time.thread_time() - self._cpu_start > RAMDISK_CPU_SECONDS:
                raise OutOfWork(fmt, f"after {RAMDISK_CPU_SECONDS:g} s of CPU")
            return read(size)
        return checked

    def entry(self, fmt: str) -> None:
        self.entries += 1
        if self.entries > RAMDISK_MAX_ENTRIES:
            raise OutOfWork(fmt, f"after {RAMDISK_MAX_ENTRIES} cpio entries")


def _walk_file(fileobj: BinaryIO, report: RamdiskReport, verify: bool) -> None:
    """Members one after the other, as unpack_to_rootfs() takes them."""
    pos = 0
    work = Work()
    while True:
        pos = _skip_nuls(fileobj, pos, report.size)
        if pos >= report.size:
            if not report.members:
                report.faults.append("holds only zero bytes")
            return
        if len(report.members) >= RAMDISK_MAX_MEMBERS:
            report.not_checked = (f"not checked past its first {RAMDISK_MAX_MEMBERS} "
                                  f"archives (at offset {pos})")
            return
        head = read_at(fileobj, pos, HEAD_SIZE)
        if pos == 0 and not head.startswith(b"07070") and not compression_of(head):
            _not_an_archive(head, report)
            return
        try:
            following = _member(fileobj, pos, head, report, verify, work)
        except StreamError as exc:
            report.stream_trouble(exc, pos)
            return
        except CpioError as exc:
            _cpio_trouble(exc, report)
            return
        if following is None:
            return
        pos = following


def _skip_nuls(fileobj: BinaryIO, pos: int, size: int) -> int:
    """Offset of the first non-NUL byte at or after *pos* (or *size*)."""
    while pos < size:
        chunk = read_at(fileobj, pos, 1 << 16)
        if not chunk:
            return size
        rest = chunk.lstrip(b"\0")
        pos += len(chunk) - len(rest)
        if rest:
            return pos
    return size


def _not_an_archive(head: bytes, report: RamdiskReport) -> None:
    fs = filesystem_image(head)
    if fs:
        # An old-style initrd image, which Linux can still load as a RAM disk.
        report.members.append(RamdiskMember(0, None, f"{fs} image", length=report.size))
    else:
        report.faults.append(f"is {describe_other(head)}, not a ramdisk")


def _member(fileobj: BinaryIO, pos: int, head: bytes, report: RamdiskReport,
            verify: bool, work: Work) -> Optional[int]:
    """Check the member at *pos*; the offset after it, or None to stop."""
    if head[:1] == b"0":
        if pos % 4:
            raise CpioError(f"a cpio archive starts at offset {pos}, which is not a "
                            "multiple of 4")
        member = RamdiskMember(pos, None, "cpio")
        report.members.append(member)
        reader = Reader(work.metered(FileRegion(fileobj, pos, report.size).read, "cpio"))
        member.entries = walk_cpio(reader, f"the cpio archive at offset {pos}",
                                   lambda: work.entry("cpio"))
        member.length = reader.pos
        return pos + reader.pos
    fmt = compression_of(head)
    if fmt is None:
        report.faults.append(f"has data of no known format at offset {pos}, after "
                             f"{_members(report)} (it starts with {hex_start(head)})")
        return None
    if fmt == LZ4_FRAME:
        report.faults.append(f"uses the lz4 frame format at offset {pos}; Linux unpacks "
                             "only the legacy lz4 format (lz4 -l)")
        return None
    try:
        return _compressed_member(fileobj, pos, fmt, report, verify, work)
    except TooLarge:  # the bytes left for this member were the file's
        raise TooLarge(fmt, RAMDISK_LIMIT) from None


def _members(report: RamdiskReport) -> str:
    count = len(report.members)
    return f"{count} archive{'s' if count != 1 else ''}"


def _compressed_member(fileobj: BinaryIO, pos: int, fmt: str, report: RamdiskReport,
                       verify: bool, work: Work) -> Optional[int]:
    member = RamdiskMember(pos, fmt)
    report.members.append(member)
    stream = open_decompressed(fmt, fileobj, pos, report.size, work.remaining)
    reader = Reader(work.metered(stream.read, fmt))
    inner = reader.peek(2048)
    fs = filesystem_image(inner) if pos == 0 else None
    if inner.startswith(CPIO_NEWC) or inner.startswith(CPIO_ODC):
        member.content = "cpio"
    elif fs:
        member.content = f"{fs} image"
    else:
        report.faults.append(f"holds {describe_other(inner)} in its {fmt} data at offset "
                             f"{pos}, where a cpio archive should be")
        return None
    if not verify:
        report.not_checked = f"not checked past the start of the {fmt} data at offset {pos}"
        return None
    try:
        if fs:
            reader.skip(work.remaining + 1)
        else:
            member.entries = _walk_archives(reader, f"the cpio archive in the {fmt} data at "
                                                    f"offset {pos}", lambda: work.entry(fmt))
    finally:
        work.produced += stream.produced
    member.unpacked_size = stream.produced
    end = stream.end_offset if stream.end_offset is not None else report.size
    member.length = end - pos
    return end


def _walk_archives(reader: Reader, where: str, count: Callable[[], None]) -> int:
    """Walk the archives of one decompressed member; the entries counted.

    Inside compressed data Linux accepts NUL padding and further archives
    after a trailer, and nothing else ("junk within compressed archive").
    """
    entries = 0
    while True:
        entries += walk_cpio(reader, where, count)
        reader.skip_zeros()
        following = reader.peek(1)
        if not following:
            return entries
        if following != b"0" or reader.pos % 4:
            raise CpioError(f"{where} is followed by data that is not a cpio archive, "
                            f"at unpacked offset {reader.pos}")


def _align4(value: int) -> int:
    return (value + 3) & ~3


def _header_fields(header: bytes, where: str, at: int) -> tuple:
    """(file size, name size) of a newc header, or CpioError."""
    magic = header[:6]
    if magic == CPIO_ODC:
        raise CpioError(f"{where} is in the old portable (odc) format; Linux unpacks only "
                        "newc archives (cpio -H newc)")
    if len(header) < _HEADER and any(known.startswith(magic) for known in CPIO_NEWC):
        raise CpioError(f"{where} ends inside an entry header", cut_short=True)
    if magic not in CPIO_NEWC or not _HEX_FIELDS.fullmatch(header[6:_HEADER]):
        raise CpioError(f"{where} has a damaged header at unpacked offset {at}")
    filesize = int(header[54:62], 16)
    namesize = int(header[94:102], 16)
    if not 0 < namesize <= MAX_NAME:
        raise CpioError(f"{where} has a name of {namesize} bytes at unpacked offset {at}")
    return filesize, namesize


def _nothing() -> None:
    return None


def walk_cpio(reader: Reader, where: str, count: Callable[[], None] = _nothing) -> int:
    """Walk one newc archive up to and including TRAILER!!!; the entries counted.

    Offsets are aligned relative to the reader's start, as Linux aligns them
    relative to the start of each member.  *count* is called for each entry
    (it raises once the file's bound on entries is reached).
    """
    entries = 0
    while True:
        count()
        at = reader.pos
        header = reader.read(_HEADER)
        if not header:
            raise CpioError(f"{where} ends without its TRAILER!!! entry", cut_short=True)
        filesize, namesize = _header_fields(header, where, at)
        padded = _align4(at + _HEADER + namesize) - (at + _HEADER)
        name = reader.read(padded)
        if len(name) < padded:
            raise CpioError(f"{where} ends inside an entry name", cut_short=True)
        entries += 1
        if name[:namesize].rstrip(b"\0") == _TRAILER:
            return entries
        body = _align4(reader.pos + filesize) - reader.pos
        if reader.skip(body) < body:
            shown = clean(name[:namesize].rstrip(b"\0").decode("utf-8", "replace"))
            raise CpioError(f'{where} ends inside "{shown}"', cut_short=True)


def _cpio_trouble(exc: CpioError, report: RamdiskReport) -> None:
    report.faults.append(f"is cut short: {exc}" if exc.cut_short else f"is damaged: {exc}")
