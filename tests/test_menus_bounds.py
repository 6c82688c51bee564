"""Hostile menus: refused with one line naming the file, after bounded work."""

from __future__ import annotations

import pytest

from support.menus import MemoryTree
from xenpvnetboot.errors import BootError, TransientError
from xenpvnetboot.menus import Limits, MenuError, load_menu
from xenpvnetboot.menus.find import load_file
from xenpvnetboot.menus.model import GRUB2, GRUB_LEGACY, SYSLINUX
from xenpvnetboot.menus.reader import decode, resolve
from xenpvnetboot.transports import FileInfo, Sink


def refused(files, fmt=SYSLINUX, path="s.cfg", limits=Limits()):
    tree = MemoryTree(files)
    with pytest.raises(MenuError) as caught:
        load_file(tree, fmt, path, limits)
    message = str(caught.value)
    assert "\n" not in message and message.startswith("mem:/")
    return message, tree


def test_a_file_over_1_mib_is_refused_without_reading_it_whole():
    message, tree = refused({"s.cfg": "include big.cfg\n", "big.cfg": "#" * ((1 << 20) + 1)})
    assert "big.cfg: menu file larger than 1024 KiB" in message
    exactly = {"s.cfg": "label a\n kernel /a\n" + "#" * ((1 << 20) - 20)}
    assert load_file(MemoryTree(exactly), SYSLINUX, "s.cfg").entries[0].title == "a"


def test_more_than_4_mib_in_all_is_refused_even_from_one_cached_file():
    chunk = "# " + "x" * (900 << 10) + "\n"
    message, tree = refused({"s.cfg": "include c.cfg\n" * 6, "c.cfg": chunk})
    assert "add up to more than 4 MiB" in message
    assert tree.reads.count("c.cfg") == 1  # read once, counted each time it is parsed


def test_include_fan_out_is_bounded_by_the_parse_budget():
    # 1000 includes of a file that includes another 1000 times: a million
    # parses if nothing bounded them; the budget stops it after a few.
    fan = "include leaf.cfg\n" * 1000
    message, tree = refused({"s.cfg": "include mid.cfg\n" * 1000, "mid.cfg": fan,
                             "leaf.cfg": "# " + "x" * 4000 + "\n"})
    assert "add up to more than 4 MiB" in message
    assert sorted(set(tree.reads)) == ["leaf.cfg", "mid.cfg", "s.cfg"]


def test_too_many_distinct_files_are_refused():
    files = {"s.cfg": "".join(f"include missing{i}.cfg\n" for i in range(1000))}
    message, tree = refused(files)
    assert "reads more than 128 files" in message
    assert len(tree.reads) == 128


@pytest.mark.parametrize("data", [
    b"label a\n kernel /a\n\0\0\0",
    bytes(range(256)) * 40,
    b"\x7fELF" + b"\x01\x02\x03\x04" * 200,
])
def test_binary_garbage_is_refused(data):
    message, _ = refused({"s.cfg": data})
    assert message == "mem:/s.cfg: binary data, not a menu"


def test_text_with_odd_bytes_is_still_a_menu():
    data = "label café\n kernel /k\n".encode("latin-1") + b"\x1b[0m\n"
    assert load_file(MemoryTree({"s.cfg": data}), SYSLINUX, "s.cfg").entries[0].title == "caf\ufffd"
    assert decode(b"menu color title 1;36;44\r\n", "x") == "menu color title 1;36;44\r\n"


def test_an_html_error_page_counts_as_missing():
    tree = MemoryTree({"boot/grub/grub.cfg": "<html><body>404</body></html>",
                       "isolinux/isolinux.cfg": "label a\n kernel /a\n"})
    menu = load_menu(tree)
    assert menu.format == SYSLINUX
    assert any("an HTML page" in note for note in menu.notes)


def test_grub_deep_source_chain_and_legacy_loops_are_refused():
    chain = {f"{i}.cfg": f"source /{i + 1}.cfg\n" for i in range(30)}
    message, _ = refused(chain, GRUB2, "0.cfg")
    assert "includes nested deeper than 16" in message
    message, _ = refused({"a.cfg": "source /a.cfg\n"}, GRUB2, "a.cfg")
    assert "include loop" in message
    loop = {"a.lst": "title a\nconfigfile /b.lst\n", "b.lst": "title b\nconfigfile /a.lst\n"}
    message, _ = refused(loop, GRUB_LEGACY, "a.lst")
    assert "'configfile' loop" in message


def test_too_many_entries_are_refused():
    text = "label a\n kernel /a\n" * 5000
    message, _ = refused({"s.cfg": text})
    assert "more than 4096 menu entries" in message


def test_path_resolution():
    assert resolve("/casper/vmlinuz", "isolinux") == "casper/vmlinuz"
    assert resolve("vmlinuz", "isolinux") == "isolinux/vmlinuz"
    assert resolve("../boot/./x//y", "isolinux") == "boot/x/y"
    assert resolve("::/boot/k", "isolinux") == "boot/k"
    assert resolve("(hd0,msdos1)/boot/k", device_prefix=True) == "boot/k"
    assert resolve("($root)/k", device_prefix=True) == "k"
    for bad, base in (("../../etc/passwd", "isolinux"), ("/../x", "isolinux"), ("/", "isolinux"),
                      (".", ""), ("(hd0", "")):
        with pytest.raises(MenuError):
            resolve(bad, base, device_prefix=True)


class FlakyTree(MemoryTree):
    """A tree whose every read fails the way a server can fail."""

    def __init__(self, error: BootError) -> None:
        super().__init__({"boot/grub/grub.cfg": "x"})
        self.error = error

    def fetch(self, path: str, sink: Sink) -> None:
        raise self.error

    def stat(self, path: str) -> FileInfo:
        return FileInfo()


def test_read_failures():
    # A refusal (HTTP 403 and the like) refuses the menu, naming the file ...
    with pytest.raises(MenuError, match="grub.cfg: cannot read menu file: forbidden"):
        load_menu(FlakyTree(BootError("forbidden")))
    # ... and so does network trouble that retries did not cure: the menu is
    # optional, and the boot's own downloads report the server's state.
    with pytest.raises(MenuError, match="timed out"):
        load_menu(FlakyTree(TransientError("timed out")))
    assert not issubclass(MenuError, TransientError)


def test_a_huge_global_append_is_not_copied_into_every_label():
    text = "append " + "x" * 900_000 + "\n" + "label a\n kernel /a\n" * 4000
    menu = load_file(MemoryTree({"s.cfg": text}), SYSLINUX, "s.cfg")
    assert len(menu.entries) == 4000
    assert all(e.args == "" and e.reason == "command line longer than 4096 characters"
               for e in menu.entries)


def test_grub_entries_do_not_copy_the_variables_of_the_file():
    # 15000 variables and 3000 entries: copying the variables into each
    # entry would be 45 million items; layering them is 3000 small maps.
    text = "".join(f"set v{i}=x\n" for i in range(15000)) + "menuentry e { linux /k $v7 }\n" * 3000
    menu = load_file(MemoryTree({"g.cfg": text}), GRUB2, "g.cfg")
    assert len(menu.entries) == 3000 and menu.entries[-1].args == "x"


@pytest.mark.parametrize("filler", ["a ", ";", "{ } "])
def test_a_grub_file_of_tiny_words_is_refused_early(filler):
    text = "menuentry a { linux /a }\n" + filler * 250_000
    message, _ = refused({"g.cfg": text}, GRUB2, "g.cfg")
    assert message == "mem:/g.cfg: more words of GRUB script than a menu has"
    spread = {"g.cfg": "".join(f"source /{i}.cfg\n" for i in range(4)),
              **{f"{i}.cfg": "echo " + "a " * 30_000 for i in range(4)}}
    message, _ = refused(spread, GRUB2, "g.cfg")
    assert "3.cfg: more words of GRUB script" in message
