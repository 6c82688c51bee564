"""ELF headers and Xen ELF notes, read the way Xen's domain builder reads them.

libxenguest decides whether a kernel can boot as a PV or PVH guest from the
notes named "Xen" (public/elfnote.h): first those in PT_NOTE segments, then
SHT_NOTE sections, then the legacy ``__xen_guest`` section.  The program
headers sit at the start of the file and Linux's notes come early, so for a
compressed kernel only the bytes up to the end of the note segment are ever
decompressed.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from typing import BinaryIO, Callable, Dict, List, Optional, Tuple

from ._formats import clean
from ._reader import Reader
from ._streams import Decompressed, TooLarge, read_at

# Xen ELF note types (xen/include/public/elfnote.h).
XEN_ELFNOTE_ENTRY = 1
XEN_ELFNOTE_XEN_VERSION = 5
XEN_ELFNOTE_GUEST_OS = 6
XEN_ELFNOTE_LOADER = 8
XEN_ELFNOTE_PAE_MODE = 9
XEN_ELFNOTE_PHYS32_ENTRY = 18

XEN_NOTE_NAMES = {
    0: "INFO", 1: "ENTRY", 2: "HYPERCALL_PAGE", 3: "VIRT_BASE", 4: "PADDR_OFFSET",
    5: "XEN_VERSION", 6: "GUEST_OS", 7: "GUEST_VERSION", 8: "LOADER", 9: "PAE_MODE",
    10: "FEATURES", 11: "BSD_SYMTAB", 12: "HV_START_LOW", 13: "L1_MFN_VALID",
    14: "SUSPEND_CANCEL", 15: "INIT_P2M", 16: "MOD_START_PFN",
    17: "SUPPORTED_FEATURES", 18: "PHYS32_ENTRY", 19: "PHYS32_RELOC",
}
#: ``__xen_guest`` keys (the pre-note interface) and the notes they stand for.
_LEGACY_KEYS = {"GUEST_OS": 6, "XEN_VER": 5, "LOADER": 8, "PAE": 9}

MACHINES = {3: "i386", 62: "x86_64", 40: "arm", 183: "aarch64"}
PT_LOAD, PT_NOTE, SHT_NOTE = 1, 4, 7
NO_XEN_NOTES = "has no Xen ELF notes: it was built without Xen guest support"
NO_PV_ENTRY = "has no PV entry point (XEN_ELFNOTE_ENTRY)"
#: Bytes of note segments or sections read from one file, and bytes of notes
#: parsed (overlapping regions count once read, once parsed per region).
#: Linux's notes take a few hundred bytes.
MAX_NOTES_SIZE = 1 << 20
#: Notes looked at in one file, Xen's or not (Linux has about twenty).
MAX_NOTES = 4096
#: Program headers looked at: a file with more is not checked (Linux has a
#: handful; e_phnum allows 65535, each of which could name a region deep in a
#: compressed kernel).
MAX_PROGRAM_HEADERS = 1024
#: Section headers looked at when falling back to sections (Linux's vmlinux
#: has some 80): a file with more is not checked.
MAX_SECTIONS = 4096


class ElfError(Exception):
    """The ELF structure is malformed; the message says how."""


class ElfTooLarge(ElfError):
    """The ELF structure is larger than the check looks at: unknown, not wrong."""


class FileSource:
    """Random access to a file that lies on disk whole."""

    def __init__(self, fileobj: BinaryIO, size: int) -> None:
        self._file = fileobj
        self.size: int = size

    def read_at(self, offset: int, size: int) -> bytes:
        if not 0 <= offset < self.size:
            return b""
        return read_at(self._file, offset, min(size, self.size - offset))


class StreamSource:
    """Reads at rising offsets of a decompressed stream, reopened to go back.

    Only a window is kept, so memory stays small whatever the offsets.
    *limit* bounds the bytes decompressed over all passes together: a file
    that sends the reader back again and again (thousands of headers naming
    a region deep in the file) stops there instead of decompressing it
    thousands of times.  *opener* is given the bytes still allowed.
    ``produced`` is how far the furthest pass went, ``total`` what all
    passes decompressed.
    """

    size: Optional[int] = None

    def __init__(self, opener: Callable[[int], Decompressed], limit: int) -> None:
        self._open = opener
        self._limit = limit
        self._stream: Optional[Decompressed] = None
        self._reader: Optional[Reader] = None
        self._finished = 0  # bytes of the passes before this one
        self.produced = 0

    @property
    def total(self) -> int:
        return self._finished + (self._stream.produced if self._stream is not None else 0)

    def read_at(self, offset: int, size: int) -> bytes:
        try:
            if self._reader is None or offset < self._reader.pos:
                self._finished = self.total
                self._stream = self._open(self._limit - self._finished)
                self._reader = Reader(self._stream.read)
            assert self._stream is not None
            try:
                self._reader.skip(offset - self._reader.pos)
                return self._reader.read(size)
            finally:
                self.produced = max(self.produced, self._stream.produced)
        except TooLarge as exc:
            raise TooLarge(exc.format, self._limit) from None


@dataclass
class ElfInfo:
    """What the ELF headers and Xen notes of a kernel say."""

    bits: int
    big_endian: bool
    machine: str
    entry: int
    #: Raw description of each Xen note, by note type (the last one wins, as in Xen).
    xen_notes: Dict[int, bytes] = field(default_factory=dict)
    #: Where the Xen notes were found: "PT_NOTE", "SHT_NOTE", "__xen_guest" or None.
    notes_from: Optional[str] = None
    #: Values of the legacy ``__xen_guest`` string, by key.
    legacy: Dict[str, str] = field(default_factory=dict)
    #: File size the headers need: the end of the last loadable segment.
    needed_size: int = 0

    def note_string(self, ntype: int) -> Optional[str]:
        """A string note (or its legacy equivalent), without the NUL."""
        if ntype in self.xen_notes:
            return self.xen_notes[ntype].split(b"\0", 1)[0].decode("ascii", "replace")
        for key, mapped in _LEGACY_KEYS.items():
            if mapped == ntype and key in self.legacy:
                return self.legacy[key]
        return None

    def note_number(self, ntype: int) -> Optional[int]:
        """A numeric note, read as 4 or 8 bytes in the ELF's byte order."""
        desc = self.xen_notes.get(ntype)
        if desc is None:
            return None
        width = 8 if len(desc) >= 8 else 4
        return int.from_bytes(desc[:width], "big" if self.big_endian else "little")


_LAYOUT = {
    # class: (ELF header, program header, section header) struct formats
    32: ("16sHHIIIIIHHHHHH", "IIIIIIII", "IIIIIIIIII"),
    64: ("16sHHIQQQIHHHHHH", "IIQQQQQQ", "IIQQQQIIQQ"),
}


def _unpack(fmt: str, data: bytes, what: str) -> Tuple:
    if len(data) < struct.calcsize(fmt):
        raise ElfError(f"it is cut short inside its {what}")
    return struct.unpack_from(fmt, data)


def _phdr(values: Tuple, bits: int) -> Tuple[int, int, int, int]:
    """(type, offset, filesz, align) of a program header of either class."""
    if bits == 32:
        p_type, p_offset, _va, _pa, p_filesz, _mem, _flags, p_align = values
    else:
        p_type, _flags, p_offset, _va, _pa, p_filesz, _mem, p_align = values
    return p_type, p_offset, p_filesz, p_align


class NoteWork:
    """What reading notes may still cost in one file (see MAX_NOTES_SIZE)."""

    def __init__(self) -> None:
        self.read_left = MAX_NOTES_SIZE
        self.parse_left = MAX_NOTES_SIZE
        self.notes_left = MAX_NOTES


def parse_elf(src) -> ElfInfo:
    """Read the ELF header, program headers and Xen notes of *src*."""
    ident = src.read_at(0, 64)
    if ident[:4] != b"\x7fELF":
        raise ElfError("it does not start with the ELF magic")
    bits = {1: 32, 2: 64}.get(ident[4:5][0] if len(ident) > 4 else 0)
    order = {1: "<", 2: ">"}.get(ident[5:6][0] if len(ident) > 5 else 0)
    if bits is None or order is None:
        raise ElfError("its ELF class or byte order is invalid")
    ehdr_fmt, phdr_fmt, _ = (order + fmt for fmt in _LAYOUT[bits])
    (_id, _type, machine, _ver, entry, phoff, shoff, _flags, _ehsize, phentsize,
     phnum, shentsize, shnum, shstrndx) = _unpack(ehdr_fmt, ident, "ELF header")
    info = ElfInfo(bits=bits, big_endian=order == ">",
                   machine=MACHINES.get(machine, f"machine {machine}"), entry=entry)
    phdrs = _program_headers(src, phoff, phentsize, phnum, phdr_fmt, bits)
    for p_type, p_offset, p_filesz, _align in phdrs:
        if p_type == PT_LOAD:
            info.needed_size = max(info.needed_size, p_offset + p_filesz)
    work = NoteWork()
    segments = _notes_from_segments(src, info, phdrs, order, work)
    # Xen falls back to the sections, which lie at the end of the file.  In a
    # compressed kernel that means decompressing all of it, for notes that a
    # linker puts in the note segments anyway; so only when there are none.
    if not info.xen_notes and (src.size is not None or not segments):
        _notes_from_sections(src, info, order, (shoff, shentsize, shnum, shstrndx), work)
    return info


def _program_headers(src, phoff: int, phentsize: int, phnum: int, fmt: str,
                     bits: int) -> List[Tuple[int, int, int, int]]:
    if phnum == 0:
        return []
    if phnum > MAX_PROGRAM_HEADERS:
        raise ElfTooLarge(f"it has {phnum} program headers, more than the "
                          f"{MAX_PROGRAM_HEADERS} looked at")
    if phentsize != struct.calcsize(fmt):
        raise ElfError(f"its program header size {phentsize} is wrong")
    table = src.read_at(phoff, phnum * phentsize)
    if len(table) < phnum * phentsize:
        raise ElfError("it is cut short inside its program headers")
    return [_phdr(struct.unpack_from(fmt, table, i * phentsize), bits) for i in range(phnum)]


def _notes_from_segments(src, info: ElfInfo, phdrs, order: str, work: NoteWork) -> int:
    """Xen notes of the PT_NOTE segments (Xen skips those at offset 0); how many."""
    regions = [(offset, size, 8 if align == 8 else 4)
               for p_type, offset, size, align in phdrs if p_type == PT_NOTE and offset]
    _read_notes(src, info, order, "PT_NOTE", regions, work)
    return len(regions)


def _spans(regions: List[Tuple[int, int, int]]) -> List[Tuple[int, int]]:
    """The (start, end) of the stretches of file that *regions* cover, merged, sorted."""
    spans: List[Tuple[int, int]] = []
    for offset, size, _align in regions:
        if spans and offset <= spans[-1][1]:
            spans[-1] = (spans[-1][0], max(spans[-1][1], offset + size))
        else:
            spans.append((offset, offset + size))
    return spans


def _read_notes(src, info: ElfInfo, order: str, where: str,
                regions: List[Tuple[int, int, int]], work: NoteWork) -> None:
    """Collect Xen notes from (offset, size, alignment) regions.

    The same region named twice is read once, and overlapping ones as one
    stretch, all in file order: a decompressed source goes forwards in one
    pass, however many headers name the regions and in whatever order.  The
    bytes read and parsed and the notes looked at are bounded per file.
    """
    distinct = sorted({region for region in regions if region[1] > 0})
    read: List[Tuple[int, bytes]] = []
    for start, end in _spans(distinct):
        if work.read_left <= 0:
            break
        data = src.read_at(start, min(end - start, work.read_left))
        work.read_left -= max(len(data), 1)
        read.append((start, data))
    for offset, size, align in distinct:
        blob = _slice(read, offset, min(size, max(work.parse_left, 0)))
        work.parse_left -= max(len(blob), 1)
        for name, ntype, desc in iter_notes(blob, order, align):
            work.notes_left -= 1
            if work.notes_left < 0:
                return
            if name == b"Xen":
                info.xen_notes[ntype] = desc
                info.notes_from = info.notes_from or where


def _slice(read: List[Tuple[int, bytes]], offset: int, size: int) -> bytes:
    """Bytes ``[offset, offset + size)`` out of the stretches read (short if not all were)."""
    for start, data in read:
        if start <= offset < start + len(data):
            return data[offset - start:offset - start + size]
    return b""


def iter_notes(blob: bytes, order: str = "<", align: int = 4):
    """(name, type, desc) of each note in *blob*; stops at the first malformed one."""
    pos = 0
    while pos + 12 <= len(blob):
        namesz, descsz, ntype = struct.unpack_from(order + "III", blob, pos)
        desc_at = pos + 12 + -(-namesz // align) * align
        if desc_at + descsz > len(blob):
            return
        yield blob[pos + 12:pos + 12 + namesz].split(b"\0", 1)[0], ntype, \
            blob[desc_at:desc_at + descsz]
        pos = desc_at + -(-descsz // align) * align


def _notes_from_sections(src, info: ElfInfo, order: str,
                         where: Tuple[int, int, int, int], work: NoteWork) -> None:
    """Xen's fallbacks when no note segment holds Xen notes."""
    fmt = order + _LAYOUT[info.bits][2]
    shoff, shentsize, shnum, shstrndx = where
    if not shoff or not shnum or shentsize != struct.calcsize(fmt):
        return
    if shnum > MAX_SECTIONS:
        raise ElfTooLarge(f"it has {shnum} section headers and no Xen notes in its program "
                          f"headers; more than the {MAX_SECTIONS} section headers looked at")
    table = src.read_at(shoff, shnum * shentsize)
    if len(table) < shnum * shentsize:
        return
    # (sh_name, sh_type, sh_offset, sh_size) of each section
    sections = [(v[0], v[1], v[4], v[5]) for v in
                (struct.unpack_from(fmt, table, i * shentsize) for i in range(1, shnum))]
    _read_notes(src, info, order, "SHT_NOTE",
                [(offset, size, 4) for _name, sh_type, offset, size in sections
                 if sh_type == SHT_NOTE], work)
    if not info.xen_notes and 0 < shstrndx < shnum:
        _legacy_guest_section(src, info, sections, sections[shstrndx - 1])


def _legacy_guest_section(src, info: ElfInfo, sections, strtab) -> None:
    """The ``__xen_guest`` string of kernels older than the notes interface."""
    names = src.read_at(strtab[2], min(strtab[3], MAX_NOTES_SIZE))
    for name_at, _type, offset, size in sections:
        if names[name_at:name_at + 12] == b"__xen_guest\0":
            text = src.read_at(offset, min(size, 4096)).split(b"\0", 1)[0]
            info.legacy = dict(item.partition("=")[::2] for item in
                               text.decode("ascii", "replace").split(","))
            info.notes_from = "__xen_guest"
            return


def pv_blocker(info: ElfInfo) -> Optional[str]:
    """Why Xen cannot boot this ELF as a PV guest, phrased after "kernel X: "; None if it can.

    Mirrors libelf's elf_xen_note_check and what Linux needs: it emits
    XEN_ELFNOTE_ENTRY only when built with CONFIG_XEN_PV.
    """
    if info.notes_from is None:
        return NO_XEN_NOTES
    loader = info.note_string(XEN_ELFNOTE_LOADER) or ""
    guest_os = info.note_string(XEN_ELFNOTE_GUEST_OS) or ""
    if not info.legacy and XEN_ELFNOTE_ENTRY not in info.xen_notes \
            and not loader.startswith("generic"):
        return NO_PV_ENTRY
    if not loader.startswith("generic") and not guest_os.startswith("linux"):
        return (f'has Xen notes for guest OS "{clean(guest_os)}" and loader "{clean(loader)}"; '
                "Xen loads only Linux or generic-loader PV kernels")
    xen_version = info.note_string(XEN_ELFNOTE_XEN_VERSION) or ""
    if not xen_version.startswith("xen-3.0"):
        return (f'has Xen notes for Xen version "{clean(xen_version)}"; '
                'Xen loads only "xen-3.0" kernels')
    pae = (info.note_string(XEN_ELFNOTE_PAE_MODE) or "").lower()
    if info.bits == 32 and not pae.startswith(("yes", "bimodal")):
        return "is a 32-bit kernel without PAE support; Xen runs only PAE 32-bit PV guests"
    return None
