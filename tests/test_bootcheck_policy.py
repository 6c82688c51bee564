"""check_boot_files: policies, guest types, architectures and messages."""

from __future__ import annotations

import gzip

import pytest

from support import elfgen
from xenpvnetboot import bootcheck
from xenpvnetboot.bootcheck import check_boot_files

URL = "http://mirror.example/debian/linux"
RD_URL = "http://mirror.example/debian/initrd.gz"


@pytest.fixture
def files(tmp_path):
    def make(elf_notes=None, kernel: bytes = None, ramdisk: bytes = None, **elf_args):
        kpath, rpath = tmp_path / "kernel", tmp_path / "initrd"
        if kernel is None:
            notes = elfgen.pv_notes() + elfgen.pvh_notes() if elf_notes is None else elf_notes
            kernel = elfgen.build_bzimage(elfgen.build_elf(notes, **elf_args), "xz")
        kpath.write_bytes(kernel)
        rpath.write_bytes(gzip.compress(elfgen.initramfs()) if ramdisk is None else ramdisk)
        return str(kpath), str(rpath)
    return make


@pytest.mark.parametrize("guest_type", ["pv", "pvh"])
def test_good_pair(files, guest_type):
    result = check_boot_files(*files(), guest_type=guest_type, kernel_name=URL,
                              ramdisk_name=RD_URL)
    assert result.problems == []
    assert not result.refuse
    assert result.details[0].startswith(f"kernel {URL}: Linux bzImage (boot protocol 2.15), "
                                        "xz-compressed 64-bit x86_64 kernel")
    assert f"kernel {URL}: PV: yes (entry 0xffffffff81001000)" in result.details
    assert f"kernel {URL}: PVH: yes (entry 0x1000850)" in result.details
    assert any(line.startswith(f"ramdisk {RD_URL}: gzip-compressed cpio")
               and line.endswith("checked to the end") for line in result.details)


@pytest.mark.parametrize("notes, guest_type, expected", [
    (elfgen.pv_notes(), "pvh", "has no PVH entry point (XEN_ELFNOTE_PHYS32_ENTRY); "
                               'boot it with type="pv" or use a kernel built with CONFIG_PVH'),
    (elfgen.pvh_notes(), "pv", "has no PV entry point (XEN_ELFNOTE_ENTRY); "
                               'boot it with type="pvh" or use a kernel built with CONFIG_XEN_PV'),
])
def test_kernel_for_the_other_guest_type(files, notes, guest_type, expected):
    result = check_boot_files(*files(notes), guest_type=guest_type, kernel_name=URL)
    assert result.problems == [f"kernel {URL}: {expected}"]


@pytest.mark.parametrize("guest_type, config", [("pv", "CONFIG_XEN_PV"), ("pvh", "CONFIG_PVH")])
def test_kernel_without_xen(files, guest_type, config):
    result = check_boot_files(*files([]), guest_type=guest_type, kernel_name=URL)
    assert result.problems == [
        f"kernel {URL}: has no Xen ELF notes: it was built without Xen guest support; "
        f"use a kernel built with {config}"]


def test_policies(files):
    kernel, ramdisk = files(kernel=b"<html><title>404 Not Found</title></html>",
                            ramdisk=gzip.compress(elfgen.initramfs())[:-30])
    warn = check_boot_files(kernel, ramdisk, policy="warn", kernel_name=URL, ramdisk_name=RD_URL)
    assert warn.problems == [
        f'kernel {URL}: is an HTML page titled "404 Not Found", not a kernel',
        f"ramdisk {RD_URL}: is cut short: the gzip data at offset 0 ends early"]
    assert not warn.refuse
    strict = check_boot_files(kernel, ramdisk, policy="strict", kernel_name=URL,
                              ramdisk_name=RD_URL)
    assert strict.problems == warn.problems and strict.refuse
    assert strict.kernel is not None and strict.ramdisk is not None


def test_off_reads_nothing(tmp_path):
    result = check_boot_files(str(tmp_path / "nope"), str(tmp_path / "nope2"), policy="off")
    assert result.problems == [] and result.details == []
    assert result.kernel is None and result.ramdisk is None and not result.refuse


def test_paths_name_the_files_by_default(files):
    kernel, _ = files(kernel=b"")
    result = check_boot_files(kernel, None)
    assert result.problems == [f"kernel {kernel}: is empty"]
    assert result.ramdisk is None


def test_missing_files_are_problems_not_exceptions(tmp_path):
    result = check_boot_files(str(tmp_path / "k"), str(tmp_path / "r"), policy="strict")
    assert len(result.problems) == 2 and result.refuse


def test_32_bit_kernel_for_64_bit_guest(files):
    notes = elfgen.pv_notes(bits=32) + elfgen.pvh_notes(bits=32)
    kernel, ramdisk = files(notes, bits=32)
    assert check_boot_files(kernel, ramdisk, arch="i686").problems == []
    result = check_boot_files(kernel, ramdisk, arch="amd64", kernel_name=URL)
    assert result.problems == [f"kernel {URL}: is a 32-bit i386 kernel, but the guest is x86_64"]


def test_arm64_kernel(files, monkeypatch):
    kernel, ramdisk = files(kernel=elfgen.arm64_image())
    monkeypatch.setattr(bootcheck.platform, "machine", lambda: "x86_64")
    result = check_boot_files(kernel, ramdisk, kernel_name=URL)
    assert result.problems == [f"kernel {URL}: is a kernel for aarch64; this x86_64 host "
                               "cannot boot it"]
    assert check_boot_files(kernel, ramdisk, guest_type="pvh", arch="arm64").problems == []
    monkeypatch.setattr(bootcheck.platform, "machine", lambda: "aarch64")
    assert check_boot_files(kernel, ramdisk, guest_type="pvh").problems == []
    assert "type=\"pvh\"" in check_boot_files(kernel, ramdisk, guest_type="pv").problems[0]


def test_not_checked_is_a_detail(files, monkeypatch):
    from xenpvnetboot.bootcheck import _streams

    elf = elfgen.build_elf(elfgen.pvh_notes())
    kernel, ramdisk = files(kernel=elfgen.build_bzimage(elf, "lz4"),
                            ramdisk=elfgen.compress(elfgen.initramfs(), "lz4"))
    real = _streams.importlib.import_module  # lz4 "missing" only from here on
    monkeypatch.setattr(_streams.importlib, "import_module",
                        lambda name: (_ for _ in ()).throw(ImportError(name))
                        if name.startswith("lz4") else real(name))
    result = check_boot_files(kernel, ramdisk, policy="strict", kernel_name=URL,
                              ramdisk_name=RD_URL)
    assert result.problems == [] and not result.refuse
    assert f"kernel {URL}: PV/PVH support unknown: the lz4 data not checked (install lz4)" \
        in result.details
    assert f"ramdisk {RD_URL}: lz4-compressed data, {result.ramdisk.size} bytes, not fully " \
        "checked: the lz4 data at offset 0 not checked (install lz4)" in result.details


def test_quick_ramdisk_check(files):
    result = check_boot_files(*files(), verify_ramdisk=False)
    assert result.problems == []
    assert not result.ramdisk.verified


@pytest.mark.parametrize("kwargs", [{"policy": "loud"}, {"guest_type": "hvm"},
                                    {"arch": "sparc"}])
def test_bad_arguments(files, kwargs):
    with pytest.raises(ValueError):
        check_boot_files(*files(), **kwargs)


def test_multi_member_details(files):
    data = elfgen.microcode_cpio() + gzip.compress(elfgen.initramfs())
    result = check_boot_files(*files(ramdisk=data), ramdisk_name=RD_URL)
    assert result.problems == []
    assert f"ramdisk {RD_URL}: at offset 0: cpio, 5 entries, 1884 bytes" in result.details
    assert any(line.startswith(f"ramdisk {RD_URL}: at offset 2048: gzip-compressed cpio, "
                               "23 entries") for line in result.details)


@pytest.mark.parametrize("role, data, expected", [
    ("kernel", b"", "is empty"),
    ("kernel", b"<!DOCTYPE html>\n<html><head><title>404 Not Found</title></head></html>",
     'is an HTML page titled "404 Not Found", not a kernel'),
    ("kernel", b"  <html><body>gone</body></html>", "is an HTML page, not a kernel"),
    ("kernel", b"Not Found\n", 'is a text file starting "Not Found", not a kernel'),
    ("kernel", elfgen.newc_cpio([("init", b"x")]),
     "is a cpio archive (a ramdisk?), not a kernel"),
    ("kernel", b"MZ" + bytes(200),
     "is a PE/EFI executable (an EFI application, not a Linux bzImage), not a kernel"),
    ("kernel", b"\x00\xff" * 300,
     "is data of no known format (starting with 00 ff 00 ff 00 ff 00 ff), not a kernel"),
    ("ramdisk", b"", "is empty"),
    ("ramdisk", bytes(5000), "holds only zero bytes"),
    ("ramdisk", b"<!doctype html><title>Forbidden</title>",
     'is an HTML page titled "Forbidden", not a ramdisk'),
    ("ramdisk", elfgen.build_bzimage(elfgen.build_elf()),
     "is a Linux kernel (bzImage), not a ramdisk"),
    ("ramdisk", elfgen.build_elf(), "is an ELF file (a kernel?), not a ramdisk"),
    ("ramdisk", b"\x07" * 100,
     "is data of no known format (starting with 07 07 07 07 07 07 07 07), not a ramdisk"),
])
def test_wrong_files(files, role, data, expected):
    """Each file that is not what it should be gets one line saying what it is."""
    result = check_boot_files(*files(**{role: data}), kernel_name=URL, ramdisk_name=RD_URL)
    assert result.problems == [f"{role} {URL if role == 'kernel' else RD_URL}: {expected}"]
    assert not getattr(result, role).recognised
