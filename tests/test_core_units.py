"""Unit tests of the core pieces: paths, sizes, result formats, sinks, specs."""

from __future__ import annotations

import io
import os

import pytest
from support.libxl import parse_simple0

from xenpvnetboot.cli import parse_args, parse_size
from xenpvnetboot.errors import BootError, UsageError
from xenpvnetboot.layout import ORIGINAL_PAIRS, ramdisk_for_kernel
from xenpvnetboot.location import check_spec, split_spec, url_scheme
from xenpvnetboot.output import BootResult, format_result
from xenpvnetboot.transports.base import Sink, clean_path


@pytest.mark.parametrize("raw, clean", [
    ("images/pxeboot/vmlinuz", "images/pxeboot/vmlinuz"),
    ("/boot/vmlinuz", "boot/vmlinuz"),
    ("./a//b/./c", "a/b/c"),
    ("a/b/../c", "a/c"),
    ("", ""),
])
def test_clean_path(raw, clean):
    assert clean_path(raw) == clean


@pytest.mark.parametrize("raw", ["..", "../etc/shadow", "a/../../b", "a\0b"])
def test_clean_path_refuses_escapes(raw):
    with pytest.raises(BootError):
        clean_path(raw)


@pytest.mark.parametrize("text, value", [
    ("1G", 1 << 30), ("512M", 512 << 20), ("64k", 64 << 10), ("100", 100), ("2GiB", 2 << 30),
])
def test_parse_size(text, value):
    assert parse_size(text) == value


@pytest.mark.parametrize("text", ["", "0", "-1", "1X", "lots", "1.5G"])
def test_parse_size_refuses(text):
    import argparse

    with pytest.raises(argparse.ArgumentTypeError):
        parse_size(text)


def test_format_simple0_parses_like_libxl():
    result = BootResult("/d/k", "/d/r", "console=hvc0 root=/dev/xvda1")
    data = format_result(result, "simple0")
    assert data == b"kernel /d/k\0ramdisk /d/r\0args console=hvc0 root=/dev/xvda1\0\0"
    assert parse_simple0(data) == {"kernel": "/d/k", "ramdisk": "/d/r",
                                   "args": "console=hvc0 root=/dev/xvda1"}


def test_format_leaves_out_absent_items():
    assert format_result(BootResult("/d/k", None, ""), "simple0") == b"kernel /d/k\0\0"
    assert format_result(BootResult("/d/k", None, ""), "simple") == b"kernel /d/k\n\n"
    assert format_result(BootResult("/d/k", None, ""), "sxp") == b"linux (kernel /d/k)\n"


@pytest.mark.parametrize("fmt, args", [("simple", "a\nb"), ("sxp", "a\nb")])
def test_format_refuses_separator(fmt, args):
    with pytest.raises(BootError):
        format_result(BootResult("/d/k", None, args), fmt)


def test_format_sxp_escapes_quotes():
    data = format_result(BootResult("/k", "/r", 'a="b c" d\\e'), "sxp")
    assert data == b'linux (kernel /k)(ramdisk /r)(args "a=\\"b c\\" d\\\\e")\n'


def test_later_option_wins_and_disk_accepted():
    args = parse_args(["--kernel=a", "--output-format=simple0", "--kernel", "b", "/dev/xvda"])
    assert args.kernel == "b"
    assert args.disks == ["/dev/xvda"]
    assert args.output_format == "simple0"


def test_parse_errors_are_usage_errors():
    with pytest.raises(UsageError):
        parse_args(["--output-format=json"])


def test_sink_refuses_more_than_announced():
    sink = Sink(io.BytesIO(), "u")
    sink.expect(4)
    assert sink.write(b"abc") == 3
    assert sink.write(b"de") == 0
    with pytest.raises(BootError, match="more than the 4 bytes"):
        sink.check_complete()


def test_sink_refuses_short_transfer():
    sink = Sink(io.BytesIO(), "u")
    sink.expect(10)
    sink.write(b"abc")
    with pytest.raises(BootError, match="after 3 of 10 bytes"):
        sink.check_complete()


def test_sink_max_size_before_and_during():
    with pytest.raises(BootError, match="--max-size"):
        Sink(io.BytesIO(), "u", max_size=5).expect(6)
    sink = Sink(io.BytesIO(), "u", max_size=5)
    assert sink.write(b"123456") == 0
    with pytest.raises(BootError, match="--max-size"):
        sink.check_complete()


def test_sink_free_space_check(tmp_path):
    with open(tmp_path / "f", "wb") as handle:
        st = os.statvfs(tmp_path)
        free = st.f_bavail * st.f_frsize
        sink = Sink(handle, "u", max_size=1 << 62)
        with pytest.raises(BootError, match="--output-directory"):
            sink.expect(free + (1 << 30))


def test_sink_checksum():
    data = b"kernel bytes"
    import hashlib

    good = Sink(io.BytesIO(), "u", sha256=hashlib.sha256(data).hexdigest().upper())
    good.write(data)
    good.check_complete()
    bad = Sink(io.BytesIO(), "u", sha256="0" * 64)
    bad.write(data)
    with pytest.raises(BootError, match="SHA-256"):
        bad.check_complete()


def test_ramdisk_for_kernel():
    assert ramdisk_for_kernel("images/pxeboot/vmlinuz", ORIGINAL_PAIRS) == "images/pxeboot/initrd.img"
    assert (ramdisk_for_kernel("http://h/OL6/images/pxeboot/vmlinuz", ORIGINAL_PAIRS)
            == "http://h/OL6/images/pxeboot/initrd.img")
    assert ramdisk_for_kernel("boot/vmlinuz-6.1", ORIGINAL_PAIRS) is None
    assert ramdisk_for_kernel("myimages/pxeboot/vmlinuz", ORIGINAL_PAIRS) is None


def test_split_spec_and_schemes():
    assert split_spec("http://h/a/b/vmlinuz") == ("http://h/a/b/", "vmlinuz")
    assert split_spec("nfs:h:/e/vmlinuz") == ("nfs:h:/e/", "vmlinuz")
    assert url_scheme("HTTP://x/") == "http"
    assert url_scheme("/srv/tree") is None
    with pytest.raises(UsageError):
        split_spec("http://h/")
    with pytest.raises(UsageError):
        split_spec("http://h/k?sig=1")


@pytest.mark.parametrize("text", ["http://h/\x1b[2J", "a" * 5000, "  ", "x\ny"])
def test_check_spec_refuses(text):
    with pytest.raises(UsageError):
        check_spec(text, "location")
