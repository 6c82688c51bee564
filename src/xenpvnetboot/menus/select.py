"""The one decision the boot asks of a medium's menu, with its fallbacks.

:func:`from_medium` reads the menu that counts and answers with the entry to
boot (kernel, ramdisks, arguments) or with nothing, plus the warnings to
show.  Its rules:

* no menu, or a menu refused as hostile or unreadable: nothing (the refusal
  is a warning), and the boot goes on as with ``--no-menu-args``;
* a kernel named by the user: the entry that boots that kernel, if any,
  lends its arguments;
* otherwise the default entry, or the one ``--entry`` names; an
  ``--entry`` that matches nothing keeps the default, with a warning;
* an entry the user named that cannot be booted is an error
  (:class:`NotBootable`); a default entry that cannot be (a PXE server
  whose default is "boot from the local disk") is a warning and nothing.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Optional, Sequence, Tuple

from ..layouts.arch import X86_64
from ..transports import Tree
from .choose import choose, entry_for_kernel, find_entry, join_args, menu_args
from .find import load_menu
from .model import LIMITS, Entry, Limits, Menu, MenuError, NotBootable
from .pxe import config_paths


@dataclass(frozen=True)
class MenuBoot:
    """What the menu says to boot."""

    menu: Menu
    entry: Entry
    #: "the default", "--entry=3", or "it boots --kernel".
    how: str
    #: The entry's arguments, filtered (see :func:`.choose.menu_args`).
    args: str

    @property
    def kernel(self) -> Optional[str]:
        return self.entry.kernel

    @property
    def initrds(self) -> Tuple[str, ...]:
        return self.entry.initrds

    @property
    def reason(self) -> str:
        """``GRUB 2 menu boot/grub/grub.cfg, entry 0 'Install' (the default)``."""
        return f"{self.menu.describe()}, {self.entry.describe()} ({self.how})"

    def command_line(self, user_args: str) -> str:
        """The menu's arguments with the user's (libxl's ``extra``) after them."""
        return join_args(self.args, user_args)


@dataclass(frozen=True)
class Outcome:
    """The answer of :func:`from_medium`."""

    boot: Optional[MenuBoot] = None
    #: The menu read, even when none of its entries is used.
    menu: Optional[Menu] = None
    #: One line each, for the console.
    warnings: Tuple[str, ...] = ()


def from_medium(tree: Tree, wanted: Optional[str] = None, kernel: Optional[str] = None,
                pxe: bool = False, mac: Optional[str] = None,
                ip: Optional[ipaddress.IPv4Address] = None,
                arches: Sequence[str] = (X86_64,), limits: Limits = LIMITS) -> Outcome:
    """What *tree*'s own menu says to boot (see module doc).

    *wanted* is ``--entry``; *kernel* the ``--kernel`` path inside *tree*;
    *pxe* is true for a PXE server (``pxelinux.cfg/`` is looked up there,
    in PXELINUX's order for *mac* and *ip*).
    """
    try:
        menu = load_menu(tree, config_paths(mac, ip) if pxe else (), arches, limits)
    except MenuError as exc:
        return Outcome(warnings=(f"{exc}; booting without the menu's arguments",))
    if menu is None:
        return Outcome(warnings=(f"--entry={wanted!r}: {tree.url('')} has no boot menu",)
                       if wanted else ())
    if kernel is not None:
        entry = entry_for_kernel(menu, kernel)
        if entry is None:
            return Outcome(menu=menu)
        return Outcome(MenuBoot(menu, entry, "it boots --kernel", menu_args(entry, mac)), menu)
    try:
        choice = choose(menu, wanted)
    except MenuError as exc:
        return Outcome(menu=menu, warnings=(f"{exc}; booting without the menu's arguments",))
    except NotBootable as exc:
        if wanted is not None and find_entry(menu, wanted) is not None:
            raise
        return Outcome(menu=menu, warnings=(f"{exc}; booting without the menu's arguments",))
    how = "the default" if choice.how == "default entry" else choice.how
    warnings = (choice.warning,) if choice.warning else ()
    return Outcome(MenuBoot(menu, choice.entry, how, menu_args(choice.entry, mac)), menu, warnings)
