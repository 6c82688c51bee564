"""Ramdisk inspection: cpio archives, compressed and concatenated members."""

from __future__ import annotations

import gzip

import pytest

from support import elfgen
from xenpvnetboot.bootcheck import _ramdisk, _streams, inspect_ramdisk

FORMATS = ["gzip", "xz", "bzip2", "lzma", "zstd", "lz4"]


@pytest.fixture
def write(tmp_path):
    return elfgen.writer(str(tmp_path))


def test_uncompressed_cpio(write):
    archive = elfgen.initramfs(files=5)
    report = inspect_ramdisk(write("initrd", archive))
    assert report.faults == [] and report.verified
    assert report.format == "cpio"
    assert report.members[0].entries == 8  # bin/, init, 5 modules, trailer


def test_newc_with_checksums(write):
    report = inspect_ramdisk(write("initrd", elfgen.newc_cpio([("init", b"x")], magic=b"070702")))
    assert report.verified


@pytest.mark.parametrize("fmt", FORMATS)
def test_compressed(write, fmt):
    archive = elfgen.initramfs()
    report = inspect_ramdisk(write("initrd", elfgen.compress(archive, fmt)))
    assert report.faults == [], report.faults
    assert report.verified
    assert report.format == f"{fmt}-compressed cpio"
    member = report.members[0]
    assert member.entries == 23
    assert member.unpacked_size == len(archive)


@pytest.mark.parametrize("fmt", FORMATS)
def test_truncated(write, fmt):
    data = elfgen.compress(elfgen.initramfs(files=200, size=20000), fmt)
    report = inspect_ramdisk(write("initrd", data[:len(data) * 2 // 3]))
    assert not report.verified
    assert report.faults and report.faults[0].startswith("is cut short"), report.faults


@pytest.mark.parametrize("backend", ["best available", "zlib"])
def test_gzip_backends(write, monkeypatch, backend):
    """isal is used for gzip when installed; zlib gives the same answers."""
    if backend == "zlib":
        monkeypatch.setattr(_streams, "_gzip_module", lambda: _streams.zlib)
    data = gzip.compress(elfgen.initramfs(files=100, size=20000))
    assert inspect_ramdisk(write("good", data)).verified
    damaged = data[:-8] + bytes([data[-8] ^ 1]) + data[-7:]
    assert inspect_ramdisk(write("crc", damaged)).faults[0].startswith(
        "is corrupt: the gzip data at offset 0 is damaged")
    assert inspect_ramdisk(write("cut", data[:-3])).faults == [
        "is cut short: the gzip data at offset 0 ends early"]


def test_truncated_gzip_names_the_offset(write):
    data = gzip.compress(elfgen.initramfs(files=200, size=20000))
    report = inspect_ramdisk(write("initrd", data[:-100]))
    assert report.faults == ["is cut short: the gzip data at offset 0 ends early"]


def test_truncated_uncompressed_cpio(write):
    archive = elfgen.newc_cpio([("init", b"#!/bin/sh\n" * 100)], pad_to=0)
    report = inspect_ramdisk(write("initrd", archive[:500]))
    assert report.faults == ['is cut short: the cpio archive at offset 0 ends inside "init"']


def test_missing_trailer(write):
    archive = elfgen.newc_cpio([("init", b"x")], trailer=False, pad_to=0)
    report = inspect_ramdisk(write("initrd", archive))
    assert "without its TRAILER!!! entry" in report.faults[0]


def test_microcode_then_gzip(write):
    """The layout of Debian's and Fedora's initrds with early microcode."""
    first = elfgen.microcode_cpio()
    data = first + gzip.compress(elfgen.initramfs())
    report = inspect_ramdisk(write("initrd", data))
    assert report.faults == [] and report.verified
    assert report.format == "cpio + gzip-compressed cpio"
    assert [m.offset for m in report.members] == [0, len(first)]
    assert report.members[0].entries == 5


def test_three_members_with_padding(write):
    data = elfgen.microcode_cpio() + elfgen.compress(elfgen.initramfs(), "zstd")
    data += bytes(-len(data) % 4 + 8)
    data += elfgen.compress(elfgen.newc_cpio([("extra.conf", b"a=1\n")]), "xz")
    report = inspect_ramdisk(write("initrd", data))
    assert report.faults == [] and report.verified
    assert report.format == "cpio + zstd-compressed cpio + xz-compressed cpio"


def test_two_archives_in_one_stream(write):
    inner = elfgen.newc_cpio([("a", b"1")]) + elfgen.newc_cpio([("b", b"2")])
    report = inspect_ramdisk(write("initrd", gzip.compress(inner)))
    assert report.verified and report.members[0].entries == 4


def test_junk_after_a_member(write):
    data = gzip.compress(elfgen.initramfs()) + b"<html>oops</html>"
    report = inspect_ramdisk(write("initrd", data))
    assert len(report.members) == 1
    assert report.faults[0].startswith("has data of no known format at offset")


def test_junk_inside_a_compressed_member(write):
    data = gzip.compress(elfgen.initramfs() + b"garbage!")
    report = inspect_ramdisk(write("initrd", data))
    assert "is followed by data that is not a cpio archive" in report.faults[0]


def test_compressed_non_cpio(write):
    report = inspect_ramdisk(write("initrd", gzip.compress(b"<html>error</html>")))
    assert report.faults == ["holds an HTML page in its gzip data at offset 0, where a cpio "
                             "archive should be"]


def test_compressed_filesystem_image(write):
    image = bytearray(8192)
    image[1080:1082] = b"\x53\xef"
    report = inspect_ramdisk(write("initrd", gzip.compress(bytes(image))))
    assert report.faults == [] and report.verified
    assert report.format == "gzip-compressed ext2/3/4 image"


def test_corrupt_gzip(write):
    data = bytearray(gzip.compress(elfgen.initramfs(files=50, size=5000)))
    data[100:120] = b"\xff" * 20
    report = inspect_ramdisk(write("initrd", bytes(data)))
    assert report.faults[0].startswith("is corrupt")


def test_odc_cpio_is_refused(write):
    report = inspect_ramdisk(write("initrd", elfgen.odc_cpio()))
    assert "odc" in report.faults[0] and "newc" in report.faults[0]


def test_lzo_is_not_checked(write):
    report = inspect_ramdisk(write("initrd", b"\x89LZO\x00\r\n\x1a\n" + bytes(100)))
    assert report.faults == [] and not report.verified
    assert report.not_checked == "the lzo data at offset 0 not checked (no reader for it here)"


def test_lz4_frame_is_refused(write):
    report = inspect_ramdisk(write("initrd", elfgen.compress(elfgen.initramfs(), "lz4 frame")))
    assert "legacy lz4" in report.faults[0]


def test_quick_mode(write):
    data = elfgen.microcode_cpio() + gzip.compress(elfgen.initramfs())
    report = inspect_ramdisk(write("initrd", data[:-50]), verify=False)
    assert report.faults == [] and not report.verified
    assert "not checked past the start" in report.not_checked


def test_limit(write, monkeypatch):
    monkeypatch.setattr(_ramdisk, "RAMDISK_LIMIT", 1 << 20)
    report = inspect_ramdisk(write("initrd", gzip.compress(elfgen.initramfs(400, 5000))))
    assert report.faults == [] and not report.verified
    assert report.not_checked == "stopped after decompressing 1 MiB of the gzip data at offset 0"


def test_uncompressed_filesystem_image(write):
    image = bytearray(4096)
    image[:4] = b"hsqs"
    report = inspect_ramdisk(write("initrd", bytes(image)))
    assert report.faults == [] and report.format == "squashfs image"
