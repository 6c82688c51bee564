"""Menus on real media: ISOs and disk images built with real tools, served over http and tftp.

The ISOs are made the way live media are (xorriso with ISOLINUX's real
isolinux.bin and COM32 modules, Debian packages ``isolinux`` and
``syslinux-common``) and read back through the project's image reader; the
Debian installer's own netboot tree is served by the test http server and
by tftpd-hpa.
"""

from __future__ import annotations

import os
import shutil

import pytest

from support import env as test_env
from support.images import build_disk, build_ext, build_fat, make_hybrid, run
from support.tftp_servers import tftpd_hpa
from xenpvnetboot.containers import open_image
from xenpvnetboot.location import open_location
from xenpvnetboot.menus import choose, config_paths, listing, load_menu
from xenpvnetboot.menus.find import load_file
from xenpvnetboot.menus.model import GRUB2, GRUB_LEGACY, PXELINUX, SYSLINUX
from xenpvnetboot.transports import TransportOptions
from xenpvnetboot.transports.local import LocalSource, LocalTree

ISOLINUX_BIN = "/usr/lib/ISOLINUX/isolinux.bin"
MODULES = "/usr/lib/syslinux/modules/bios"
COM32 = ("ldlinux.c32", "vesamenu.c32", "libcom32.c32", "libutil.c32")
DEBIAN_TEXT = "/usr/lib/debian-installer/images/12/amd64/text"
OPTIONS = TransportOptions(timeout=10, retries=1)
__all__ = ["tftpd_hpa"]  # imported as a fixture: the tests name it as an argument

ISOLINUX_CFG = """\
# a live medium, as Ubuntu's isolinux menus were laid out
path
include menu.cfg
default vesamenu.c32
prompt 0
timeout 50
"""
MENU_CFG = """\
menu hshift 13
menu width 49
include stdmenu.cfg
include txt.cfg
label memtest
  menu label Test ^memory
  kernel /install/mt86plus
label hd
  menu label ^Boot from first hard disk
  localboot 0x80
"""
TXT_CFG = """\
label live
  menu label ^Try Ubuntu without installing
  kernel /casper/vmlinuz
  append  file=/cdrom/preseed/ubuntu.seed boot=casper initrd=/casper/initrd quiet splash ---
label live-install
  menu label ^Install Ubuntu
  menu default
  kernel /casper/vmlinuz
  append  file=/cdrom/preseed/ubuntu.seed boot=casper only-ubiquity initrd=/casper/initrd quiet splash ---
label rescue
  menu label ^Rescue (kernel next to the menu)
  kernel vmlinuz
  initrd initrd.gz
"""
GRUB_CFG = """\
set timeout=30
loadfont unicode
menuentry "Try or Install Ubuntu" {
    set gfxpayload=keep
    linux   /casper/vmlinuz  boot=casper ---
    initrd  /casper/initrd
}
grub_platform
if [ "$grub_platform" = "efi" ]; then
menuentry 'UEFI Firmware Settings' {
    fwsetup
}
fi
"""


def need_isolinux() -> None:
    if not os.path.isfile(ISOLINUX_BIN):
        pytest.skip("needs isolinux.bin (Debian package isolinux)")
    if not all(os.path.isfile(os.path.join(MODULES, name)) for name in COM32):
        pytest.skip("needs the COM32 modules (Debian package syslinux-common)")


def write(root: str, path: str, data) -> None:
    full = os.path.join(root, path)
    os.makedirs(os.path.dirname(full), exist_ok=True)
    with open(full, "wb") as out:
        out.write(data.encode() if isinstance(data, str) else data)


def live_tree(root: str, grub: bool) -> str:
    """The files of a small casper live medium with a bootable ISOLINUX menu."""
    need_isolinux()
    for name, text in (("isolinux.cfg", ISOLINUX_CFG), ("menu.cfg", MENU_CFG),
                       ("txt.cfg", TXT_CFG), ("stdmenu.cfg", "menu background splash.png\n")):
        write(root, f"isolinux/{name}", text)
    shutil.copy(ISOLINUX_BIN, os.path.join(root, "isolinux", "isolinux.bin"))
    for name in COM32:
        shutil.copy(os.path.join(MODULES, name), os.path.join(root, "isolinux", name))
    write(root, "casper/vmlinuz", b"kernel" * 100)
    write(root, "casper/initrd", b"initrd" * 100)
    write(root, "isolinux/vmlinuz", b"k2")
    write(root, "isolinux/initrd.gz", b"i2")
    write(root, ".disk/info", "Ubuntu 22.04.4 LTS \"Jammy Jellyfish\" - Release amd64\n")
    if grub:
        write(root, "boot/grub/grub.cfg", GRUB_CFG)
    return root


def build_live_iso(tmp_path, grub: bool, hybrid: bool = False) -> str:
    source = live_tree(str(tmp_path / "src"), grub)
    out = str(tmp_path / "live.iso")
    run(["xorriso", "-as", "mkisofs", "-quiet", "-R", "-J", "-V", "LIVE", "-o", out,
         "-b", "isolinux/isolinux.bin", "-c", "isolinux/boot.cat", "-no-emul-boot",
         "-boot-load-size", "4", "-boot-info-table", source])
    return make_hybrid(out) if hybrid else out


def image_tree(path: str):
    return open_image(LocalSource(path), OPTIONS)


@pytest.mark.parametrize("hybrid", [False, True], ids=["iso", "hybrid"])
def test_isolinux_live_iso(tmp_path, hybrid):
    iso = build_live_iso(tmp_path, grub=False, hybrid=hybrid)
    with image_tree(iso) as tree:
        menu = load_menu(tree)
        assert (menu.format, menu.path) == (SYSLINUX, "isolinux/isolinux.cfg")
        assert [e.title for e in menu.entries] == [
            "Try Ubuntu without installing", "Install Ubuntu", "Rescue (kernel next to the menu)",
            "Test memory", "Boot from first hard disk"]
        chosen = choose(menu).entry  # `default vesamenu.c32` is the menu; `menu default` counts
        assert chosen.title == "Install Ubuntu"
        assert (chosen.kernel, chosen.initrds) == ("casper/vmlinuz", ("casper/initrd",))
        rescue = menu.entries[2]
        assert (rescue.kernel, rescue.initrds) == ("isolinux/vmlinuz", ("isolinux/initrd.gz",))
        for path in (chosen.kernel, *chosen.initrds, rescue.kernel, *rescue.initrds):
            assert tree.stat(path).size > 0  # the paths name real files of the image
        assert not menu.entries[4].bootable
        assert menu.files == ("isolinux/isolinux.cfg", "isolinux/menu.cfg",
                              "isolinux/stdmenu.cfg", "isolinux/txt.cfg")


def test_iso_with_grub_and_isolinux_prefers_grub(tmp_path):
    iso = build_live_iso(tmp_path, grub=True)
    with image_tree(iso) as tree:
        menu = load_menu(tree)
        assert (menu.format, menu.path) == (GRUB2, "boot/grub/grub.cfg")
        assert [e.title for e in menu.entries] == ["Try or Install Ubuntu", "UEFI Firmware Settings"]
        assert menu.entries[0].args == "boot=casper ---"
        assert load_file(tree, SYSLINUX, "isolinux/isolinux.cfg").default == 1


def test_menus_in_disk_images(tmp_path):
    ext_src, fat_src, lst_src = (str(tmp_path / name) for name in ("ext", "fat", "lst"))
    write(ext_src, "boot/extlinux/extlinux.conf",
          "DEFAULT alpine\nLABEL alpine\n  LINUX /boot/vmlinuz-virt\n  INITRD /boot/initramfs-virt\n"
          "  APPEND modules=loop,squashfs,sd-mod quiet\n")
    write(ext_src, "boot/vmlinuz-virt", b"k")
    write(fat_src, "EFI/BOOT/grub.cfg", "menuentry 'Fedora' { linuxefi /images/pxeboot/vmlinuz "
                                         "inst.stage2=hd:LABEL=F quiet; initrdefi "
                                         "/images/pxeboot/initrd.img }\n")
    write(lst_src, "boot/grub/menu.lst", "default 0\ntitle CentOS 5\n\troot (hd0,0)\n"
                                         "\tkernel /boot/vmlinuz-2.6.18 ro root=/dev/xvda2\n"
                                         "\tinitrd /boot/initrd-2.6.18.img\n")
    ext = build_ext(ext_src, str(tmp_path / "ext.img"), "ext4", "8M")
    fat = build_fat(fat_src, str(tmp_path / "fat.img"), 16, 16384)
    lst = build_ext(lst_src, str(tmp_path / "lst.img"), "ext3", "8M")
    disk = build_disk(str(tmp_path / "disk.img"), "dos", [(lst, "83")])
    expected = {ext: (SYSLINUX, "boot/vmlinuz-virt", ("boot/initramfs-virt",)),
                fat: (GRUB2, "images/pxeboot/vmlinuz", ("images/pxeboot/initrd.img",)),
                disk: (GRUB_LEGACY, "boot/vmlinuz-2.6.18", ("boot/initrd-2.6.18.img",))}
    for image, (fmt, kernel, initrds) in expected.items():
        with image_tree(image) as tree:
            entry = choose(load_menu(tree)).entry
            assert (load_menu(tree).format, entry.kernel, entry.initrds) == (fmt, kernel, initrds)


# -- served over the network --------------------------------------------------------------------

def debian_listing() -> list:
    test_env.debian_installer_files()
    return listing(load_menu(LocalTree(DEBIAN_TEXT), pxe_paths=config_paths()))


def test_debian_netboot_tree_over_http():
    from support.http_server import TestHTTPServer

    expected = debian_listing()
    server = TestHTTPServer(DEBIAN_TEXT).start()
    try:
        with open_location(server.url("/"), OPTIONS) as tree:
            menu = load_menu(tree, pxe_paths=config_paths("00:16:3e:00:00:01"))
        assert menu.format == PXELINUX and listing(menu) == expected
    finally:
        server.stop()


def test_live_iso_read_in_place_over_http(tmp_path):
    from support.http_server import TestHTTPServer

    build_live_iso(tmp_path, grub=False)
    server = TestHTTPServer(str(tmp_path)).start()
    try:
        with open_location(server.url("/live.iso"), OPTIONS) as tree:
            menu = load_menu(tree)
        assert choose(menu).entry.title == "Install Ubuntu"
    finally:
        server.stop()


def test_debian_netboot_tree_over_tftp(tftpd_hpa):
    expected = debian_listing()
    server = tftpd_hpa(DEBIAN_TEXT)
    with open_location(f"tftp://127.0.0.1:{server.port}/", OPTIONS) as tree:
        menu = load_menu(tree, pxe_paths=config_paths("00:16:3e:00:00:01"))
    assert menu.format == PXELINUX and listing(menu) == expected


def test_per_guest_pxe_file_over_tftp(tftpd_hpa, tmp_path):
    root = str(tmp_path)
    write(root, "pxelinux.cfg/default", "default local\nlabel local\n localboot 0\n")
    write(root, "pxelinux.cfg/0A0000", "default subnet\nlabel subnet\n kernel k\n")
    write(root, "pxelinux.cfg/01-00-16-3e-aa-bb-cc",
          "default linux\nlabel linux\n kernel /images/vmlinuz\n ipappend 2\n"
          " append initrd=/images/initrd.img ks=http://10.0.0.1/ks.cfg\n")
    server = tftpd_hpa(root)
    from xenpvnetboot.menus import boot_args, parse_ipv4

    ip = parse_ipv4("10.0.0.7")
    with open_location(f"tftp://127.0.0.1:{server.port}/", OPTIONS) as tree:
        mine = load_menu(tree, pxe_paths=config_paths("00:16:3e:aa:bb:cc", ip))
        other = load_menu(tree, pxe_paths=config_paths("00:16:3e:00:00:02", ip))
        unknown = load_menu(tree, pxe_paths=config_paths("00:16:3e:00:00:02"))
    entry = choose(mine).entry
    assert boot_args(entry, "console=hvc0", "00:16:3e:aa:bb:cc") == (
        "ks=http://10.0.0.1/ks.cfg BOOTIF=01-00-16-3e-aa-bb-cc console=hvc0")
    assert other.path == "pxelinux.cfg/0A0000" and choose(other).entry.kernel == "k"
    assert unknown.path == "pxelinux.cfg/default" and not unknown.entries[0].bootable
