"""Inspecting a kernel file: bzImage, ELF vmlinux, gzip-compressed ELF, arm64 Image.

Follows what libxenguest does with the file (xg_dom_bzimageloader.c and
xg_dom_elfloader.c) so that a file it would reject with "no loader found"
is named here first, with the reason.
"""

from __future__ import annotations

import struct
from typing import BinaryIO, Callable, Optional, Tuple, Union

from . import _elf
from ._elf import ElfError, ElfTooLarge, FileSource, StreamSource
from ._formats import (ELF_MAGIC, HEAD_SIZE, clean, compression_of, describe_other,
                       hex_start, is_arm64_image, is_bzimage)
from ._reports import KernelReport
from ._reader import read_head
from ._streams import GZIP, LZ4_FRAME, Decompressed, StreamError, open_decompressed, read_at

#: Most bytes decompressed while looking for the Xen notes of one kernel,
#: over every pass together (going back to an earlier offset means starting
#: the decompression again).  Linux's notes lie within its first few MiB.
KERNEL_LIMIT = 256 << 20
#: End of the setup header fields read here (kernel_info_offset, protocol 2.15).
SETUP_HEADER_END = 0x26C
#: Xen's bzImage loader needs boot protocol 2.08 (payload_offset/payload_length).
MIN_PROTOCOL = 0x0208
#: How far into an uncompressed kernel the "Linux version" banner is looked for.
BANNER_SCAN = 64 << 20
_BANNER = b"Linux version "


def inspect_kernel(path: Union[str, int], name: Optional[str] = None,
                   opened: Optional[Tuple[BinaryIO, int]] = None) -> KernelReport:
    """Facts about the kernel at *path* (or in the file and size *opened*);
    never raises for what the file holds."""
    report = KernelReport(path=path, name=name or str(path))
    report.examine(lambda fileobj: _dispatch(fileobj, fileobj.read(HEAD_SIZE), report), opened)
    return report


def _dispatch(fileobj: BinaryIO, head: bytes, report: KernelReport) -> None:
    fmt = compression_of(head)
    if is_bzimage(head):
        _bzimage(fileobj, head, report)
    elif head.startswith(ELF_MAGIC):
        report.format = "ELF"
        _elf_kernel(FileSource(fileobj, report.size), report, "is a malformed ELF file")
        if report.format:
            report.version = _banner(fileobj)
    elif is_arm64_image(head):
        _arm64_image(fileobj, report)
    elif fmt:
        _compressed_file(fileobj, fmt, report)
    else:
        report.faults.append(f"is {describe_other(head)}, not a kernel")


def _u16(data: bytes, offset: int) -> int:
    return struct.unpack_from("<H", data, offset)[0]


def _u32(data: bytes, offset: int) -> int:
    return struct.unpack_from("<I", data, offset)[0]


def _bzimage(fileobj: BinaryIO, head: bytes, report: KernelReport) -> None:
    """The setup header (Documentation/arch/x86/boot.rst), then the payload."""
    report.format = "Linux bzImage"
    if len(head) < SETUP_HEADER_END:
        report.faults.append(f"is cut short: {report.size} bytes, inside its bzImage header")
        return
    version = _u16(head, 0x206)
    report.boot_protocol = f"{version >> 8}.{version & 0xFF:02d}"
    setup_size = ((head[0x1F1] or 4) + 1) * 512
    report.version = _setup_string(head, _u16(head, 0x20E), setup_size)
    if version >= 0x0204 and report.size < setup_size + _u32(head, 0x1F4) * 16:
        report.faults.append(f"is cut short: {report.size} bytes where its bzImage header "
                             f"announces {setup_size + _u32(head, 0x1F4) * 16}")
        return
    if version < MIN_PROTOCOL:
        report.faults.append(f"uses boot protocol {report.boot_protocol}; Xen's bzImage "
                             "loader needs 2.08 or later (Linux 2.6.26 or later)")
        return
    start = setup_size + _u32(head, 0x248)
    end = start + _u32(head, 0x24C)
    if end > report.size:
        report.faults.append(f"is cut short: its compressed kernel ends at byte {end} "
                             f"but the file has {report.size}")
        return
    payload_head = read_at(fileobj, start, 16)
    fmt = compression_of(payload_head)
    if fmt is None or fmt == LZ4_FRAME:
        report.faults.append("has a bzImage payload in no format Xen's loader "
                             f"decompresses (it starts with {hex_start(payload_head)})")
        return
    report.compression = fmt
    _payload(lambda limit: open_decompressed(fmt, fileobj, start, end, limit),
             report, "has a malformed kernel inside the bzImage")


def _setup_string(head: bytes, pointer: int, setup_size: int) -> Optional[str]:
    """The kernel_version string: at pointer + 0x200, inside the setup code."""
    if not pointer or pointer + 0x200 >= min(setup_size, len(head)):
        return None
    raw = head[pointer + 0x200:min(setup_size, len(head))].split(b"\0", 1)[0]
    return clean(raw.decode("ascii", "replace"), 200) or None


def _payload(opener: Callable[[int], Decompressed], report: KernelReport,
             malformed: str) -> None:
    """Xen notes of a compressed ELF; decompresses only as far as they lie."""
    source = StreamSource(opener, KERNEL_LIMIT)
    try:
        head = source.read_at(0, 64)
        if not head.startswith(ELF_MAGIC):
            report.faults.append(f"contains {describe_other(head)} where the ELF kernel "
                                 "should be")
            return
        _elf_kernel(source, report, malformed)
    except StreamError as exc:
        report.stream_trouble(exc)
    finally:
        report.unpacked_bytes = source.produced


def _elf_kernel(source: Union[FileSource, StreamSource], report: KernelReport,
                malformed: str) -> None:
    """Fill *report* from the ELF headers and notes of *source*."""
    try:
        info = _elf.parse_elf(source)
    except ElfTooLarge as exc:  # a limit of ours: unknown, not wrong
        report.not_checked = str(exc)
        return
    except ElfError as exc:
        report.faults.append(f"{malformed}: {exc}")
        if isinstance(source, FileSource):
            report.format = None
        return
    report.bits, report.machine = info.bits, info.machine
    if source.size is not None and info.needed_size > source.size:
        report.faults.append(f"is cut short: {source.size} bytes where its ELF program "
                             f"headers need {info.needed_size}")
    _xen_support(info, report)


def _xen_support(info: _elf.ElfInfo, report: KernelReport) -> None:
    report.xen_notes = dict(info.xen_notes)
    report.notes_from = info.notes_from
    report.guest_os = info.note_string(_elf.XEN_ELFNOTE_GUEST_OS)
    report.xen_version = info.note_string(_elf.XEN_ELFNOTE_XEN_VERSION)
    report.loader = info.note_string(_elf.XEN_ELFNOTE_LOADER)
    if info.machine in ("aarch64", "arm"):
        # Xen on Arm ignores the notes and boots every kernel the PVH way.
        report.pv, report.pvh = False, True
        return
    report.pv_blocker = _elf.pv_blocker(info)
    report.pv = report.pv_blocker is None
    report.pv_entry = info.note_number(_elf.XEN_ELFNOTE_ENTRY)
    report.pvh_entry = info.note_number(_elf.XEN_ELFNOTE_PHYS32_ENTRY)
    report.pvh = report.pvh_entry is not None


def _arm64_image(fileobj: BinaryIO, report: KernelReport, fmt: str = "arm64 Image") -> None:
    """An arm64 Image: Xen on Arm loads it as it is (no notes), PVH-style only."""
    report.format = fmt
    report.bits, report.machine = 64, "aarch64"
    report.pv, report.pvh = False, True
    if fmt == "arm64 Image":
        report.version = _banner(fileobj)


def _compressed_file(fileobj: BinaryIO, fmt: str, report: KernelReport) -> None:
    """A whole kernel file compressed: Xen gunzips it; other formats it cannot."""
    report.compression = fmt
    try:
        inner = read_head(open_decompressed(fmt, fileobj, 0, report.size, KERNEL_LIMIT))
    except StreamError as exc:
        report.stream_trouble(exc)
        return
    if fmt == GZIP and inner.startswith(ELF_MAGIC):
        report.format = "gzip-compressed ELF"
        _payload(lambda limit: open_decompressed(fmt, fileobj, 0, report.size, limit),
                 report, "is a malformed ELF file once decompressed")
    elif fmt == GZIP and is_arm64_image(inner):
        _arm64_image(fileobj, report, "gzip-compressed arm64 Image")
    elif inner.startswith(ELF_MAGIC) or is_arm64_image(inner) or is_bzimage(inner):
        report.faults.append(f"is a {fmt}-compressed kernel; Xen decompresses a whole "
                             "kernel file only when it is gzip")
    else:
        report.faults.append(f"is a {fmt}-compressed file holding {describe_other(inner)}, "
                             "not a kernel")


def _banner(fileobj: BinaryIO) -> Optional[str]:
    """The release from the "Linux version ..." banner of an uncompressed kernel."""
    fileobj.seek(0)
    carry = b""
    for _ in range(BANNER_SCAN // (1 << 20)):
        chunk = fileobj.read(1 << 20)
        if not chunk:
            return None
        data = carry + chunk
        found = data.find(_BANNER)
        if found >= 0:
            rest = data[found + len(_BANNER):found + len(_BANNER) + 300]
            if len(rest) < 300:
                rest += fileobj.read(300 - len(rest))
            text = rest.split(b"\0", 1)[0].split(b"\n", 1)[0]
            return clean(text.decode("ascii", "replace"), 200) or None
        carry = data[-len(_BANNER):]
    return None
