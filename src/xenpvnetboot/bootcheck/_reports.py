"""What the inspection of each file found, independent of the guest type."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import BinaryIO, Callable, Dict, List, Optional, Tuple, Union

from ._streams import MissingModule, OutOfWork, StreamError, TooLarge, TruncatedStream


@dataclass
class FileReport:
    """What every inspected file has: where it is, what it is called, what is wrong.

    ``faults`` are defects whatever the guest (an HTML page, a truncated
    file), each phrased to follow "kernel NAME: " or "ramdisk NAME: ".
    ``not_checked`` says what could not be looked at (a missing module, a
    size limit): unknown, not wrong.
    """

    #: A path, or an open descriptor (read from its start; it stays open).
    path: Union[str, int]
    name: str
    size: int = 0
    not_checked: Optional[str] = None
    faults: List[str] = field(default_factory=list)

    def examine(self, look: Callable[[BinaryIO], None],
                opened: Optional[Tuple[BinaryIO, int]] = None) -> None:
        """Open the file, note its size and let *look* read it unless it is empty.

        *opened* is a file already open and its size (one still arriving,
        whose size is the announced one), read instead of :attr:`path`.
        """
        try:
            if opened is not None:
                self._look(opened[0], opened[1], look)
                return
            with _open(self.path) as fileobj:
                self._look(fileobj, os.fstat(fileobj.fileno()).st_size, look)
        except OSError as exc:
            self.faults.append(f"cannot be read ({exc.strerror or exc})")

    def _look(self, fileobj: BinaryIO, size: int, look: Callable[[BinaryIO], None]) -> None:
        self.size = size
        if size == 0:
            self.faults.append("is empty")
        else:
            look(fileobj)

    def stream_trouble(self, exc: StreamError, offset: Optional[int] = None) -> None:
        """Record a decompression failure: a fault, or a note when we could not look."""
        data = f"the {exc.format} data" + ("" if offset is None else f" at offset {offset}")
        if isinstance(exc, MissingModule):
            self.not_checked = f"{data} not checked " + (
                f"(install {exc.package})" if exc.package else "(no reader for it here)")
        elif isinstance(exc, TooLarge):
            self.not_checked = f"stopped after decompressing {exc.limit >> 20} MiB of {data}"
        elif isinstance(exc, OutOfWork):
            self.not_checked = f"stopped {exc.detail} in {data}"
        elif isinstance(exc, TruncatedStream):
            self.faults.append(f"is cut short: {data} ends early")
        else:
            self.faults.append(f"is corrupt: {data} is damaged ({exc.detail})")


def _open(path: Union[str, int]) -> BinaryIO:
    """Open a path, or a private duplicate of a descriptor (so the caller's stays open).

    A deprivileged child checks the files it wrote through the descriptors
    its parent opened: it may not open them by name.
    """
    if isinstance(path, int):
        fileobj = os.fdopen(os.dup(path), "rb")
        fileobj.seek(0)
        return fileobj
    return open(path, "rb")


@dataclass
class KernelReport(FileReport):
    """Facts about a kernel file.

    ``pv``/``pvh`` are None when they could not be determined
    (``not_checked`` says why).
    """

    #: e.g. "Linux bzImage", "ELF", "gzip-compressed ELF", "arm64 Image"; None if not a kernel.
    format: Optional[str] = None
    #: Compression of the bzImage payload or of the whole file.
    compression: Optional[str] = None
    #: Boot protocol of a bzImage, e.g. "2.15".
    boot_protocol: Optional[str] = None
    version: Optional[str] = None
    #: 32 or 64, from the ELF class (or the arm64 Image header).
    bits: Optional[int] = None
    #: "x86_64", "i386", "aarch64", "arm", or "machine N".
    machine: Optional[str] = None
    #: Raw description of each Xen ELF note by type (see _elf.XEN_NOTE_NAMES).
    xen_notes: Dict[int, bytes] = field(default_factory=dict)
    #: "PT_NOTE", "SHT_NOTE", "__xen_guest" or None when there are no Xen notes.
    notes_from: Optional[str] = None
    guest_os: Optional[str] = None
    xen_version: Optional[str] = None
    loader: Optional[str] = None
    #: Whether Xen can start it as a PV guest; why not is in ``pv_blocker``.
    pv: Optional[bool] = None
    pv_blocker: Optional[str] = None
    pv_entry: Optional[int] = None
    #: Whether Xen can start it as a PVH guest (XEN_ELFNOTE_PHYS32_ENTRY).
    pvh: Optional[bool] = None
    pvh_entry: Optional[int] = None
    #: Bytes decompressed to reach the notes (0 for an uncompressed kernel).
    unpacked_bytes: int = 0

    @property
    def recognised(self) -> bool:
        """True when the file is a kernel format this module understands."""
        return self.format is not None


@dataclass
class RamdiskMember:
    """One archive of a (possibly concatenated) ramdisk."""

    offset: int
    #: None for an uncompressed cpio archive.
    compression: Optional[str]
    #: "cpio", "ext2/3/4 image", ... or "data" when not looked into.
    content: str = "data"
    #: Bytes of the file the member takes (None when its end was not found).
    length: Optional[int] = None
    #: cpio entries counted, including the trailers (None when not walked).
    entries: Optional[int] = None
    #: Bytes once decompressed (None when not decompressed to the end).
    unpacked_size: Optional[int] = None


@dataclass
class RamdiskReport(FileReport):
    """Facts about a ramdisk file."""

    members: List[RamdiskMember] = field(default_factory=list)
    #: True when every byte was read to the end and found sound.
    verified: bool = False

    @property
    def recognised(self) -> bool:
        return bool(self.members)

    @property
    def format(self) -> str:
        """Short description: "gzip-compressed cpio", "cpio + zstd-compressed cpio"."""
        if not self.members:
            return "unrecognised"
        return " + ".join(describe_member(m) for m in self.members)


def describe_member(member: RamdiskMember) -> str:
    if member.compression:
        return f"{member.compression}-compressed {member.content}"
    return member.content
