"""What a boot menu says, whatever format it was written in.

Every parser produces the same :class:`Menu`: the entries in one flat list,
numbered the way pygrub numbers them (depth first, in file order, submenu
headers not counted), and the entry an unattended machine would boot.  An
entry that does not boot a Linux kernel (a COM32 module, a local-disk boot,
a chain loader, a switch to another menu file) keeps its number, so that
``--entry=N`` means the same thing as on the machine's own screen, but it is
refused when chosen.

Paths in entries are already relative to the medium root and cleaned (no
``..``); arguments are the menu's own, unfiltered (see :mod:`.choose`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Tuple

from ..errors import BootError

#: Menu formats, as shown to the administrator.
PXELINUX = "PXELINUX"
SYSLINUX = "SYSLINUX"
GRUB2 = "GRUB 2"
GRUB_LEGACY = "GRUB legacy"


class MenuError(BootError):
    """A menu was refused: hostile, too large, binary, or unreadable.

    The message is one line naming the file.  The boot does not stop for it:
    the caller warns and goes on as if the medium had no menu.
    """


class NotBootable(BootError):
    """The entry chosen does not boot a Linux kernel (the message names it)."""


@dataclass(frozen=True)
class Limits:
    """Bounds on the work one menu may cause, whatever its files claim."""

    #: Largest menu file read.
    file_size: int = 1 << 20
    #: Bytes parsed in all (a file included twice counts twice).
    total_size: int = 4 << 20
    #: ``include``/``source``/``configfile`` levels.
    include_depth: int = 16
    #: Submenus and GRUB blocks inside one another.
    nesting: int = 32
    #: Distinct files asked for (missing ones too): each is a request.
    files: int = 128
    #: Entries in one menu.
    entries: int = 4096
    #: Characters GRUB variable substitution may produce in all.
    expansion: int = 16 << 20
    #: GRUB script words in all (a real grub.cfg has a few thousand): bounds
    #: the time spent on a file of one-letter words.
    words: int = 100_000
    #: Longest command line of one entry (Linux takes 2048 to 4096, Xen PV 1024).
    args: int = 4096


LIMITS = Limits()


@dataclass(frozen=True)
class Entry:
    """One numbered menu entry."""

    index: int
    #: As the menu shows it: printable, one line, bounded.
    title: str
    #: Kernel path relative to the medium root; None when there is none.
    kernel: Optional[str] = None
    #: Ramdisks in load order (several are concatenated into one).
    initrds: Tuple[str, ...] = ()
    #: The command line the menu gives, before filtering.
    args: str = ""
    #: False for COM32 modules, local boots, chain loaders, menu switches...
    bootable: bool = True
    #: Why it is not bootable, for the one-line refusal.
    reason: str = ""
    #: The menu file that defines the entry.
    source: str = ""
    #: SYSLINUX label or GRUB ``--id``: another name ``--entry`` accepts.
    label: str = ""
    #: Titles of the submenus that hold it, outermost first.
    parents: Tuple[str, ...] = ()
    #: SYSLINUX ``menu hide``: bootable, but not shown on the machine's menu.
    hidden: bool = False
    #: SYSLINUX ``ipappend``/``sysappend`` bits (2: ``BOOTIF=`` from the MAC).
    sysappend: int = 0
    #: Menu file this entry switches to (SYSLINUX ``config``, GRUB ``configfile``).
    config: Optional[str] = None

    def describe(self) -> str:
        """``entry 3 'Rescue mode'`` for messages."""
        return f"entry {self.index} {self.title!r}"


@dataclass(frozen=True)
class Menu:
    """A parsed menu: its entries, flattened, and the default one."""

    format: str
    #: The file first read (after ``config``/``configfile`` switches: the last one).
    path: str
    entries: Tuple[Entry, ...]
    #: Index of the entry booted unattended; None when there are no entries.
    default: Optional[int]
    #: Every file read, in order.
    files: Tuple[str, ...] = ()
    #: What was skipped and why (missing includes, loops not followed...).
    notes: Tuple[str, ...] = ()

    @property
    def default_entry(self) -> Optional[Entry]:
        return None if self.default is None else self.entries[self.default]

    def describe(self) -> str:
        """``SYSLINUX menu isolinux/isolinux.cfg`` for messages."""
        return f"{self.format} menu {self.path}"
