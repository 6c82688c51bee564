"""Boot menus carried by trees, images and PXE servers, read as data.

A medium's own menu knows the command line its kernel needs (``boot=casper``,
``archisobasedir=``, ``modules=``...) and which entry is the default.  This
package reads it without running any of it:

* :mod:`.find` decides which menu of a medium counts and reads it;
* :mod:`.syslinux`, :mod:`.grub2` (with :mod:`.grub2_syntax`) and
  :mod:`.grub_legacy` parse the formats into the common :mod:`.model`;
* :mod:`.reader` bounds every read (file size, total, include depth, number
  of files) and resolves paths, refusing any that leave the medium;
* :mod:`.choose` picks the entry (``--entry``), builds its command line and
  lists the entries (``--list-entries``);
* :mod:`.select` is the decision the boot asks for, with its fallbacks;
* :mod:`.pxe` is PXELINUX's per-machine lookup (``--mac``, ``--ip``);
* :mod:`.livenet` adds what a live system needs to fetch the rest of itself
  over the network.

A menu that cannot be trusted raises :class:`MenuError` (one line); the boot
then goes on as without a menu.
"""

from __future__ import annotations

from .choose import (Choice, boot_args, choose, entry_for_kernel, find_entry, join_args, listing,
                     menu_args)
from .find import load_file, load_menu
from .livenet import live_network_args
from .model import LIMITS, Entry, Limits, Menu, MenuError, NotBootable
from .pxe import config_paths, parse_ipv4, parse_mac
from .select import MenuBoot, Outcome, from_medium

__all__ = [
    "Choice",
    "Entry",
    "LIMITS",
    "Limits",
    "Menu",
    "MenuBoot",
    "MenuError",
    "NotBootable",
    "Outcome",
    "boot_args",
    "choose",
    "config_paths",
    "entry_for_kernel",
    "find_entry",
    "from_medium",
    "join_args",
    "listing",
    "live_network_args",
    "load_file",
    "load_menu",
    "menu_args",
    "parse_ipv4",
    "parse_mac",
]
