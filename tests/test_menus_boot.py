"""Booting what the medium's own menu says, as libxl runs the bootloader.

The Debian installer's real netboot tree served by tftpd-hpa with its own
``pxelinux.cfg`` (and per-machine files), the same tree as a GRUB-only tree
over http, an isolinux live ISO locally and over http, and a NetBSD-shaped
release tree, each booting with its entry's arguments.
"""

from __future__ import annotations

import gzip
import os
import shutil
import subprocess

import pytest
from support import elfgen
from support import env as test_env
from support.env import need_program
from support.http_server import TestHTTPServer
from support.images import build_iso
from support.libxl import BOOTLOADER, run_bootloader
from support.tftp_servers import tftpd_hpa

__all__ = ["tftpd_hpa"]  # a fixture

DEBIAN_TEXT = "/usr/lib/debian-installer/images/12/amd64/text"
MAC = "00:16:3e:12:34:56"


@pytest.fixture(scope="module")
def netboot(tmp_path_factory):
    """A copy of the Debian package's netboot tree (pxelinux.cfg, GRUB menu, the pair)."""
    test_env.debian_installer_files()
    root = tmp_path_factory.mktemp("netboot") / "text"
    shutil.copytree(DEBIAN_TEXT, root, symlinks=False)
    return root


def test_pxe_tree_over_tftp_boots_the_default_entry(netboot, tftpd_hpa, workdir):
    server = tftpd_hpa(str(netboot))
    run = run_bootloader([f"--location={server.url()}", "--verify=off"], workdir,
                         cmdline="console=hvc0")
    assert run.status == 0, run.console
    assert "PXELINUX menu pxelinux.cfg/default" in run.console
    assert run.kernel_sha256 == _sha(netboot / "debian-installer/amd64/linux")
    assert run.args.split() == ["---", "quiet", "console=hvc0"]  # vga= and initrd= dropped


def test_pxe_per_machine_file_and_bootif(netboot, tftpd_hpa, workdir, tmp_path):
    tree = tmp_path / "pxe"
    shutil.copytree(netboot, tree)
    (tree / "pxelinux.cfg" / ("01-" + MAC.replace(":", "-"))).write_text(
        "default guest\nlabel guest\n kernel debian-installer/amd64/linux\n"
        " append initrd=debian-installer/amd64/initrd.gz auto=true priority=critical "
        "url=http://192.0.2.1/guest.cfg --- quiet\n ipappend 2\n")
    server = tftpd_hpa(str(tree))
    run = run_bootloader([f"--location={server.url()}", f"--mac={MAC}", "--verify=off"], workdir)
    assert run.status == 0, run.console
    args = run.args.split()
    assert args[:3] == ["auto=true", "priority=critical", "url=http://192.0.2.1/guest.cfg"]
    assert "BOOTIF=01-" + MAC.replace(":", "-") in args


def test_entry_and_list_on_the_real_menu(netboot, tftpd_hpa, workdir):
    server = tftpd_hpa(str(netboot))
    listed = subprocess.run(BOOTLOADER + [f"--location={server.url()}", "-l"],
                            capture_output=True, text=True, timeout=120)
    assert listed.returncode == 0, listed.stderr
    assert "Install" in listed.stdout and "Expert install" in listed.stdout
    run = run_bootloader([f"--location={server.url()}", "--entry=Expert install", "--verify=off"],
                         workdir)
    assert run.status == 0, run.console
    assert "priority=low" in run.args.split()


def test_entry_matching_nothing_keeps_the_default(netboot, workdir):
    run = run_bootloader([f"--location={netboot}", "--entry=no such entry", "--verify=off"], workdir)
    assert run.status == 0, run.console
    assert "warning:" in run.console and "no such entry" in run.console
    assert run.args.split() == ["---", "quiet"]


def test_grub_only_tree_over_http(netboot, tmp_path, workdir):
    tree = tmp_path / "grub-only"
    shutil.copytree(netboot, tree)
    shutil.rmtree(tree / "pxelinux.cfg")
    server = TestHTTPServer(str(tree)).start()
    try:
        run = run_bootloader([f"--location={server.url()}", "--verify=off"], workdir)
    finally:
        server.stop()
    assert run.status == 0, run.console
    assert "GRUB 2 menu debian-installer/amd64/grub/grub.cfg" in run.console
    assert run.args.split() == ["---", "quiet"]


def test_no_menu_args_keeps_the_layouts_choice(netboot, workdir):
    run = run_bootloader([f"--location={netboot}", "--no-menu-args", "--verify=off"], workdir)
    assert run.status == 0, run.console
    assert not run.args and "menu" not in run.console.lower()


def test_hostile_menu_is_ignored_with_a_warning(netboot, tmp_path, workdir):
    tree = tmp_path / "loop"
    shutil.copytree(netboot, tree)
    grub = tree / "debian-installer/amd64/grub/grub.cfg"
    grub.write_text('source /debian-installer/amd64/grub/grub.cfg\nmenuentry "x" { linux /x }\n')
    shutil.rmtree(tree / "pxelinux.cfg")
    run = run_bootloader([f"--location={tree}", "--verify=off"], workdir)
    assert run.status == 0, run.console
    assert "booting without the menu's arguments" in run.console
    assert run.kernel_sha256 == _sha(netboot / "debian-installer/amd64/linux")


ISOLINUX_LIVE = """\
default live
label live
  menu label ^Start the live system
  kernel /casper/vmlinuz
  append initrd=/casper/initrd boot=casper quiet splash ---
label memtest
  kernel /install/mt86plus
"""


@pytest.fixture(scope="module")
def live_iso(tmp_path_factory):
    need_program("xorriso", "xorriso")
    root = tmp_path_factory.mktemp("live")
    tree = root / "tree"
    (tree / "casper").mkdir(parents=True)
    (tree / "isolinux").mkdir()
    (tree / "casper/vmlinuz").write_bytes(elfgen.build_elf(elfgen.pv_notes()))
    (tree / "casper/initrd").write_bytes(gzip.compress(elfgen.initramfs()))
    (tree / "isolinux/isolinux.cfg").write_text(ISOLINUX_LIVE)
    return build_iso(str(tree), str(root / "live.iso"), "rockridge")


def test_isolinux_live_iso_local(live_iso, workdir):
    run = run_bootloader([f"--location={live_iso}", "--verify=off"], workdir,
                         cmdline="console=hvc0")
    assert run.status == 0, run.console
    assert run.args.split() == ["boot=casper", "quiet", "splash", "---", "console=hvc0"]
    assert "url=" not in run.args  # the guest reads a local ISO from its disk


def test_isolinux_live_iso_over_http_gets_its_network_arguments(live_iso, workdir):
    server = TestHTTPServer(os.path.dirname(live_iso)).start()
    try:
        url = server.url(os.path.basename(live_iso))
        run = run_bootloader([f"--location={url}", "--verify=off"], workdir)
    finally:
        server.stop()
    assert run.status == 0, run.console
    args = run.args.split()
    assert args[:3] == ["boot=casper", "quiet", "splash"]
    assert f"url={url}" in args and "ip=dhcp" in args
    assert args.index(f"url={url}") < args.index("---")


def test_netbsd_release_tree_boots_its_kernel_alone(tmp_path, workdir):
    notes = [n for n in elfgen.pv_notes() if n[1] != 6] + [elfgen.note(6, b"NetBSD\0")]
    kernel = gzip.compress(elfgen.build_elf(notes))
    directory = tmp_path / "NetBSD-10.0/amd64/binary/kernel"
    directory.mkdir(parents=True)
    (directory / "netbsd-INSTALL_XEN3_DOMU.gz").write_bytes(kernel)
    (tmp_path / "NetBSD-10.0/amd64/binary/sets").mkdir()
    server = TestHTTPServer(str(tmp_path)).start()
    try:
        run = run_bootloader([f"--location={server.url('NetBSD-10.0/amd64/')}", "--check=strict",
                              "--verify=off"], workdir)
    finally:
        server.stop()
    assert run.status == 0, run.console
    assert run.kernel == kernel and run.ramdisk is None and "ramdisk" not in run.items
    assert "NetBSD release, Xen PV install kernel" in run.console
    assert "warning" not in run.console


def _sha(path):
    import hashlib

    return hashlib.sha256(open(path, "rb").read()).hexdigest()


ARCH_GRUB = """\
menuentry "Arch Linux install medium (x86_64, BIOS)" {
    set gfxpayload=keep
    linux /arch/boot/x86_64/vmlinuz-linux archisobasedir=arch archisolabel=ARCH_202410
    initrd /arch/boot/intel-ucode.img /arch/boot/amd-ucode.img /arch/boot/x86_64/initramfs-linux.img
}
"""


def test_several_ramdisks_of_an_entry_become_one_file(tmp_path, workdir):
    tree = tmp_path / "arch"
    (tree / "arch/boot/x86_64").mkdir(parents=True)
    (tree / "boot/grub").mkdir(parents=True)
    kernel = elfgen.build_elf(elfgen.pv_notes())
    parts = [elfgen.microcode_cpio(), elfgen.newc_cpio([("amd", b"ucode")]),
             gzip.compress(elfgen.initramfs())]
    (tree / "arch/boot/x86_64/vmlinuz-linux").write_bytes(kernel)
    (tree / "arch/boot/intel-ucode.img").write_bytes(parts[0])
    (tree / "arch/boot/amd-ucode.img").write_bytes(parts[1])
    (tree / "arch/boot/x86_64/initramfs-linux.img").write_bytes(parts[2])
    (tree / "boot/grub/grub.cfg").write_text(ARCH_GRUB)
    server = TestHTTPServer(str(tree)).start()
    try:
        run = run_bootloader([f"--location={server.url()}", "--verify=off", "--check=strict"],
                             workdir, keep_bytes=1 << 30)
    finally:
        server.stop()
    assert run.status == 0, run.console
    assert run.kernel == kernel
    assert run.ramdisk == b"".join(parts)  # in the menu's order, microcode first
    args = run.args.split()
    assert args[:2] == ["archisobasedir=arch", "archisolabel=ARCH_202410"]
    assert f"archiso_http_srv={server.url()}" in args
