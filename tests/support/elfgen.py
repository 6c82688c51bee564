"""Builders of small synthetic kernels and ramdisks for the boot check tests.

The files are laid out as the real ones are: an ELF with program headers
right after its header, Xen notes in a PT_NOTE segment (optionally far into
the file, or only in a section), a bzImage setup header around a compressed
ELF with the build's appended size, newc cpio archives, and the compression
formats as Linux's build writes them (lz4 in the legacy format).
"""

from __future__ import annotations

import bz2
import gzip
import lzma
import os
import struct
from typing import Callable, Iterable, List, Optional, Sequence, Tuple

import pytest

EM_386, EM_X86_64, EM_AARCH64 = 3, 62, 183
PT_LOAD, PT_NOTE = 1, 4
SHT_STRTAB, SHT_NOTE, SHT_PROGBITS = 3, 7, 1

Note = Tuple[bytes, int, bytes]  # (name, type, desc)

TEXT_ADDR = 0xFFFFFFFF81000000


def note(ntype: int, desc: bytes, name: bytes = b"Xen") -> Note:
    return name, ntype, desc


def _num(value: int, bits: int) -> bytes:
    """*value* as a note number of the class: 32-bit kernels use the low half."""
    return (value & ((1 << bits) - 1)).to_bytes(bits // 8, "little")


def pv_notes(bits: int = 64, pae: bool = True) -> List[Note]:
    """The notes a Linux kernel built with CONFIG_XEN_PV carries."""
    notes = [
        note(6, b"linux\0"), note(7, b"2.6\0"), note(5, b"xen-3.0\0"),
        note(3, _num(0xFFFFFFFF80000000, bits)), note(1, _num(TEXT_ADDR + 0x1000, bits)),
        note(10, b"!writable_page_tables|pae_pgdir_above_4gb\0"), note(8, b"generic\0"),
    ]
    if pae:
        notes.append(note(9, b"yes\0"))
    return notes


def pvh_notes(bits: int = 64) -> List[Note]:
    """The note a Linux kernel built with CONFIG_PVH carries."""
    return [note(18, _num(0x1000850, bits))]


def encode_notes(notes: Iterable[Note]) -> bytes:
    out = b""
    for name, ntype, desc in notes:
        name_z = name + b"\0"
        out += struct.pack("<III", len(name_z), len(desc), ntype)
        out += name_z.ljust(-(-len(name_z) // 4) * 4, b"\0")
        out += desc.ljust(-(-len(desc) // 4) * 4, b"\0")
    return out


def build_elf(notes: Sequence[Note] = (), bits: int = 64, machine: Optional[int] = None,
              note_offset: int = 0x1000, text_size: int = 0x2000,
              notes_in_segment: bool = True, legacy_guest: Optional[bytes] = None,
              banner: bytes = b"Linux version 6.1.0-test (builder@example) #1 SMP\n",
              extra_phdrs: Sequence[Tuple[int, int, int, int]] = ()) -> bytes:
    """An ELF kernel: header, program headers, notes at *note_offset*, text, sections.

    With *notes_in_segment* false the PT_NOTE has p_offset 0 (the binutils
    bug Xen works around) and the notes are only reachable as a section.
    *extra_phdrs* (type, offset, size, align) follow the real ones; they must
    fit between the ELF header and *note_offset*.
    """
    machine = machine if machine is not None else (EM_X86_64 if bits == 64 else EM_386)
    blob = encode_notes(notes)
    text_offset = -(-(note_offset + len(blob)) // 0x1000) * 0x1000
    body = bytearray(text_offset + text_size)
    body[note_offset:note_offset + len(blob)] = blob
    body[text_offset:text_offset + len(banner)] = banner
    sections = [(b".text", SHT_PROGBITS, text_offset, text_size)]
    if blob:
        sections.append((b".notes", SHT_NOTE, note_offset, len(blob)))
    if legacy_guest is not None:
        sections.append((b"__xen_guest", SHT_PROGBITS, len(body), len(legacy_guest) + 1))
        body += legacy_guest + b"\0"
    phdrs = [(PT_LOAD, text_offset, text_size, 0x1000)]
    if blob:
        phdrs.append((PT_NOTE, note_offset if notes_in_segment else 0, len(blob), 4))
    phdrs += list(extra_phdrs)
    shoff, shtab = _sections(sections, bits, len(body))
    body += shtab
    header = _elf_header(bits, machine, len(phdrs), shoff, len(sections) + 2,
                         len(sections) + 1)
    table = b"".join(_phdr(bits, *p) for p in phdrs)
    body[:len(header) + len(table)] = header + table
    return bytes(body)


def _elf_header(bits: int, machine: int, phnum: int, shoff: int, shnum: int,
                shstrndx: int) -> bytes:
    ident = b"\x7fELF" + bytes([1 if bits == 32 else 2, 1, 1]) + bytes(9)
    if bits == 64:
        return ident + struct.pack("<HHIQQQIHHHHHH", 2, machine, 1, TEXT_ADDR + 0x1000,
                                   64, shoff, 0, 64, 56, phnum, 64, shnum, shstrndx)
    return ident + struct.pack("<HHIIIIIHHHHHH", 2, machine, 1, 0xC1001000, 52, shoff,
                               0, 52, 32, phnum, 40, shnum, shstrndx)


def _phdr(bits: int, p_type: int, offset: int, size: int, align: int) -> bytes:
    if bits == 64:
        return struct.pack("<IIQQQQQQ", p_type, 5, offset, TEXT_ADDR + offset,
                           offset, size, size, align)
    return struct.pack("<IIIIIIII", p_type, offset, 0xC1000000 + offset, offset,
                       size, size, 5, align)


def _sections(sections, bits: int, at: int) -> Tuple[int, bytes]:
    """(offset, bytes) of a string table followed by the section header table."""
    names = b"\0"
    entries = []
    for name, sh_type, offset, size in sections:
        entries.append((len(names), sh_type, offset, size))
        names += name + b"\0"
    entries.append((len(names), SHT_STRTAB, at, 0))
    names += b".shstrtab\0"
    entries[-1] = (entries[-1][0], SHT_STRTAB, at, len(names))
    names = names.ljust(-(-len(names) // 8) * 8, b"\0")
    fmt = "<IIQQQQIIQQ" if bits == 64 else "<IIIIIIIIII"
    table = bytes(struct.calcsize(fmt))
    for name_at, sh_type, offset, size in entries:
        table += struct.pack(fmt, name_at, sh_type, 0, 0, offset, size, 0, 0, 4, 0)
    return at + len(names), names + table


def compress(data: bytes, fmt: str, size_append: bool = False) -> bytes:
    """*data* compressed as Linux's build does it (scripts/Makefile.lib)."""
    if fmt == "gzip":
        out = gzip.compress(data, 9, mtime=0)
    elif fmt == "bzip2":
        out = bz2.compress(data, 9)
    elif fmt == "xz":
        out = lzma.compress(data, lzma.FORMAT_XZ, lzma.CHECK_CRC32, filters=[
            {"id": lzma.FILTER_X86}, {"id": lzma.FILTER_LZMA2, "dict_size": 1 << 20}])
    elif fmt == "lzma":
        out = lzma.compress(data, lzma.FORMAT_ALONE)
    elif fmt == "zstd":
        out = _module("zstandard").ZstdCompressor(level=19).compress(data)
    elif fmt == "lz4":
        out = lz4_legacy(data)
    elif fmt == "lz4 frame":
        out = _module("lz4.frame").compress(data)
    else:
        raise ValueError(fmt)
    return out + struct.pack("<I", len(data)) if size_append else out


def _module(name: str):
    """The optional compression module *name*, or skip the test that needs it."""
    return pytest.importorskip(name, reason=f"needs the Python package {name.split('.')[0]}")


def lz4_legacy(data: bytes, block: int = 8 << 20) -> bytes:
    """The lz4 legacy format of ``lz4 -l``: magic, then size-prefixed 8 MiB blocks."""
    out = b"\x02\x21\x4c\x18"
    compress_block = _module("lz4.block").compress
    for start in range(0, len(data), block):
        chunk = compress_block(data[start:start + block], store_size=False)
        out += struct.pack("<I", len(chunk)) + chunk
    return out


def build_bzimage(elf: bytes, fmt: str = "gzip", protocol: int = 0x020F,
                  version: Optional[bytes] = b"6.1.0-test (builder@example) #1 SMP",
                  setup_sects: int = 4, payload: Optional[bytes] = None) -> bytes:
    """A bzImage: setup sectors with the header, a stub, then the compressed ELF."""
    if payload is None:
        payload = compress(elf, fmt, size_append=fmt != "gzip")
    setup = bytearray((setup_sects + 1) * 512)
    setup[0:2] = b"MZ"
    stub = b"\x90" * 0x200
    code = stub + payload
    code += bytes(-len(code) % 16)
    setup[0x1F1] = setup_sects
    struct.pack_into("<I", setup, 0x1F4, len(code) // 16)
    struct.pack_into("<H", setup, 0x1FE, 0xAA55)
    setup[0x202:0x206] = b"HdrS"
    struct.pack_into("<H", setup, 0x206, protocol)
    if version is not None:
        struct.pack_into("<H", setup, 0x20E, 0x400 - 0x200)
        setup[0x400:0x400 + len(version) + 1] = version + b"\0"
    struct.pack_into("<H", setup, 0x236, 1)
    struct.pack_into("<II", setup, 0x248, len(stub), len(payload))
    return bytes(setup) + code


def arm64_image(size: int = 0x10000) -> bytes:
    """An arm64 Image: branch, text_offset, image_size, flags, then "ARM\\x64" at 0x38."""
    image = bytearray(size)
    image[0:4] = b"MZ\x00\x91"
    struct.pack_into("<QQQ", image, 8, 0, size, 0x0A)
    image[0x38:0x3C] = b"ARM\x64"
    banner = b"Linux version 6.1.0-arm64-test (builder@example) #1 SMP\n"
    image[0x1000:0x1000 + len(banner)] = banner
    return bytes(image)


def newc_cpio(entries: Sequence[Tuple[str, bytes]], magic: bytes = b"070701",
              pad_to: int = 512, trailer: bool = True) -> bytes:
    """A newc cpio archive of regular files (directories for names ending in /)."""
    out = b""
    rows = list(entries) + ([("TRAILER!!!", b"")] if trailer else [])
    for ino, (name, data) in enumerate(rows, 1):
        is_dir = name.endswith("/")
        mode = 0o040755 if is_dir else 0o100644
        if name == "TRAILER!!!":
            ino, mode = 0, 0
        encoded = name.rstrip("/").encode() + b"\0"
        fields = (ino, mode, 0, 0, 1, 0, len(data), 0, 0, 0, 0, len(encoded), 0)
        header = magic + b"".join(b"%08X" % value for value in fields)
        out += header + encoded
        out += bytes(-len(out) % 4) + data
        out += bytes(-len(out) % 4)
    return out + bytes(-len(out) % pad_to if pad_to else 0)


def odc_cpio(name: str = "init", data: bytes = b"#!/bin/sh\n") -> bytes:
    """One entry in the old portable cpio format (cpio -H odc), which Linux refuses."""
    encoded = name.encode() + b"\0"
    header = b"070707" + b"%06o" % 0 + b"%06o" % 1 + b"%06o" % 0o100644 + b"%06o" % 0 * 2
    header += b"%06o" % 1 + b"%06o" % 0 + b"%011o" % 0 + b"%06o" % len(encoded)
    header += b"%011o" % len(data)
    return header + encoded + data


def initramfs(files: int = 20, size: int = 3000) -> bytes:
    """A small but realistic initramfs archive."""
    entries = [("bin/", b""), ("init", b"#!/bin/sh\nexec /bin/sh\n")]
    entries += [(f"lib/mod{i}.ko", bytes([i % 251]) * size + b"x" * (i % 7))
                for i in range(files)]
    return newc_cpio(entries)


def microcode_cpio() -> bytes:
    """The uncompressed early-microcode archive distributions put first."""
    return newc_cpio([("kernel/", b""), ("kernel/x86/", b""),
                      ("kernel/x86/microcode/", b""),
                      ("kernel/x86/microcode/GenuineIntel.bin", b"\x01" * 1234)])


def writer(directory: str) -> Callable[..., str]:
    """A function that writes bytes to a named file in *directory* and returns its path."""
    def write(name: str, data: bytes) -> str:
        path = os.path.join(directory, name)
        with open(path, "wb") as fileobj:
            fileobj.write(data)
        return path
    return write
