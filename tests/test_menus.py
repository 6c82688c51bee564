"""The menu parsers: SYSLINUX family, GRUB 2, GRUB legacy, on real and written menus."""

from __future__ import annotations

import os

import pytest

from support import env as test_env
from support.menus import MemoryTree
from xenpvnetboot.menus import MenuError
from xenpvnetboot.menus.find import load_file, load_menu
from xenpvnetboot.menus.model import GRUB2, GRUB_LEGACY, PXELINUX, SYSLINUX
from xenpvnetboot.transports.local import LocalTree

DEBIAN_TEXT = "/usr/lib/debian-installer/images/12/amd64/text"


def debian_tree() -> LocalTree:
    test_env.debian_installer_files()
    return LocalTree(DEBIAN_TEXT)


def syslinux(files, path="isolinux/isolinux.cfg"):
    return load_file(MemoryTree(files), SYSLINUX, path)


def grub(files, path="boot/grub/grub.cfg"):
    return load_file(MemoryTree(files), GRUB2, path)


def legacy(text, path="boot/grub/menu.lst"):
    return load_file(MemoryTree({path: text}), GRUB_LEGACY, path)


def titles(menu):
    return [entry.title for entry in menu.entries]


# -- the real Debian installer menus ------------------------------------------------------

def test_debian_pxelinux_menu_with_nested_includes():
    menu = load_file(debian_tree(), PXELINUX, "pxelinux.cfg/default")
    assert menu.format == PXELINUX
    assert titles(menu) == ["Install", "Expert install", "Rescue mode", "Automated install",
                            "Install", "Expert install", "Rescue mode", "Automated install",
                            "Help", "Help"]
    # The last `default` names vesamenu.c32, not a label; the root menu has no
    # `menu default`, so its first entry is the default, as on the real screen.
    assert menu.default == 0
    install = menu.entries[0]
    assert install.kernel == "debian-installer/amd64/linux"
    assert install.initrds == ("debian-installer/amd64/initrd.gz",)
    assert install.args == "vga=788 initrd=debian-installer/amd64/initrd.gz --- quiet"
    assert install.source == "debian-installer/amd64/boot-screens/txt.cfg"
    assert menu.entries[2].parents == ("Advanced options",)
    assert menu.entries[6].parents == ("Accessible dark contrast installer menu", "Advanced options")
    assert menu.entries[6].label == "rescuedark"
    assert "theme=dark" in menu.entries[6].args
    helper = menu.entries[9]
    assert not helper.bootable and helper.config == "debian-installer/amd64/boot-screens/prompt.cfg"
    # includes three levels deep were followed; the gtk files absent from the text flavour skipped
    assert "debian-installer/amd64/boot-screens/rqdrk.cfg" in menu.files
    assert any("gtk.cfg not found" in note for note in menu.notes)


def test_debian_grub_menu_with_submenus():
    menu = load_file(debian_tree(), GRUB2, "debian-installer/amd64/grub/grub.cfg")
    assert len(menu.entries) == 26 and menu.default == 0
    first = menu.entries[0]
    assert (first.title, first.kernel, first.initrds, first.args) == (
        "Install", "debian-installer/amd64/linux", ("debian-installer/amd64/initrd.gz",),
        "vga=788 --- quiet")
    gnome = menu.entries[8]
    assert gnome.title == "... Expert install"
    assert gnome.parents == ("Advanced options ...", "... Desktop environment menu ...",
                             "... GNOME desktop boot menu ...", "... GNOME advanced options ...")
    assert gnome.args == "desktop=gnome priority=low vga=788 ---"
    assert all(entry.bootable for entry in menu.entries)


def test_debian_netboot_tree_gets_its_pxelinux_menu_before_grub():
    tree = debian_tree()
    assert load_menu(tree, pxe_paths=["pxelinux.cfg/default"]).format == PXELINUX
    without_pxe = load_menu(tree)
    assert without_pxe.format == GRUB2
    assert without_pxe.path == "debian-installer/amd64/grub/grub.cfg"


# -- SYSLINUX -------------------------------------------------------------------------------

LIVE = """\
UI vesamenu.c32
TIMEOUT 300
MENU TITLE Live
LABEL live
  MENU LABEL ^Start the live system
  KERNEL /casper/vmlinuz
  APPEND initrd=/casper/initrd boot=casper quiet splash ---
LABEL check
  MENU LABEL ^Check disc
  MENU DEFAULT
  LINUX vmlinuz
  INITRD initrd.img,extra.img
  APPEND initrd=ignored.img integrity-check
LABEL hd
  MENU LABEL Boot from first hard disk
  LOCALBOOT 0x80
LABEL memtest
  KERNEL memdisk
  APPEND raw
LABEL chain
  KERNEL chain.c32
LABEL pxe
  KERNEL gpxelinux.0
"""


def test_isolinux_menu_default_and_kernel_kinds():
    menu = syslinux({"isolinux/isolinux.cfg": LIVE})
    assert titles(menu) == ["Start the live system", "Check disc", "Boot from first hard disk",
                            "memtest", "chain", "pxe"]
    assert menu.default == 1  # menu default; the UI line names no label
    check = menu.entries[1]
    assert check.kernel == "isolinux/vmlinuz"  # relative to the config's directory
    assert check.initrds == ("isolinux/initrd.img", "isolinux/extra.img")  # the keyword wins
    live = menu.entries[0]
    assert live.kernel == "casper/vmlinuz" and live.initrds == ("casper/initrd",)
    reasons = {e.title: e.reason for e in menu.entries if not e.bootable}
    assert reasons == {"Boot from first hard disk": "boots from the local disk 0x80",
                       "memtest": "runs memdisk, which boots disk images",
                       "chain": "runs a COM32 module chain.c32",
                       "pxe": "chains to another PXE program gpxelinux.0"}


def test_last_default_naming_a_label_wins_then_ontimeout_then_first():
    base = "label a\n kernel /a\nlabel b\n kernel /b\nlabel c\n kernel /c\n"
    assert syslinux({"syslinux.cfg": "default a\n" + base + "default c\n"},
                    "syslinux.cfg").default == 2
    assert syslinux({"syslinux.cfg": "default b extra=1\n" + base}, "syslinux.cfg").default == 1
    assert syslinux({"syslinux.cfg": "default nosuch\nontimeout B\n" + base},
                    "syslinux.cfg").default == 1  # labels match without regard to case
    assert syslinux({"syslinux.cfg": "default menu.c32\n" + base}, "syslinux.cfg").default == 0


def test_menu_start_makes_a_submenu_the_start_menu():
    text = ("label top\n kernel /top\nmenu begin more\n menu title More\n menu start\n"
            " label x\n  kernel /x\n label y\n  kernel /y\n  menu default\nmenu end\n")
    menu = syslinux({"s.cfg": text}, "s.cfg")
    assert menu.entries[menu.default].title == "y"
    assert menu.entries[1].parents == ("More",)


def test_global_append_and_append_dash():
    text = ("append root=/dev/ram0\nlabel a\n kernel /a\nlabel b\n kernel /b\n append -\n"
            "label c\n kernel /c extra\n append own\n")
    menu = syslinux({"s.cfg": text}, "s.cfg")
    assert [e.args for e in menu.entries] == ["root=/dev/ram0", "", "extra own"]


def test_navigation_items_are_not_numbered_and_help_text_is_skipped():
    text = ("menu begin sub\n menu label Sub\n label back\n  menu label Back\n  menu exit\n"
            " label -\n  menu label Section:\n  menu disable\n label real\n  kernel /k\n"
            "  text help\n kernel /evil\n label evil\n  endtext\n menu end\n"
            "label hidden\n menu hide\n kernel /h\n")
    menu = syslinux({"s.cfg": text}, "s.cfg")
    assert titles(menu) == ["real", "hidden"]
    assert menu.entries[0].kernel == "k" and menu.entries[0].parents == ("Sub",)
    assert menu.entries[1].hidden and menu.entries[1].bootable


def test_include_with_a_tag_is_a_submenu_and_missing_include_is_skipped():
    files = {"s.cfg": "include more.cfg Extras\ninclude none.cfg\nlabel a\n kernel /a\n",
             "more.cfg": "label m\n kernel /m\n"}
    menu = syslinux(files, "s.cfg")
    assert titles(menu) == ["m", "a"] and menu.entries[0].parents == ("Extras",)
    assert any("none.cfg not found" in note for note in menu.notes)


def test_config_switches_files_and_a_config_default_is_followed():
    files = {"isolinux/isolinux.cfg": "path /arch/boot/syslinux/\ndefault loadconfig\n"
                                      "label loadconfig\n config /arch/boot/syslinux/archiso.cfg\n"
                                      " append /arch/boot/syslinux/\n",
             "arch/boot/syslinux/archiso.cfg": "label arch64\n linux ../x86_64/vmlinuz-linux\n"
                                               " initrd ../x86_64/initramfs-linux.img\n"
                                               " append archisobasedir=arch archisolabel=ARCH\n"}
    menu = syslinux(files)
    assert menu.path == "arch/boot/syslinux/archiso.cfg"
    assert menu.entries[0].kernel == "arch/boot/x86_64/vmlinuz-linux"
    assert menu.entries[0].initrds == ("arch/boot/x86_64/initramfs-linux.img",)
    switched = syslinux({"s.cfg": "label gone\n kernel /gone\nconfig other/o.cfg\n",
                         "other/o.cfg": "label o\n kernel o\n"}, "s.cfg")
    assert titles(switched) == ["o"] and switched.entries[0].kernel == "o"


def test_config_loop_include_loop_and_depth_are_refused():
    with pytest.raises(MenuError, match="'config' loop"):
        syslinux({"a.cfg": "config b.cfg\n", "b.cfg": "config a.cfg\n"}, "a.cfg")
    with pytest.raises(MenuError, match="include loop .*a.cfg -> b.cfg -> a.cfg"):
        syslinux({"a.cfg": "include b.cfg\n", "b.cfg": "include a.cfg\n"}, "a.cfg")
    chain = {f"{i}.cfg": f"include {i + 1}.cfg\n" for i in range(40)}
    with pytest.raises(MenuError, match="includes nested deeper than 16"):
        syslinux(chain, "0.cfg")
    ok = {f"{i}.cfg": f"include {i + 1}.cfg\n" for i in range(16)}
    ok["16.cfg"] = "label deep\n kernel /k\n"
    assert titles(syslinux(ok, "0.cfg")) == ["deep"]


def test_submenus_nested_deeper_than_32_are_refused():
    deep = "menu begin x\n" * 33 + "label a\n kernel /a\n" + "menu end\n" * 33
    with pytest.raises(MenuError, match="nested deeper than 32"):
        syslinux({"s.cfg": deep}, "s.cfg")
    fine = "menu begin x\n" * 32 + "label a\n kernel /a\n" + "menu end\n" * 32
    assert len(syslinux({"s.cfg": fine}, "s.cfg").entries[0].parents) == 32


def test_paths_outside_the_medium():
    files = {"isolinux/isolinux.cfg": "label up\n kernel ../../../etc/passwd\n"
                                      "label url\n kernel http://evil.example/vmlinuz\n"
                                      "label host\n kernel 10.0.0.1::boot/vmlinuz\n"
                                      "label rd\n kernel /k\n initrd ../../../x\n"
                                      "label fine\n kernel ../boot/k\n"}
    menu = syslinux(files)
    assert [e.bootable for e in menu.entries] == [False, False, False, False, True]
    assert "leaves the medium" in menu.entries[0].reason
    assert "another server" in menu.entries[1].reason and "another server" in menu.entries[2].reason
    assert menu.entries[4].kernel == "boot/k"
    with pytest.raises(MenuError, match="leaves the medium"):
        syslinux({"s.cfg": "include ../../x.cfg\n"}, "s.cfg")


def test_ipappend_and_upper_case_keywords():
    text = "IPAPPEND 2\nLABEL a\nKERNEL /a\nLABEL b\nKERNEL /b\nSYSAPPEND 0x3\n"
    menu = syslinux({"s.cfg": text}, "s.cfg")
    assert [e.sysappend for e in menu.entries] == [2, 3]


# -- GRUB 2 --------------------------------------------------------------------------------

def test_grub_quoting_variables_and_lazy_bodies():
    text = r"""
set prefix=(cd0)/boot/grub   # a comment
set opts="quiet splash"
menuentry "Try \"it\" now" --class ubuntu --id=try {
    linux ($root)/casper/vmlinuz boot=casper $opts "${late}" 'lit $x' ---
    initrdefi /casper/initrd /casper/extra
}
late=later
"""
    menu = grub({"boot/grub/grub.cfg": text})
    entry = menu.entries[0]
    assert entry.title == 'Try "it" now' and entry.label == "try"
    assert entry.kernel == "casper/vmlinuz"
    assert entry.args == 'boot=casper quiet splash later "lit $x" ---'
    assert entry.initrds == ("casper/initrd", "casper/extra")


def test_grub_if_branches_are_all_read_and_loops_are_not():
    text = """
if [ "$grub_platform" = "efi" ]; then
  set linux=linuxefi; set initrd=initrdefi
else
  set linux=linux
  set initrd=initrd
fi
menuentry 'Installation' { $linux /boot/x86_64/loader/linux splash=silent; $initrd /boot/x86_64/loader/initrd }
if true; then menuentry 'In a branch' { linux /b } elif x; then menuentry Other { linux /c }; fi
for f in /a /b; do menuentry "loop $f" { linux $f }; done
function load_video { menuentry never { linux /never } }
while false; do set never=1; done
"""
    menu = grub({"boot/grub/grub.cfg": text})
    assert titles(menu) == ["Installation", "In a branch", "Other"]
    assert menu.entries[0].kernel == "boot/x86_64/loader/linux"
    assert menu.entries[0].initrds == ("boot/x86_64/loader/initrd",)
    assert any("'for' block(s) not read" in note for note in menu.notes)
    assert any("'function'" in note for note in menu.notes)


SUBMENUS = """
menuentry A { linux /a }
submenu 'Sub' --id sub {
  set default=1
  menuentry S0 { linux /s0 }
  menuentry S1 --id s-one { linux /s1 }
}
menuentry C { linux /c }
"""


@pytest.mark.parametrize("spec,title", [
    ("0", "A"), ("2", "C"), ("C", "C"), ("1", "S1"), ("Sub", "S1"), ("sub>0", "S0"),
    ("1>s-one", "S1"), ("s-one", "A"), ("9", "A"), ("", "A"), ("${saved_entry}", "A"),
])
def test_grub_set_default(spec, title):
    menu = grub({"boot/grub/grub.cfg": f"set default=\"{spec}\"\n" + SUBMENUS})
    assert menu.entries[menu.default].title == title


def test_grub_source_and_configfile():
    files = {"EFI/BOOT/grub.cfg": "search --set=root --file /.disk/info\n"
                                  "set prefix=($root)/boot/grub\nconfigfile $prefix/nosuch.cfg\n"
                                  "configfile ${prefix}/grub.cfg\nmenuentry Never { linux /n }\n",
             "boot/grub/grub.cfg": "source /boot/grub/entries.cfg\nsource /boot/grub/absent.cfg\n"
                                   "menuentry Own { linux /own }\n",
             "boot/grub/entries.cfg": "menuentry Sourced { linux /s }\n"}
    menu = grub(files, "EFI/BOOT/grub.cfg")
    assert menu.path == "boot/grub/grub.cfg"
    assert titles(menu) == ["Sourced", "Own"]
    assert menu.entries[0].source == "boot/grub/entries.cfg"
    assert any("absent.cfg not found" in note for note in menu.notes)
    assert any("nosuch.cfg not found" in note for note in menu.notes)
    with pytest.raises(MenuError, match="'configfile' loop"):
        grub({"a.cfg": "configfile /b.cfg\n", "b.cfg": "configfile /a.cfg\n"}, "a.cfg")
    followed = grub({"g.cfg": "menuentry More { configfile /m.cfg }\n",
                     "m.cfg": "menuentry Real { linux /r }\n"}, "g.cfg")
    assert titles(followed) == ["Real"]


def test_grub_loaders_that_are_not_linux_and_xen_entries():
    text = """
menuentry 'Xen' { multiboot2 /boot/xen.gz dom0_mem=1G; module2 /boot/vmlinuz root=/dev/xvda1 ro; module2 --nounzip /boot/initrd.img }
menuentry 'Windows' { insmod chain; chainloader +1 }
menuentry 'Firmware' { fwsetup }
menuentry 'Other multiboot' { multiboot /boot/memtest.bin }
menuentry 'Remote' { linux (http,10.0.0.1)/vmlinuz }
menuentry 'Escape' { linux /../../etc/passwd }
menuentry 'Empty' { echo nothing }
"""
    menu = grub({"boot/grub/grub.cfg": text})
    xen = menu.entries[0]
    assert (xen.kernel, xen.initrds, xen.args) == ("boot/vmlinuz", ("boot/initrd.img",),
                                                   "root=/dev/xvda1 ro")
    assert [e.reason for e in menu.entries[1:]] == [
        "runs chainloader", "runs fwsetup", "boots the multiboot image /boot/memtest.bin",
        "(http,10.0.0.1)/vmlinuz is on another server",
        "path '/../../etc/passwd' leaves the medium", "boots no kernel"]


def test_grub_syntax_errors_keep_what_came_before():
    menu = grub({"boot/grub/grub.cfg": "menuentry A { linux /a }\nmenuentry 'B { linux /b }\n"})
    assert titles(menu) == ["A"]
    assert any("unterminated single quote" in note for note in menu.notes)
    menu = grub({"boot/grub/grub.cfg": "menuentry A { linux /a }\nif x; then\nmenuentry B {\n"})
    assert titles(menu) == ["A"]


def test_grub_nesting_and_expansion_bombs_are_refused():
    deep = "if x; then\n" * 40 + "fi\n" * 40
    with pytest.raises(MenuError, match="nested deeper than 32"):
        grub({"boot/grub/grub.cfg": deep})
    bomb = "set a=xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\n" + "".join(
        f"set {chr(98 + i)}=${chr(97 + i)}${chr(97 + i)}${chr(97 + i)}${chr(97 + i)}\n"
        for i in range(20))
    with pytest.raises(MenuError, match="expand to more than 16 MiB"):
        grub({"boot/grub/grub.cfg": bomb})


# -- GRUB legacy ---------------------------------------------------------------------------

def test_grub_legacy():
    text = """# menu.lst
default=1
timeout 5
hiddenmenu
title Old kernel
\troot (hd0,0)
\tkernel /vmlinuz-old root=/dev/xvda1 ro
\tinitrd /initrd-old.img
title Xen host
\tkernel (hd0,0)/xen.gz dom0_mem=512M
\tmodule /vmlinuz-xen root=/dev/xvda1
\tmodule /initrd-xen.img
title Windows
\tchainloader +1
title NetBSD
\tkernel --type=netbsd /netbsd
"""
    menu = legacy(text)
    assert menu.format == GRUB_LEGACY and menu.default == 1
    assert menu.entries[0].args == "root=/dev/xvda1 ro"
    assert menu.entries[0].initrds == ("initrd-old.img",)
    xen = menu.entries[1]
    assert (xen.kernel, xen.initrds, xen.args) == ("vmlinuz-xen", ("initrd-xen.img",),
                                                   "root=/dev/xvda1")
    assert [e.reason for e in menu.entries[2:]] == ["chains to another boot loader",
                                                    "boots a netbsd kernel"]
    assert legacy("default 7\ntitle a\nkernel /a\n").default == 0
    assert legacy("default saved\ntitle a\nkernel /a\n").default == 0


def test_grub_legacy_configfile_default_is_followed():
    files = {"boot/grub/menu.lst": "title more\nconfigfile /boot/grub/real.lst\n",
             "boot/grub/real.lst": "title real\nkernel /boot/vmlinuz\n"}
    menu = load_file(MemoryTree(files), GRUB_LEGACY, "boot/grub/menu.lst")
    assert titles(menu) == ["real"] and menu.path == "boot/grub/real.lst"


# -- choosing the file ----------------------------------------------------------------------

def test_which_menu_counts():
    grub_cfg = "menuentry G { linux /g }\n"
    iso_cfg = "label s\n kernel /s\n"
    lst = "title l\nkernel /l\n"
    both = MemoryTree({"boot/grub/grub.cfg": grub_cfg, "isolinux/isolinux.cfg": iso_cfg,
                       "boot/grub/menu.lst": lst, "pxelinux.cfg/default": iso_cfg})
    assert load_menu(both).format == GRUB2
    assert load_menu(both, pxe_paths=["pxelinux.cfg/default"]).format == PXELINUX
    assert load_menu(MemoryTree({"isolinux/isolinux.cfg": iso_cfg,
                                 "boot/grub/menu.lst": lst})).format == SYSLINUX
    assert load_menu(MemoryTree({"boot/grub/menu.lst": lst})).format == GRUB_LEGACY
    loop = load_menu(MemoryTree({"boot/grub/loopback.cfg": grub_cfg, "EFI/BOOT/grub.cfg":
                                 "menuentry E { linux /e }\n"}))
    assert loop.path == "EFI/BOOT/grub.cfg"
    assert load_menu(MemoryTree({"debian-installer/arm64/grub/grub.cfg": grub_cfg}),
                     arches=("aarch64",)).format == GRUB2
    assert load_menu(MemoryTree({"README": "no menu"})) is None


def test_pxe_lookup_takes_the_first_file_that_exists():
    from xenpvnetboot.menus.pxe import config_paths, parse_ipv4

    files = {"pxelinux.cfg/default": "label d\n kernel /d\n",
             "pxelinux.cfg/C0A801": "label subnet\n kernel /subnet\n"}
    paths = config_paths("00:16:3e:12:34:56", parse_ipv4("192.168.1.10"))
    assert load_menu(MemoryTree(files), pxe_paths=paths).entries[0].title == "subnet"
    files["pxelinux.cfg/01-00-16-3e-12-34-56"] = "label mine\n kernel /mine\n"
    assert load_menu(MemoryTree(files), pxe_paths=paths).entries[0].title == "mine"
    assert load_menu(MemoryTree(files), pxe_paths=config_paths()).entries[0].title == "d"


def test_debian_tree_real_files_are_symlinks_inside_the_tree():
    tree = debian_tree()
    assert os.path.islink(os.path.join(DEBIAN_TEXT, "pxelinux.cfg"))
    menu = load_menu(tree, pxe_paths=["pxelinux.cfg/01-00-16-3e-00-00-01", "pxelinux.cfg/default"])
    assert menu.path == "pxelinux.cfg/default" and len(menu.entries) == 10


def test_grub_one_command_repeating_a_long_variable_is_stopped_early():
    # each word copies 1 MiB: the bound must stop the command, not the total after it
    text = "set a=" + "x" * 1000 + "\n" + "set a=$a$a$a$a$a$a$a$a$a$a\n" * 3 + "echo " + "$a " * 400
    with pytest.raises(MenuError, match="expand to more than 16 MiB"):
        grub({"boot/grub/grub.cfg": text})


def test_only_the_hypervisor_file_names_make_a_xen_entry():
    from xenpvnetboot.menus.build import is_hypervisor

    assert all(is_hypervisor(p) for p in ("/xen.gz", "boot/xen-4.17-amd64.gz", "xen.efi",
                                          "/boot/xen-4.17.2"))
    assert not any(is_hypervisor(p) for p in ("xen", "/boot/xenlinux", "vmlinuz-xen", "xen-x"))
    menu = legacy("title a\nkernel /boot/xen\nmodule /m\n")
    assert menu.entries[0].kernel == "boot/xen"
