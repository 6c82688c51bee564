"""Property tests: whatever the bytes, the check answers and never raises."""

from __future__ import annotations

import gzip

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from support import elfgen
from xenpvnetboot.bootcheck import check_boot_files, inspect_kernel, inspect_ramdisk

SETTINGS = settings(max_examples=150, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])

#: Starts that lead the inspectors deep into their parsers.
PREFIXES = [
    b"", b"\x7fELF\x02\x01\x01", b"\x7fELF\x01\x01\x01", b"\x1f\x8b\x08\x00",
    b"\xfd7zXZ\x00", b"\x28\xb5\x2f\xfd", b"\x02\x21\x4c\x18", b"\x04\x22\x4d\x18",
    b"BZh9", b"\x5d\x00\x00\x80\x00", b"070701", b"070707", b"<html>", b"MZ",
]

_VALID = None


def valid_files():
    """Well-formed kernels and ramdisks to cut and damage."""
    global _VALID
    if _VALID is None:
        elf = elfgen.build_elf(elfgen.pv_notes() + elfgen.pvh_notes(), text_size=0x800)
        _VALID = [elf, gzip.compress(elf), elfgen.microcode_cpio(),
                  elfgen.microcode_cpio() + gzip.compress(elfgen.initramfs(files=3))]
        _VALID += [elfgen.build_bzimage(elf, fmt) for fmt in ("gzip", "xz", "zstd", "lz4")]
        _VALID += [elfgen.compress(elfgen.initramfs(files=3), fmt)
                   for fmt in ("bzip2", "lzma", "zstd", "lz4", "xz")]
    return _VALID


@pytest.fixture(scope="module")
def write(tmp_path_factory):
    return elfgen.writer(str(tmp_path_factory.mktemp("props")))


def assert_answered(report) -> None:
    """A report either recognises the file, says what is wrong, or says it could not look."""
    assert report.recognised or report.faults or report.not_checked
    assert all(isinstance(line, str) and "\n" not in line for line in report.faults)


@pytest.mark.parametrize("inspect", [inspect_kernel, inspect_ramdisk])
@SETTINGS
@given(prefix=st.sampled_from(PREFIXES), body=st.binary(max_size=4096))
def test_random_bytes(write, inspect, prefix, body):
    assert_answered(inspect(write("file", prefix + body)))


@SETTINGS
@given(body=st.binary(min_size=0x300, max_size=0x1200), version=st.integers(0, 0xFFFF),
       offset=st.integers(0, 0xFFFFFFFF), length=st.integers(0, 0xFFFFFFFF))
def test_random_bzimage_header(write, body, version, offset, length):
    image = bytearray(body)
    image[0x202:0x206] = b"HdrS"
    image[0x206:0x208] = version.to_bytes(2, "little")
    image[0x248:0x250] = offset.to_bytes(4, "little") + length.to_bytes(4, "little")
    assert_answered(inspect_kernel(write("bzImage", bytes(image))))


@SETTINGS
@given(data=st.data())
def test_damaged_valid_files(write, data):
    original = data.draw(st.sampled_from(valid_files()))
    damaged = bytearray(original[:data.draw(st.integers(0, len(original)))])
    for _ in range(data.draw(st.integers(0, 4))):
        if damaged:
            at = data.draw(st.integers(0, len(damaged) - 1))
            damaged[at] = data.draw(st.integers(0, 255))
    kernel = write("kernel", bytes(damaged))
    result = check_boot_files(kernel, write("ramdisk", bytes(damaged)), policy="strict",
                              guest_type=data.draw(st.sampled_from(["pv", "pvh"])))
    assert_answered(result.kernel)
    assert_answered(result.ramdisk)
    assert result.refuse == bool(result.problems)
