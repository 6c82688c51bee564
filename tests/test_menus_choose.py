"""Choosing an entry, its command line, PXE lookup and the live systems' network arguments."""

from __future__ import annotations

import ipaddress

import pytest

from support.menus import MemoryTree
from xenpvnetboot.errors import UsageError
from xenpvnetboot.menus import (MenuError, NotBootable, boot_args, choose, entry_for_kernel,
                                listing)
from xenpvnetboot.menus.find import load_file
from xenpvnetboot.menus.livenet import (ALPINE, ARCHISO, CASPER, live_network_args,
                                        live_system)
from xenpvnetboot.menus.model import GRUB2, Entry, Menu
from xenpvnetboot.menus.pxe import bootif, config_names, config_paths, parse_ipv4, parse_mac

MENU = """
menuentry 'Install' { linux /install/vmlinuz vga=788 --- quiet; initrd /install/initrd.gz }
submenu 'Advanced options' {
  menuentry 'Expert install' --id expert { linux /install/vmlinuz priority=low --- }
  menuentry 'Rescue mode' { linux /install/vmlinuz rescue/enable=true }
  menuentry 'UEFI Firmware Settings' { fwsetup }
}
menuentry 'Graphical install' { linux /install/gtk/vmlinuz vga=788 --- quiet }
"""


@pytest.fixture(scope="module")
def menu() -> Menu:
    return load_file(MemoryTree({"boot/grub/grub.cfg": MENU}), GRUB2, "boot/grub/grub.cfg")


@pytest.mark.parametrize("wanted,index", [
    (None, 0), ("", 0), ("2", 2), ("0", 0), ("Install", 0),  # exact title beats substring
    ("expert", 1),  # the --id
    ("install", 1),  # a case-sensitive substring comes before any case
    ("RESCUE", 2),  # no case-sensitive match: the first title containing it, any case
    ("Rescue", 2), ("Graphical", 4), ("mode", 2),
])
def test_entry_matching(menu, wanted, index):
    choice = choose(menu, wanted)
    assert choice.entry.index == index and not choice.warning


@pytest.mark.parametrize("wanted", ["99", "nothing like it", "-1"])
def test_no_match_keeps_the_default_with_a_warning(menu, wanted):
    choice = choose(menu, wanted)
    assert choice.entry.index == 0
    assert choice.warning == (f"--entry={wanted!r} matches no entry of GRUB 2 menu "
                              "boot/grub/grub.cfg; booting the default, entry 0 'Install'")


def test_a_non_bootable_entry_is_refused_naming_it(menu):
    with pytest.raises(NotBootable) as caught:
        choose(menu, "3")
    assert str(caught.value) == ("GRUB 2 menu boot/grub/grub.cfg: entry 3 'UEFI Firmware "
                                 "Settings' cannot be booted (runs fwsetup)")
    with pytest.raises(MenuError, match="no entries"):
        choose(Menu(GRUB2, "x.cfg", (), None))


def entry(args: str, sysappend: int = 0) -> Entry:
    return Entry(0, "t", "k", args=args, sysappend=sysappend)


@pytest.mark.parametrize("args,user,expected", [
    ("vga=788 initrd=/a.gz BOOT_IMAGE=/k --- quiet vga=791 initrd=x", "",
     "--- quiet vga=791 initrd=x"),
    ("vga=788 --- quiet", "console=hvc0", "--- quiet console=hvc0"),
    ("root=/dev/xvda1 -- single", "console=hvc0", "root=/dev/xvda1 console=hvc0 -- single"),
    ("a --- b -- c", "u=1", "a --- b u=1 -- c"),
    ("boot=casper", "console=hvc0 quiet", "boot=casper console=hvc0 quiet"),
    ("", "", ""),
    ("initrd=a,b vgaplus=1 xvga=2", "", "vgaplus=1 xvga=2"),
])
def test_boot_args(args, user, expected):
    assert boot_args(entry(args), user) == expected


def test_boot_args_bootif_and_extra_drops():
    mac = parse_mac("00:16:3E:12:34:56")
    assert boot_args(entry("ks=x --- q", 2), "", mac) == "ks=x BOOTIF=01-00-16-3e-12-34-56 --- q"
    assert boot_args(entry("ks=x", 2)) == "ks=x"  # no --mac: nothing to say
    assert boot_args(entry("ks=x BOOTIF=01-aa", 2), "", mac) == "ks=x BOOTIF=01-aa"
    assert boot_args(entry("inst.stage2=hd:LABEL=X quiet"), drop=["inst.stage2"]) == "quiet"


def test_entry_for_kernel(menu):
    assert entry_for_kernel(menu, "/install/vmlinuz").index == 0
    assert entry_for_kernel(menu, "install/gtk/vmlinuz").index == 4
    assert entry_for_kernel(menu, "other/vmlinuz") is None


def test_listing(menu):
    lines = listing(menu)
    assert lines[0] == "GRUB 2 menu boot/grub/grub.cfg: 5 entries, default 0"
    assert lines[1:5] == ["    0* Install", "         install/vmlinuz + install/initrd.gz",
                          "         --- quiet", "  Advanced options >"]
    assert lines[11:13] == ["      3  UEFI Firmware Settings", "           not bootable: runs fwsetup"]
    assert lines[13] == "    4  Graphical install"


# -- PXE ------------------------------------------------------------------------------------

def test_pxelinux_lookup_order():
    names = config_names(parse_mac("00-16-3E-12-34-56"), parse_ipv4("192.168.1.10"))
    assert names == ["01-00-16-3e-12-34-56", "C0A8010A", "C0A8010", "C0A801", "C0A80",
                     "C0A8", "C0A", "C0", "C", "default"]
    assert config_names() == ["default"]
    assert config_names(ip=ipaddress.IPv4Address("10.0.0.1"))[0] == "0A000001"
    assert config_paths("00:16:3e:00:00:01")[0] == "pxelinux.cfg/01-00-16-3e-00-00-01"
    assert bootif("00:16:3e:00:00:01") == "BOOTIF=01-00-16-3e-00-00-01"


@pytest.mark.parametrize("text,value", [
    ("00:16:3e:12:34:56", "00:16:3e:12:34:56"), ("00-16-3E-12-34-56", "00:16:3e:12:34:56"),
    ("00163E123456", "00:16:3e:12:34:56"), ("0:16:3e:1:2:3", "00:16:3e:01:02:03"),
])
def test_mac_forms(text, value):
    assert parse_mac(text) == value


@pytest.mark.parametrize("text", ["", "00:16:3e:12:34", "00:16:3e:12:34:56:78", "00:16-3e:12:34:56",
                                  "zz:16:3e:12:34:56", "01:00:5e:00:00:01", "00:16:3e:123:4:5"])
def test_bad_mac_is_a_usage_error_naming_the_option(text):
    with pytest.raises(UsageError, match=r"^--mac="):
        parse_mac(text)


@pytest.mark.parametrize("text", ["", "300.1.1.1", "::1", "10.0.0.1/24", "224.0.0.1", "0.0.0.0",
                                  "255.255.255.255", "host.example"])
def test_bad_ip_is_a_usage_error_naming_the_option(text):
    with pytest.raises(UsageError, match=r"^--ip="):
        parse_ipv4(text)


# -- live systems ---------------------------------------------------------------------------

ISO = "http://192.168.0.1/iso/ubuntu-22.04.4-live-server-amd64.iso"


@pytest.mark.parametrize("kernel,cmdline,family,system", [
    ("casper/vmlinuz", "--- quiet", None, CASPER),
    ("boot/vmlinuz", "boot=casper", None, CASPER),
    ("arch/boot/x86_64/vmlinuz-linux", "", None, ARCHISO),
    ("boot/x86_64/vmlinuz", "archisobasedir=arch archisolabel=ARCH_2024", None, ARCHISO),
    ("boot/vmlinuz-virt", "modules=loop,squashfs quiet", "alpine", ALPINE),
    ("boot/vmlinuz-lts", "modloop=/boot/modloop-lts", None, ALPINE),
    ("boot/vmlinuz-lts", "quiet", None, None),
    ("install.amd/vmlinuz", "vga=788 --- quiet", None, None),
])
def test_live_system(kernel, cmdline, family, system):
    assert live_system(kernel, cmdline, family) == system


@pytest.mark.parametrize("kernel,cmdline,location,image,family,expected", [
    ("casper/vmlinuz", "---", ISO, True, None, f"ip=dhcp url={ISO} cloud-config-url=/dev/null"),
    ("casper/vmlinuz", "---", "http://h/ubuntu/", False, None, ""),
    ("casper/vmlinuz", "---", "nfs:192.168.0.1:/srv/ubuntu", False, None,
     "ip=dhcp netboot=nfs nfsroot=192.168.0.1:/srv/ubuntu"),
    ("casper/vmlinuz", "---", "http://user:pw@h/u.iso", True, None, ""),
    ("casper/vmlinuz", "---", "/var/lib/xen/u.iso", True, None, ""),
    ("casper/vmlinuz", "---", "tftp://h/u.iso", True, None, ""),
    ("arch/boot/x86_64/vmlinuz-linux", "archisobasedir=arch", "http://h/arch/iso/latest", False,
     None, "ip=dhcp archiso_http_srv=http://h/arch/iso/latest/"),
    ("media/arch/boot/x86_64/vmlinuz-linux", "", "https://h/", False, None,
     "ip=dhcp archiso_http_srv=https://h/media/"),
    ("arch/boot/x86_64/vmlinuz-linux", "", "nfs:vers=3:h:/srv/arch", False, None,
     "ip=dhcp archiso_nfs_srv=h:/srv/arch"),
    ("arch/boot/x86_64/vmlinuz-linux", "", "http://h/arch.iso", True, None, ""),
    ("arch/boot/x86_64/vmlinuz-linux", "", "ftp://h/arch", False, None, ""),
    ("boot/vmlinuz-virt", "modules=loop", "http://h/alpine/3.19", False, "alpine",
     "ip=dhcp modloop=http://h/alpine/3.19/boot/modloop-virt alpine_repo=http://h/alpine/3.19/apks"),
    ("vmlinuz-lts", "", "ftp://h/alpine/netboot/", False, "alpine",
     "ip=dhcp modloop=ftp://h/alpine/netboot/modloop-lts"),
    ("boot/vmlinuz-virt", "", "nfs:h:/alpine", False, "alpine", ""),
    ("install.amd/vmlinuz", "", "http://h/debian", False, None, ""),
])
def test_live_network_args(kernel, cmdline, location, image, family, expected):
    assert live_network_args(kernel, cmdline, location, image, family) == expected


# -- the decision the boot asks for ------------------------------------------------------------

from xenpvnetboot.menus import from_medium  # noqa: E402

PXE_FILES = {
    "pxelinux.cfg/default": "default local\nontimeout local\nlabel local\n localboot 0\n"
                            "label linux\n kernel /images/vmlinuz\n ipappend 2\n"
                            " append initrd=/images/initrd.img ks=http://10.0.0.1/ks vga=791 --- q\n",
    "boot/grub/grub.cfg": MENU,
}


def test_from_medium_default_entry_and_its_command_line():
    outcome = from_medium(MemoryTree({"boot/grub/grub.cfg": MENU}))
    boot = outcome.boot
    assert (boot.kernel, boot.initrds, boot.args) == ("install/vmlinuz", ("install/initrd.gz",),
                                                      "--- quiet")
    assert boot.reason == "GRUB 2 menu boot/grub/grub.cfg, entry 0 'Install' (the default)"
    assert boot.command_line("console=hvc0") == "--- quiet console=hvc0"
    assert not outcome.warnings


def test_from_medium_pxe_entry_mac_and_refused_default():
    tree = MemoryTree(PXE_FILES)
    # the PXE default boots the local disk: a warning, and nothing from the menu
    outcome = from_medium(tree, pxe=True)
    assert outcome.boot is None and outcome.menu.format == "PXELINUX"
    assert outcome.warnings == ("PXELINUX menu pxelinux.cfg/default: entry 0 'local' cannot be "
                                "booted (boots from the local disk 0); booting without the "
                                "menu's arguments",)
    picked = from_medium(tree, wanted="linux", pxe=True, mac="00:16:3e:00:00:07").boot
    assert picked.args == "ks=http://10.0.0.1/ks BOOTIF=01-00-16-3e-00-00-07 --- q"
    assert picked.reason.endswith("entry 1 'linux' (--entry=linux)")
    with pytest.raises(NotBootable, match="entry 0 'local' cannot be booted"):
        from_medium(tree, wanted="local", pxe=True)
    # not a PXE server: the same tree's GRUB menu counts
    assert from_medium(tree).boot.menu.format == "GRUB 2"


def test_from_medium_fallbacks():
    assert from_medium(MemoryTree({})) == from_medium(MemoryTree({"README": "x"}))
    nothing = from_medium(MemoryTree({}), wanted="3")
    assert nothing.boot is None and nothing.warnings == ("--entry='3': mem:/ has no boot menu",)
    hostile = from_medium(MemoryTree({"boot/grub/grub.cfg": "source /boot/grub/grub.cfg\n"}))
    assert hostile.boot is None and hostile.menu is None
    assert hostile.warnings[0].startswith("mem:/boot/grub/grub.cfg: include loop")
    assert hostile.warnings[0].endswith("; booting without the menu's arguments")
    empty = from_medium(MemoryTree({"boot/grub/grub.cfg": "set timeout=5\n"}))
    assert empty.boot is None and "no entries" in empty.warnings[0]
    unmatched = from_medium(MemoryTree({"boot/grub/grub.cfg": MENU}), wanted="nothing")
    assert unmatched.boot.entry.index == 0 and "matches no entry" in unmatched.warnings[0]


def test_from_medium_with_the_kernel_named():
    tree = MemoryTree({"boot/grub/grub.cfg": MENU})
    boot = from_medium(tree, kernel="install/gtk/vmlinuz").boot
    assert boot.entry.index == 4 and boot.reason.endswith("(it boots --kernel)")
    assert from_medium(tree, kernel="elsewhere/vmlinuz").boot is None
