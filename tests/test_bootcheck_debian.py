"""The check on the real Debian 12 installer kernel and initrd."""

from __future__ import annotations

import lzma
import shutil
import struct

import pytest

from support.env import debian_installer_files
from xenpvnetboot.bootcheck import check_boot_files, inspect_kernel, inspect_ramdisk


@pytest.fixture(scope="module")
def debian():
    return debian_installer_files()


@pytest.fixture(scope="module")
def kernel_report(debian):
    return inspect_kernel(debian[0])


def _vmlinux(path: str) -> bytes:
    """The ELF inside the bzImage, decompressed independently of the module."""
    with open(path, "rb") as fileobj:
        image = fileobj.read()
    start = (image[0x1F1] + 1) * 512 + struct.unpack_from("<I", image, 0x248)[0]
    length = struct.unpack_from("<I", image, 0x24C)[0]
    return lzma.LZMADecompressor().decompress(image[start:start + length])


def test_kernel_format(kernel_report):
    assert kernel_report.faults == []
    assert kernel_report.format == "Linux bzImage"
    assert kernel_report.compression == "xz"
    major, minor = map(int, kernel_report.boot_protocol.split("."))
    assert (major, minor) >= (2, 8)
    assert kernel_report.version.startswith("6.1.0-")
    assert "amd64" in kernel_report.version
    assert (kernel_report.bits, kernel_report.machine) == (64, "x86_64")


def test_kernel_xen_notes(kernel_report, debian):
    """Debian's kernel is built with CONFIG_XEN_PV and CONFIG_PVH: its notes say so."""
    assert kernel_report.notes_from == "PT_NOTE"
    assert kernel_report.guest_os == "linux"
    assert kernel_report.xen_version == "xen-3.0"
    assert kernel_report.loader == "generic"
    assert kernel_report.pv is True and kernel_report.pv_blocker is None
    assert kernel_report.pvh is True
    assert kernel_report.pv_entry >= 0xFFFFFFFF80000000  # kernel virtual address
    assert 0 < kernel_report.pvh_entry < 1 << 32  # 32-bit physical entry
    # The same notes, found by a byte search of the whole decompressed vmlinux.
    vmlinux = _vmlinux(debian[0])
    for ntype, value in ((1, kernel_report.pv_entry), (18, kernel_report.pvh_entry)):
        assert struct.pack("<III4sQ", 4, 8, ntype, b"Xen\0", value) in vmlinux
    # ... and reaching them took only part of it.
    assert 0 < kernel_report.unpacked_bytes < len(vmlinux) * 3 // 4


def test_initrd(debian):
    report = inspect_ramdisk(debian[1])
    assert report.faults == [] and report.verified
    assert report.format == "gzip-compressed cpio"
    (member,) = report.members
    assert member.entries > 1000
    assert member.length == report.size
    assert member.unpacked_size > report.size


def test_truncated_initrd(debian, tmp_path):
    cut = tmp_path / "initrd.gz"
    with open(debian[1], "rb") as source, open(cut, "wb") as target:
        shutil.copyfileobj(source, target)
        target.truncate(4 << 20)
    report = inspect_ramdisk(str(cut))
    assert report.faults == ["is cut short: the gzip data at offset 0 ends early"]


@pytest.mark.parametrize("guest_type", ["pv", "pvh"])
def test_pair(debian, guest_type):
    result = check_boot_files(*debian, guest_type=guest_type, policy="strict",
                              kernel_name="http://deb.debian.org/linux",
                              ramdisk_name="http://deb.debian.org/initrd.gz")
    assert result.problems == [] and not result.refuse
    assert "kernel http://deb.debian.org/linux: PVH: yes" in "\n".join(result.details)
