"""Picking an entry, building its command line, and listing a menu.

``--entry`` means what it means to pygrub: an index in the flattened
numbering (from 0), else an exact title (or SYSLINUX label / GRUB
``--id``), else a title containing the text; as a last resort the same
without regard to case.  One that matches nothing keeps the default entry,
with a warning.  A chosen entry that does not boot a Linux kernel is refused
with one line naming it.

The command line is the menu's, minus what only the firmware's boot loader
reads (``initrd=``, ``BOOT_IMAGE=``, ``vga=``), and only before the first
``---`` or ``--``: what follows a separator belongs to the installer or to
init, and is kept as it is.  The user's arguments (libxl's ``extra``) come
last, so they win; before a ``--`` separator if there is one, since what
follows ``--`` is never seen by the kernel.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, List, Optional

from ..cmdline import join_args
from .model import Entry, Menu, MenuError, NotBootable
from .pxe import bootif

#: Options meant for the firmware's boot loader, not the kernel.
FIRMWARE_ONLY = ("initrd", "BOOT_IMAGE", "vga")
SEPARATORS = ("---", "--")


@dataclass(frozen=True)
class Choice:
    """The entry to boot and how it was chosen (for the console)."""

    entry: Entry
    #: "default entry" or "--entry=..."
    how: str
    #: Set when ``--entry`` matched nothing and the default is used instead.
    warning: str = ""


def find_entry(menu: Menu, wanted: str) -> Optional[Entry]:
    """The entry ``--entry=wanted`` names (see module doc), or None."""
    entries = menu.entries
    wanted = wanted.strip()
    if not wanted:
        return None
    if wanted.isascii() and wanted.isdigit():
        index = int(wanted)
        return entries[index] if index < len(entries) else None
    for test in (
        lambda e: e.title == wanted or (e.label and e.label == wanted),
        lambda e: wanted in e.title,
        lambda e: wanted.lower() in e.title.lower() or wanted.lower() == e.label.lower(),
    ):
        found = next((entry for entry in entries if test(entry)), None)
        if found is not None:
            return found
    return None


def choose(menu: Menu, wanted: Optional[str] = None) -> Choice:
    """The entry to boot: the default, or the one ``--entry=wanted`` names.

    Raises :class:`MenuError` if the menu has no entries and
    :class:`NotBootable` if the entry chosen cannot be booted.
    """
    default = menu.default_entry
    if default is None:
        raise MenuError(f"{menu.describe()}: no entries")
    choice = Choice(default, "default entry")
    if wanted is not None and wanted.strip():
        found = find_entry(menu, wanted)
        if found is None:
            choice = Choice(default, "default entry",
                            f"--entry={wanted!r} matches no entry of {menu.describe()}; "
                            f"booting the default, {default.describe()}")
        else:
            choice = Choice(found, f"--entry={wanted}")
    entry = choice.entry
    if not entry.bootable:
        raise NotBootable(f"{menu.describe()}: {entry.describe()} cannot be booted "
                          f"({entry.reason})")
    return choice


def _name(word: str) -> str:
    return word.split("=", 1)[0]


def menu_args(entry: Entry, mac: Optional[str] = None, drop: Iterable[str] = ()) -> str:
    """The entry's command line without what only the firmware's loader reads.

    *mac* (from ``--mac``) fills in ``BOOTIF=`` for an entry with
    ``ipappend 2``; *drop* names more options to remove before the first
    separator (e.g. a CD-only installer source when booting from a network).
    """
    extra = set(drop)
    words = entry.args.split()
    cut = next((i for i, word in enumerate(words) if word in SEPARATORS), len(words))
    head = [word for word in words[:cut]
            if not (_name(word) in FIRMWARE_ONLY and "=" in word or _name(word) in extra)]
    if entry.sysappend & 2 and mac and not any(_name(w) == "BOOTIF" for w in head):
        head.append(bootif(mac))
    return " ".join(head + words[cut:])


def boot_args(entry: Entry, user_args: str = "", mac: Optional[str] = None,
              drop: Iterable[str] = ()) -> str:
    """The command line to boot *entry* with: :func:`menu_args`, then :func:`join_args`."""
    return join_args(menu_args(entry, mac, drop), user_args)


def entry_for_kernel(menu: Menu, kernel: str) -> Optional[Entry]:
    """The entry that boots *kernel* (a path relative to the medium): the default if it does."""
    path = kernel.strip("/")
    default = menu.default_entry
    if default is not None and default.bootable and default.kernel == path:
        return default
    return next((e for e in menu.entries if e.bootable and e.kernel == path), None)


def listing(menu: Menu) -> List[str]:
    """Lines for ``--list-entries``: the numbered entries, under their submenus."""
    count = len(menu.entries)
    lines = [f"{menu.describe()}: {count} entr{'y' if count == 1 else 'ies'}"
             + (f", default {menu.default}" if menu.default is not None else "")]
    shown: tuple = ()
    for entry in menu.entries:
        common = 0
        while (common < min(len(shown), len(entry.parents))
               and shown[common] == entry.parents[common]):
            common += 1
        for depth in range(common, len(entry.parents)):
            lines.append("  " * (depth + 1) + entry.parents[depth] + " >")
        shown = entry.parents
        indent = "  " * (len(entry.parents) + 1)
        mark = "*" if entry.index == menu.default else " "
        flags = " (hidden)" if entry.hidden else ""
        lines.append(f"{indent}{entry.index:>3}{mark} {entry.title}{flags}")
        if not entry.bootable:
            lines.append(f"{indent}       not bootable: {entry.reason}")
            continue
        files = " + ".join([entry.kernel or ""] + list(entry.initrds))
        lines.append(f"{indent}       {files}")
        args = boot_args(entry)
        if args:
            lines.append(f"{indent}       {args}")
    return lines
