"""Kernel inspection on synthetic ELF files and bzImages."""

from __future__ import annotations

import gzip

import pytest

from support import elfgen
from xenpvnetboot.bootcheck import _kernel, _streams, inspect_kernel

ALL_FORMATS = ["gzip", "xz", "bzip2", "lzma", "zstd", "lz4"]


@pytest.fixture
def write(tmp_path):
    return elfgen.writer(str(tmp_path))


def pv_pvh_elf(**kwargs) -> bytes:
    return elfgen.build_elf(elfgen.pv_notes() + elfgen.pvh_notes(), **kwargs)


def test_elf64_with_pv_and_pvh_notes(write):
    report = inspect_kernel(write("vmlinux", pv_pvh_elf()))
    assert report.faults == []
    assert (report.format, report.bits, report.machine) == ("ELF", 64, "x86_64")
    assert report.pv and report.pvh
    assert report.pv_entry == elfgen.TEXT_ADDR + 0x1000
    assert report.pvh_entry == 0x1000850
    assert (report.guest_os, report.xen_version, report.loader) == ("linux", "xen-3.0", "generic")
    assert report.notes_from == "PT_NOTE"
    assert report.version == "6.1.0-test (builder@example) #1 SMP"


def test_elf64_pvh_only(write):
    report = inspect_kernel(write("vmlinux", elfgen.build_elf(elfgen.pvh_notes())))
    assert report.pvh and report.pv is False
    assert "XEN_ELFNOTE_ENTRY" in report.pv_blocker


def test_elf64_pv_only(write):
    report = inspect_kernel(write("vmlinux", elfgen.build_elf(elfgen.pv_notes())))
    assert report.pv and report.pvh is False


def test_elf_without_xen_notes(write):
    gnu = [elfgen.note(3, b"\x01" * 20, name=b"GNU")]
    report = inspect_kernel(write("vmlinux", elfgen.build_elf(gnu)))
    assert report.faults == []
    assert report.notes_from is None
    assert report.pv is False and report.pvh is False
    assert "no Xen ELF notes" in report.pv_blocker


def test_bzimage_without_xen_notes_stops_early(write):
    """A kernel without Xen support is refused without decompressing all of it."""
    gnu = [elfgen.note(3, b"\x01" * 20, name=b"GNU")]
    elf = elfgen.build_elf(gnu, text_size=4 << 20)
    report = inspect_kernel(write("bzImage", elfgen.build_bzimage(elf, "gzip")))
    assert report.pv is False and report.pvh is False
    assert report.unpacked_bytes < 2 << 20


def test_elf32_i386(write):
    elf = elfgen.build_elf(elfgen.pv_notes(bits=32) + elfgen.pvh_notes(bits=32), bits=32)
    report = inspect_kernel(write("vmlinux", elf))
    assert (report.bits, report.machine) == (32, "i386")
    assert report.pv and report.pvh
    assert report.pvh_entry == 0x1000850


def test_elf32_without_pae_is_not_pv(write):
    report = inspect_kernel(write("vmlinux", elfgen.build_elf(elfgen.pv_notes(32, pae=False),
                                                              bits=32)))
    assert report.pv is False
    assert "PAE" in report.pv_blocker


def test_wrong_guest_os_and_version(write):
    notes = [elfgen.note(6, b"plan9\0"), elfgen.note(5, b"xen-3.0\0"),
             elfgen.note(1, b"\0" * 8)]
    report = inspect_kernel(write("a", elfgen.build_elf(notes)))
    assert report.pv is False and "plan9" in report.pv_blocker
    notes = [elfgen.note(6, b"linux\0"), elfgen.note(5, b"xen-2.0\0"), elfgen.note(1, b"\0" * 8)]
    report = inspect_kernel(write("b", elfgen.build_elf(notes)))
    assert report.pv is False and "xen-2.0" in report.pv_blocker


@pytest.mark.parametrize("wrap", [bytes, elfgen.build_bzimage], ids=["ELF", "bzImage"])
def test_notes_only_in_a_section(write, wrap):
    """Xen falls back to SHT_NOTE sections when the PT_NOTE offset is 0."""
    report = inspect_kernel(write("vmlinux", wrap(pv_pvh_elf(notes_in_segment=False))))
    assert report.notes_from == "SHT_NOTE"
    assert report.pv and report.pvh


@pytest.mark.parametrize("wrap", [bytes, elfgen.build_bzimage], ids=["ELF", "bzImage"])
def test_legacy_xen_guest_section(write, wrap):
    elf = elfgen.build_elf(legacy_guest=b"GUEST_OS=linux,XEN_VER=xen-3.0,VIRT_BASE=0xC0000000")
    report = inspect_kernel(write("vmlinux", wrap(elf)))
    assert report.notes_from == "__xen_guest"
    assert report.pv and report.pvh is False


def test_aarch64_elf_needs_no_notes(write):
    report = inspect_kernel(write("vmlinux", elfgen.build_elf(machine=elfgen.EM_AARCH64)))
    assert report.machine == "aarch64"
    assert report.pvh and report.pv is False


def test_truncated_elf(write):
    elf = pv_pvh_elf()
    report = inspect_kernel(write("vmlinux", elf[:0x2800]))
    assert any(f.startswith("is cut short") for f in report.faults)
    report = inspect_kernel(write("tiny", elf[:30]))
    assert report.faults and not report.recognised


@pytest.mark.parametrize("fmt", ALL_FORMATS)
def test_bzimage_payloads(write, fmt):
    report = inspect_kernel(write("bzImage", elfgen.build_bzimage(pv_pvh_elf(), fmt)))
    assert report.faults == [], report.faults
    assert report.format == "Linux bzImage"
    assert report.compression == fmt
    assert report.boot_protocol == "2.15"
    assert report.version == "6.1.0-test (builder@example) #1 SMP"
    assert report.pv and report.pvh
    assert report.bits == 64


def test_bzimage_stops_after_the_notes(write):
    """Only the bytes up to the end of the note segment are decompressed."""
    elf = pv_pvh_elf(text_size=8 << 20)
    report = inspect_kernel(write("bzImage", elfgen.build_bzimage(elf, "xz")))
    assert report.pv and report.pvh
    assert 0 < report.unpacked_bytes < 2 << 20 < len(elf)


def test_bzimage_notes_far_in(write):
    elf = elfgen.build_elf(elfgen.pvh_notes(), note_offset=3 << 20)
    report = inspect_kernel(write("bzImage", elfgen.build_bzimage(elf, "zstd")))
    assert report.pvh and report.unpacked_bytes >= 3 << 20


def test_bzimage_notes_beyond_the_limit(write, monkeypatch):
    monkeypatch.setattr(_kernel, "KERNEL_LIMIT", 1 << 20)
    elf = elfgen.build_elf(elfgen.pvh_notes(), note_offset=3 << 20)
    report = inspect_kernel(write("bzImage", elfgen.build_bzimage(elf, "gzip")))
    assert report.faults == []
    assert report.pv is None and report.pvh is None
    assert report.not_checked == "stopped after decompressing 1 MiB of the gzip data"


def test_bzimage_old_protocol(write):
    report = inspect_kernel(write("bzImage", elfgen.build_bzimage(pv_pvh_elf(), protocol=0x0207)))
    assert report.boot_protocol == "2.07"
    assert any("2.08" in f for f in report.faults)


def test_bzimage_truncated(write):
    image = elfgen.build_bzimage(pv_pvh_elf(), "xz")
    report = inspect_kernel(write("bzImage", image[:len(image) // 2]))
    assert any(f.startswith("is cut short") for f in report.faults)


def test_bzimage_corrupt_payload(write):
    elf = pv_pvh_elf()
    payload = bytearray(elfgen.compress(elf, "xz", size_append=True))
    payload[40:60] = b"\xff" * 20
    report = inspect_kernel(write("bzImage", elfgen.build_bzimage(elf, payload=bytes(payload))))
    assert any(f.startswith("is corrupt") for f in report.faults)


def test_bzimage_payload_not_elf(write):
    image = elfgen.build_bzimage(b"", payload=gzip.compress(b"hello" * 100))
    report = inspect_kernel(write("bzImage", image))
    assert any("where the ELF kernel should be" in f for f in report.faults)


def test_bzimage_unknown_payload(write):
    image = elfgen.build_bzimage(b"", payload=b"\x00\x01\x02\x03" * 64)
    report = inspect_kernel(write("bzImage", image))
    assert any("no format Xen's loader decompresses" in f for f in report.faults)


def test_bzimage_without_a_version(write):
    report = inspect_kernel(write("bzImage", elfgen.build_bzimage(pv_pvh_elf(), version=None)))
    assert report.version is None and report.faults == []


def test_missing_module_is_not_a_fault(write, monkeypatch):
    image = write("bzImage", elfgen.build_bzimage(pv_pvh_elf(), "zstd"))  # before the patch
    real = _streams.importlib.import_module

    def fake(name):
        if name.startswith("zstandard"):
            raise ImportError(name)
        return real(name)

    monkeypatch.setattr(_streams.importlib, "import_module", fake)
    report = inspect_kernel(image)
    assert report.faults == []
    assert report.pv is None
    assert "install zstandard" in report.not_checked


def test_gzip_compressed_elf(write):
    report = inspect_kernel(write("vmlinux.gz", gzip.compress(pv_pvh_elf())))
    assert report.format == "gzip-compressed ELF"
    assert report.pv and report.pvh and report.faults == []


def test_xz_compressed_elf_is_refused(write):
    report = inspect_kernel(write("vmlinux.xz", elfgen.compress(pv_pvh_elf(), "xz")))
    assert any("only when it is gzip" in f for f in report.faults)


def test_compressed_ramdisk_given_as_kernel(write):
    report = inspect_kernel(write("initrd", elfgen.compress(elfgen.initramfs(), "zstd")))
    assert report.faults == ["is a zstd-compressed file holding a cpio archive (a ramdisk?), "
                             "not a kernel"]


def test_arm64_image(write):
    report = inspect_kernel(write("Image", elfgen.arm64_image()))
    assert report.format == "arm64 Image"
    assert report.machine == "aarch64" and report.pvh
    assert report.version.startswith("6.1.0-arm64-test")


def test_unreadable(tmp_path):
    report = inspect_kernel(str(tmp_path / "missing"))
    assert report.faults == ["cannot be read (No such file or directory)"]
