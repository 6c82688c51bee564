"""Assembling a :class:`Menu` while a parser walks its files.

Parsers add entries and open and close submenus in file order; the builder
keeps the tree (GRUB resolves ``set default=`` against it, SYSLINUX looks
for the root menu's ``menu default``), bounds its size and depth, and
numbers the entries at the end, depth first, as pygrub does.
"""

from __future__ import annotations

import posixpath
import re
from dataclasses import dataclass, field
from typing import Iterator, List, Optional, Tuple, Union

from ..layouts.text import printable
from .model import Entry, Limits, Menu, MenuError
from .reader import Reader


#: The Xen hypervisor's file names: ``xen.gz``, ``xen-4.17-amd64.gz``, ``xen.efi``.
_HYPERVISOR = re.compile(r"^xen(\.gz|\.efi|-[0-9][^/]*)$")


def is_hypervisor(path: str) -> bool:
    """True for a Xen hypervisor image (its entry boots the modules after it)."""
    return bool(_HYPERVISOR.match(posixpath.basename(path)))


def clean_args(text: str) -> str:
    """A command line on one line: control characters become spaces."""
    return " ".join("".join(ch if ch.isprintable() else " " for ch in text).split())


@dataclass(eq=False)
class Draft:
    """An entry being read; becomes an :class:`Entry` when the menu is done."""

    title: str
    source: str
    label: str = ""
    kernel: Optional[str] = None
    initrds: List[str] = field(default_factory=list)
    args: str = ""
    #: Why it does not boot a Linux kernel ("" while it may).
    problem: str = ""
    hidden: bool = False
    sysappend: int = 0
    config: Optional[str] = None
    #: False for items that only move around the menu (SYSLINUX ``menu exit``).
    numbered: bool = True

    def refuse(self, why: str) -> None:
        """Mark the entry not bootable; the first reason given is kept."""
        if not self.problem:
            self.problem = why


@dataclass(eq=False)
class Group:
    """A menu or submenu: its title and its items in order."""

    title: str
    label: str = ""
    parent: Optional["Group"] = None
    items: List[Union[Draft, "Group"]] = field(default_factory=list)
    #: The entry marked as this menu's default (SYSLINUX ``menu default``).
    marked: Optional[Draft] = None
    #: GRUB's ``default`` variable as this (sub)menu's body left it.
    default_spec: str = ""

    def depth(self) -> int:
        depth, group = 0, self.parent
        while group is not None:
            depth, group = depth + 1, group.parent
        return depth

    def drafts(self) -> Iterator[Draft]:
        """Numbered entries below this group, depth first."""
        for item in self.items:
            if isinstance(item, Group):
                yield from item.drafts()
            elif item.numbered:
                yield item

    def first(self) -> Optional[Draft]:
        return next(self.drafts(), None)

    def own_drafts(self) -> List[Draft]:
        return [item for item in self.items if isinstance(item, Draft) and item.numbered]


class Builder:
    """The tree of one menu under construction (see module doc)."""

    def __init__(self, limits: Limits, name: str) -> None:
        self.limits = limits
        self.name = name
        self.root = Group("")
        self.current = self.root
        self._count = 0

    def open(self, title: str, label: str = "") -> Group:
        if self.current.depth() + 1 > self.limits.nesting:
            raise MenuError(f"{self.name}: submenus nested deeper than {self.limits.nesting}")
        group = Group(title, label, parent=self.current)
        self.current.items.append(group)
        self.current = group
        return group

    def close(self) -> bool:
        """Leave the current submenu; False if already at the root."""
        if self.current.parent is None:
            return False
        self.current = self.current.parent
        return True

    def add(self, draft: Draft) -> Draft:
        self._count += 1
        if self._count > self.limits.entries:
            raise MenuError(f"{self.name}: more than {self.limits.entries} menu entries")
        self.current.items.append(draft)
        return draft

    def _walk(self, group: Group,
              parents: Tuple[str, ...]) -> Iterator[Tuple[Draft, Tuple[str, ...]]]:
        for item in group.items:
            if isinstance(item, Group):
                yield from self._walk(item, parents + (printable(item.title) or "(submenu)",))
            elif item.numbered:
                yield item, parents

    def finish(self, fmt: str, path: str, reader: Reader, default: Optional[Draft]) -> Menu:
        """Number the entries and freeze them into a :class:`Menu`."""
        entries: List[Entry] = []
        chosen: Optional[int] = None
        for index, (draft, parents) in enumerate(self._walk(self.root, ())):
            if draft is default:
                chosen = index
            if len(draft.args) > self.limits.args:
                draft.args = ""
                draft.refuse(f"command line longer than {self.limits.args} characters")
            entries.append(_entry(index, draft, parents))
        if chosen is None and entries:
            chosen = 0
        return Menu(fmt, path, tuple(entries), chosen, tuple(reader.files), tuple(reader.notes))


def _entry(index: int, draft: Draft, parents: Tuple[str, ...]) -> Entry:
    problem = draft.problem
    if not problem and draft.kernel is None:
        problem = f"loads the menu file {draft.config}" if draft.config else "boots no kernel"
    return Entry(
        index=index,
        title=printable(draft.title) or printable(draft.label) or f"entry {index}",
        kernel=draft.kernel,
        initrds=tuple(draft.initrds),
        args=clean_args(draft.args),
        bootable=not problem,
        reason=problem,
        source=draft.source,
        label=printable(draft.label),
        parents=parents,
        hidden=draft.hidden,
        sysappend=draft.sysappend,
        config=draft.config,
    )
