"""Kernels and ramdisks built to make the check work: it stays bounded per file.

The kernels are gzip-compressed ELF files whose program headers name one
note region deep in the file over and over; before, each header restarted
the decompression from byte 0 (hours for the issue's 250 KB file, at the
default --check=warn).  The ramdisks are many concatenated members, each
within the old per-member bound.  Work is measured by counting what the
decompressors produce; a child with a CPU watchdog keeps a regression from
hanging the suite.
"""

from __future__ import annotations

import ast
import gzip
import struct

import pytest

from support import elfgen
from support.images import run_bounded
from xenpvnetboot.bootcheck import _kernel, _ramdisk, inspect_kernel, inspect_ramdisk

DEEP = 16 << 20  # where the notes are: 16 MiB into the decompressed ELF
MIB = 1 << 20


@pytest.fixture
def write(tmp_path):
    return elfgen.writer(str(tmp_path))


def note_kernel(headers, note_offset: int = DEEP) -> bytes:
    """A gzip-compressed ELF with PV and PVH notes at *note_offset*, named by
    its own PT_NOTE and by *headers* more (offset, size) PT_NOTE headers."""
    notes = elfgen.pv_notes() + elfgen.pvh_notes()
    size = len(elfgen.encode_notes(notes))
    extra = [(elfgen.PT_NOTE, offset, size if length is None else length, 4)
             for offset, length in headers]
    elf = elfgen.build_elf(notes, note_offset=note_offset, text_size=0x1000, extra_phdrs=extra)
    return gzip.compress(elf, 6)


def counted_inspection(path: str):
    """Inspect *path*, counting the bytes every decompression pass produced."""
    streams = []
    real = _kernel.open_decompressed

    def counting(*args):
        stream = real(*args)
        streams.append(stream)
        return stream

    def inspect() -> tuple:
        _kernel.open_decompressed = counting  # in the child only
        report = inspect_kernel(path)
        return (report.pv, report.pvh, report.not_checked, report.faults,
                sum(stream.produced for stream in streams))
    return inspect


def test_a_thousand_headers_naming_one_region_decompress_it_once(write):
    path = write("vmlinux.gz", note_kernel([(DEEP, None)] * 1000))
    kind, value = run_bounded(counted_inspection(path))
    assert kind == "returned", value
    pv, pvh, not_checked, faults, produced = ast.literal_eval(value)
    assert (pv, pvh, not_checked, faults) == (True, True, None, [])
    assert DEEP < produced < DEEP + 3 * MIB  # one pass (and the 64 KiB sniff)


def test_overlapping_regions_are_read_as_one_stretch(write):
    """Regions starting 4 bytes apart, each overlapping the next: going
    forwards, every one started before the end of the one read before."""
    path = write("vmlinux.gz", note_kernel([(DEEP + 4 * i, 4096) for i in range(1000)]))
    kind, value = run_bounded(counted_inspection(path))
    assert kind == "returned", value
    pv, pvh, not_checked, faults, produced = ast.literal_eval(value)
    assert (pv, pvh, not_checked, faults) == (True, True, None, [])
    assert produced < DEEP + 3 * MIB


def test_the_issues_kernel_is_not_checked_rather_than_decompressed_for_hours(write):
    """65535 program headers: more than any kernel has, so PV/PVH support is
    left unknown (a note, not a fault), at the cost of reading the headers."""
    from xenpvnetboot.bootcheck._elf import MAX_PROGRAM_HEADERS

    data = note_kernel([(DEEP, None)] * (65535 - 2))
    assert len(data) < 300 << 10
    kind, value = run_bounded(counted_inspection(write("vmlinux.gz", data)))
    assert kind == "returned", value
    pv, pvh, not_checked, faults, produced = ast.literal_eval(value)
    assert (pv, pvh, faults) == (None, None, [])
    assert not_checked == (f"it has 65535 program headers, more than the "
                           f"{MAX_PROGRAM_HEADERS} looked at")
    assert produced < 8 * MIB


def test_the_kernel_limit_is_for_all_passes_together(write, monkeypatch):
    """Notes only in a section: the section table at the end is read, then
    the notes near the start, a second pass.  Each pass alone is within the
    limit, both together are not."""
    elf = elfgen.build_elf(elfgen.pvh_notes(), text_size=8 * MIB, notes_in_segment=False)
    path = write("vmlinux.gz", gzip.compress(elf, 6))
    monkeypatch.setattr(_kernel, "KERNEL_LIMIT", len(elf) + MIB // 2)
    report = inspect_kernel(path)
    assert report.pvh is None and report.faults == []
    assert report.not_checked == "stopped after decompressing 8 MiB of the gzip data"


# -- ramdisks -----------------------------------------------------------------------


def member(size: int) -> bytes:
    """A gzip member: a cpio archive holding one file of *size* zeros."""
    return gzip.compress(elfgen.newc_cpio([("zeros", bytes(size))]), 6)


def test_the_decompression_bound_is_for_the_whole_file(write, monkeypatch):
    monkeypatch.setattr(_ramdisk, "RAMDISK_LIMIT", 4 * MIB)
    data = b"".join(member(MIB) for _ in range(16))
    report = inspect_ramdisk(write("initrd", data))
    assert report.faults == [] and not report.verified
    assert report.not_checked.startswith("stopped after decompressing 4 MiB of the gzip data "
                                         "at offset ")
    assert sum(m.unpacked_size or 0 for m in report.members) <= 4 * MIB


def test_members_are_bounded(write):
    from xenpvnetboot.bootcheck._ramdisk import RAMDISK_MAX_MEMBERS

    tiny = member(10)
    report = inspect_ramdisk(write("initrd", tiny * 5000))
    assert report.faults == [] and not report.verified
    assert len(report.members) == RAMDISK_MAX_MEMBERS
    assert report.not_checked == (f"not checked past its first {RAMDISK_MAX_MEMBERS} archives "
                                  f"(at offset {RAMDISK_MAX_MEMBERS * len(tiny)})")


def test_cpio_entries_are_bounded_per_file(write, monkeypatch):
    monkeypatch.setattr(_ramdisk, "RAMDISK_MAX_ENTRIES", 100)
    archive = elfgen.newc_cpio([(f"f{i}", b"x") for i in range(60)])
    report = inspect_ramdisk(write("initrd", archive + gzip.compress(archive)))
    assert report.not_checked == ("stopped after 100 cpio entries in the gzip data at "
                                  f"offset {len(archive)}")
    assert report.faults == [] and not report.verified


def test_cpu_time_is_bounded_per_file(write, monkeypatch):
    monkeypatch.setattr(_ramdisk, "RAMDISK_CPU_SECONDS", 0.0)
    report = inspect_ramdisk(write("initrd", member(3 * MIB)))
    assert report.not_checked == "stopped after 0 s of CPU in the gzip data at offset 0"
    assert report.faults == [] and not report.verified


def test_section_headers_beyond_the_cap_leave_the_kernel_unchecked(write):
    """Not "no Xen notes" (a fault under --check=strict) for what was not looked at."""
    from xenpvnetboot.bootcheck._elf import MAX_SECTIONS

    elf = bytearray(elfgen.build_elf(elfgen.pvh_notes(), notes_in_segment=False))
    struct.pack_into("<H", elf, 60, MAX_SECTIONS + 1)  # e_shnum of a 64-bit ELF
    report = inspect_kernel(write("vmlinux", bytes(elf)))
    assert (report.pv, report.pvh, report.faults) == (None, None, [])
    assert report.not_checked.startswith(f"it has {MAX_SECTIONS + 1} section headers")
