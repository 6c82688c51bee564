"""Property tests of the menu parsers: any input, bounded output; written menus read back."""

from __future__ import annotations

import os
import string

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from support.menus import (Item, MemoryTree, Sub, flatten, write_grub2, write_legacy,
                           write_syslinux)
from xenpvnetboot.menus import LIMITS, Menu, MenuError, boot_args
from xenpvnetboot.menus.build import is_hypervisor
from xenpvnetboot.menus.find import load_file
from xenpvnetboot.menus.model import GRUB2, GRUB_LEGACY, PXELINUX, SYSLINUX
from xenpvnetboot.menus.pxe import config_names

#: Examples per property; raise it for a longer hunt (say 5000) before a release.
EXAMPLES = int(os.environ.get("XENPVNETBOOT_FUZZ_EXAMPLES", "200"))
SETTINGS = settings(max_examples=EXAMPLES, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
FORMATS = [(SYSLINUX, "isolinux/isolinux.cfg"), (PXELINUX, "pxelinux.cfg/default"),
           (GRUB2, "boot/grub/grub.cfg"), (GRUB_LEGACY, "boot/grub/menu.lst")]


def check_invariants(menu: Menu) -> None:
    """What every menu satisfies, whatever it was read from."""
    assert len(menu.entries) <= LIMITS.entries
    assert (menu.default is None) == (not menu.entries)
    if menu.default is not None:
        assert 0 <= menu.default < len(menu.entries)
    for index, entry in enumerate(menu.entries):
        assert entry.index == index
        assert entry.title and len(entry.title) <= 100 and entry.title.isprintable()
        assert entry.args.isprintable()
        assert entry.bootable == (entry.kernel is not None and not entry.reason)
        assert len(entry.parents) <= LIMITS.nesting
        for path in (entry.kernel,) + entry.initrds:
            if path is not None:
                assert path and not path.startswith("/") and ".." not in path.split("/")
    assert len(menu.notes) <= 64


def parse_any(fmt: str, path: str, data) -> str:
    """How *data* was taken: "menu" (its invariants hold), "refused" (in one
    line), or "page" (an HTML page a sloppy server sends instead of a 404)."""
    tree = MemoryTree({path: data, "s.cfg": data, "boot/grub/x.cfg": data})
    try:
        menu = load_file(tree, fmt, path)
    except MenuError as exc:
        assert "\n" not in str(exc)
        return "refused"
    if menu is None:
        text = data.decode("utf-8", "replace") if isinstance(data, bytes) else data
        assert text.lstrip().startswith("<")
        return "page"
    check_invariants(menu)
    assert len(tree.reads) <= LIMITS.files
    return "menu"


@SETTINGS
@given(st.sampled_from(FORMATS), st.one_of(st.text(max_size=3000), st.binary(max_size=3000)))
def test_any_input_gives_a_menu_or_a_one_line_refusal(fmt_path, data):
    assert parse_any(fmt_path[0], fmt_path[1], data) in ("menu", "refused", "page")


SYSLINUX_LINES = ["label a", "label b", "LABEL c", "kernel /k", "kernel k.c32", "linux ../k",
                  "append initrd=/i,/j x --- y", "append -", "initrd /r", "menu label T^itle",
                  "menu default", "menu begin", "menu end", "menu exit", "menu hide",
                  "menu start", "include s.cfg", "include missing.cfg tag", "config s.cfg",
                  "default a", "default b", "ontimeout c", "text help", "endtext",
                  "localboot 0", "ipappend 0x7", "kernel ../../x", "menu include s.cfg T",
                  "label", "kernel", "config", "\tmenu\tlabel\tx", "# comment"]
GRUB_LINES = ["menuentry 'a' {", "menuentry \"$t\" --id x {", "submenu s {", "}", "if x; then",
              "elif y; then", "else", "fi", "for i in a; do", "done", "function f {",
              "linux /k $args ---", "initrd /a /b", "set args=\"q $args\"", "set default=1",
              "set default='s>0'", "set t=title", "source /boot/grub/x.cfg", "configfile /s.cfg",
              "multiboot2 /xen.gz", "module2 /vmlinuz x", "chainloader +1", "'", "\"", "\\",
              "${", "$", "{", "; ;", "x=1", "unset args", "linux (hd0)/k", "linux (http,h)/k"]
LEGACY_LINES = ["title a", "title", "kernel /k a=1", "kernel (hd0,0)/xen.gz", "module /m",
                "initrd /i", "default 1", "default=saved", "chainloader +1",
                "configfile /boot/grub/x.cfg", "kernel --type=netbsd /n", "root (hd0,0)"]


@SETTINGS
@given(st.lists(st.sampled_from(SYSLINUX_LINES), max_size=60))
def test_syslinux_keyword_soup(lines):
    # keywords are never an HTML page: a menu, or one line of refusal
    assert parse_any(SYSLINUX, "s.cfg", "\n".join(lines)) in ("menu", "refused")


@SETTINGS
@given(st.lists(st.sampled_from(GRUB_LINES), max_size=60), st.sampled_from(["\n", " ", ";"]))
def test_grub2_keyword_soup(lines, joiner):
    # keywords are never an HTML page: a menu, or one line of refusal
    assert parse_any(GRUB2, "boot/grub/grub.cfg", joiner.join(lines)) in ("menu", "refused")


@SETTINGS
@given(st.lists(st.sampled_from(LEGACY_LINES), max_size=40))
def test_grub_legacy_keyword_soup(lines):
    # keywords are never an HTML page: a menu, or one line of refusal
    assert parse_any(GRUB_LEGACY, "boot/grub/menu.lst", "\n".join(lines)) in ("menu", "refused")


# -- round trips ------------------------------------------------------------------------------

_WORD = st.text(string.ascii_letters + string.digits + "_-().,'", min_size=1, max_size=8)
TITLES = st.lists(_WORD, min_size=1, max_size=4).map(" ".join).filter(
    lambda t: not t.startswith("-"))
_SEGMENT = st.text(string.ascii_lowercase + string.digits + "_-", min_size=1, max_size=8)
PATHS = st.lists(_SEGMENT, min_size=1, max_size=3).map("/".join).filter(
    lambda p: p.rsplit("/", 1)[-1] != "memdisk" and not is_hypervisor(p))
ARG = st.one_of(st.just("---"), st.just("--"),
                st.text(string.ascii_letters + string.digits + "=_.,/:", min_size=2, max_size=12)
                .filter(lambda w: not w.startswith(("initrd=", "vga=", "BOOT_IMAGE="))))
ARGS = st.lists(ARG, max_size=5).map(" ".join)
ITEMS = st.builds(Item, TITLES, PATHS, st.lists(PATHS, max_size=3).map(tuple), ARGS)
TREES = st.recursive(st.lists(ITEMS, min_size=1, max_size=4),
                     lambda inner: st.lists(st.one_of(ITEMS, st.builds(Sub, TITLES, inner)),
                                            min_size=1, max_size=4),
                     max_leaves=12)


def same_entries(menu: Menu, items, with_parents: bool = True) -> None:
    expected = flatten(items)
    assert len(menu.entries) == len(expected)
    for entry, (item, parents) in zip(menu.entries, expected):
        assert entry.title == item.title
        assert entry.kernel == item.kernel
        assert entry.initrds == item.initrds
        assert boot_args(entry) == item.args
        if with_parents:
            assert entry.parents == parents
    check_invariants(menu)


@SETTINGS
@given(TREES, st.data())
def test_syslinux_round_trip(items, data):
    count = len(flatten(items))
    default = data.draw(st.one_of(st.none(), st.integers(0, count - 1)))
    menu = load_file(MemoryTree({"s.cfg": write_syslinux(items, default)}), SYSLINUX, "s.cfg")
    same_entries(menu, items)
    # without a default: the root menu's first entry, else the first in a submenu
    first_root = next((i for i, (_, parents) in enumerate(flatten(items)) if not parents), 0)
    assert menu.default == (first_root if default is None else default)


@SETTINGS
@given(TREES)
def test_grub2_round_trip(items):
    menu = load_file(MemoryTree({"g.cfg": write_grub2(items)}), GRUB2, "g.cfg")
    same_entries(menu, items)
    assert menu.default == 0


@SETTINGS
@given(st.lists(ITEMS, min_size=1, max_size=6), st.data())
def test_grub2_default_index_round_trip(items, data):
    default = data.draw(st.integers(0, len(items) - 1))
    menu = load_file(MemoryTree({"g.cfg": write_grub2(items, str(default))}), GRUB2, "g.cfg")
    same_entries(menu, items)
    assert menu.default == default


@SETTINGS
@given(st.lists(ITEMS.map(lambda i: Item(i.title, i.kernel, i.initrds[:1], i.args)),
                min_size=1, max_size=6), st.data())
def test_grub_legacy_round_trip(items, data):
    default = data.draw(st.integers(0, len(items) - 1))
    menu = load_file(MemoryTree({"m.lst": write_legacy(items, default)}), GRUB_LEGACY, "m.lst")
    same_entries(menu, items, with_parents=False)
    assert menu.default == default


# -- command lines and PXE names ----------------------------------------------------------------

@SETTINGS
@given(ARGS.filter(lambda a: not {"--", "---"} & set(a.split())), ARGS,
       st.lists(st.sampled_from(["initrd=/x", "vga=791", "BOOT_IMAGE=/k"]), max_size=3))
def test_boot_args_drop_only_before_the_separator(head, user, firmware):
    from xenpvnetboot.menus.model import Entry

    args = " ".join(firmware + [head, "---", "vga=1 initrd=keep"])
    result = boot_args(Entry(0, "t", "k", args=args), user).split()
    cut = result.index("---")
    assert not any(w.startswith(("initrd=", "vga=", "BOOT_IMAGE=")) for w in result[:cut])
    assert result[cut:cut + 3] == ["---", "vga=1", "initrd=keep"]
    given = user.split()
    if "---" in given:  # one separator: the heads before it, the tails after it
        at = given.index("---")
        assert result[:cut] == head.split() + given[:at]
        assert result[cut + 3:] == given[at + 1:]
        assert result.count("---") == 1 + given[at + 1:].count("---")
        return
    assert result[:cut] == head.split()
    if "--" not in given:
        assert result[len(result) - len(given):] == given


@SETTINGS
@given(st.binary(min_size=6, max_size=6), st.integers(1, 0xDFFFFFFF))
def test_pxe_names_shorten_one_digit_at_a_time(mac_bytes, ip):
    import ipaddress

    mac = ":".join(f"{b:02x}" for b in mac_bytes)
    names = config_names(mac, ipaddress.IPv4Address(ip))
    assert names[0] == "01-" + mac.replace(":", "-") and names[-1] == "default"
    hexes = names[1:-1]
    assert [len(h) for h in hexes] == list(range(8, 0, -1))
    assert all(longer.startswith(shorter) for longer, shorter in zip(hexes, hexes[1:]))
    assert int(hexes[0], 16) == ip and hexes[0] == hexes[0].upper()
