"""SYSLINUX, ISOLINUX, EXTLINUX and PXELINUX configuration files, read as data.

The subset that decides what boots is read; the rest (colours, help
screens, passwords, serial settings) is skipped:

* ``label``, ``menu label``, ``kernel``/``linux`` and the other kernel-like
  directives (``com32``, ``boot``, ``bss``, ``pxe``, ``fdimage``,
  ``comboot``, ``localboot``, ``config``), ``append`` (global and per label,
  ``append -``), ``initrd`` and ``initrd=`` in ``append`` (comma-separated
  lists; as in SYSLINUX only the last one counts, the ``initrd`` keyword
  coming after ``append``), ``ipappend``/``sysappend``;
* ``default`` and ``ontimeout`` (each later one overrides the earlier),
  ``menu default``, ``menu start``, ``menu begin``/``menu end``, ``menu
  hide``, ``menu exit``/``goto``/``quit``/``disable`` (items that only move
  around the menu: not numbered), ``text help``...``endtext`` (skipped);
* ``include`` and ``menu include`` (a tag makes the file a submenu; a
  missing file is skipped, as SYSLINUX does), ``config`` (switches files;
  ``config`` inside a label is followed when that label is the default);
* ``path`` is accepted and ignored: it only tells SYSLINUX where its COM32
  modules are, and no module is ever loaded here.

``kernel`` guesses the type from the extension as SYSLINUX does: ``.c32``
is a COM32 module (``vesamenu.c32`` is a menu, not a kernel), ``.0`` a PXE
program, ``.bin``/``.bs``/``.bss`` boot sectors, ``.com``/``.cbt``
COMBOOT, ``.img`` a disk image, ``memdisk`` a disk emulator; those entries
are numbered but not bootable.

Relative paths are relative to the working directory: the directory of the
first file (the medium root for PXELINUX, whose working directory is that of
``pxelinux.0``), or the directory a ``config`` names.  The default entry is
the label the last ``default`` names, else the label ``ontimeout`` names,
else the start menu's ``menu default``, else that menu's first entry.
"""

from __future__ import annotations

import posixpath
from dataclasses import dataclass
from typing import Dict, List, Optional, Set, Tuple

from .build import Builder, Draft, Group
from .model import SYSLINUX, Menu
from .reader import ForeignPath, OutsidePath, Reader, Switches, resolve

#: Kernel-like directives other than ``kernel``/``linux`` -> why they boot no kernel.
_OTHER_KINDS = {
    "com32": "runs a COM32 module",
    "comboot": "runs a COMBOOT program",
    "boot": "loads a boot sector",
    "bss": "loads a boot sector",
    "pxe": "chains to another PXE program",
    "fdimage": "boots a floppy image",
    "localboot": "boots from the local disk",
}
#: Extensions ``kernel`` recognises, as SYSLINUX does -> the directive meant.
_EXTENSIONS = {".c32": "com32", ".com": "comboot", ".cbt": "comboot", ".bin": "boot",
               ".bs": "boot", ".bss": "bss", ".0": "pxe", ".img": "fdimage"}
_KERNEL_LIKE = set(_OTHER_KINDS) | {"kernel", "linux", "config"}
_NAVIGATION = {"exit", "goto", "quit", "disable"}


@dataclass
class _Label:
    """What a label's directives said, resolved once the whole menu is read."""

    draft: Draft
    base: str
    kind: Optional[str] = None
    image: str = ""
    append: Optional[str] = None
    initrd: Optional[str] = None
    sysappend: Optional[int] = None


class _Switch(Exception):
    """``config``: parsing starts again with another file."""

    def __init__(self, path: str, base: str) -> None:
        super().__init__(path)
        self.path = path
        self.base = base


def _number(text: str) -> int:
    """A SYSLINUX number: decimal, ``0x`` hex or ``0`` octal; 0 if unreadable."""
    word = text.split()[0] if text.split() else "0"
    try:
        return int(word, 0) if not (word.startswith("0") and word[1:].isdigit()) else int(word, 8)
    except ValueError:
        return 0


def _hotkey_free(text: str) -> str:
    """``E^xpert install`` -> ``Expert install`` (``^`` marks the hotkey)."""
    return text.replace("^", "")


class _Parse:
    """One pass over a configuration and the files it includes."""

    def __init__(self, reader: Reader, path: str, base: str, fmt: str) -> None:
        self.reader = reader
        self.path = path
        self.base = base
        self.fmt = fmt
        self.builder = Builder(reader.limits, reader.url(path))
        self.labels: List[_Label] = []
        self.by_name: Dict[str, Draft] = {}
        self.current: Optional[_Label] = None
        self.default_cmd = ""
        self.ontimeout_cmd = ""
        self.start: Optional[Group] = None
        self.append = ""
        self.sysappend = 0
        self.in_text = False
        #: Submenus whose title came from ``menu label`` (it beats ``menu title``).
        self.labelled: Set[int] = set()

    # -- files -------------------------------------------------------------------

    def file(self, path: str, text: str) -> None:
        with self.reader.including(path):
            for line in text.splitlines():
                self.line(path, line.strip())
        self.in_text = False

    def include(self, source: str, rest: str) -> None:
        words = rest.split()
        if not words:
            return
        try:
            path = resolve(words[0], self.base)
        except ForeignPath as exc:
            self.reader.note(f"{source}: include {exc}; skipped")
            return
        text = self.reader.load(path)
        if text is None:
            self.reader.note(f"{source}: include {words[0]} not found; skipped")
            return
        tag = " ".join(words[1:])
        if tag:
            self.submenu(tag)
        self.file(path, text)
        if tag:
            self.end_submenu(source)

    # -- lines -------------------------------------------------------------------

    def line(self, source: str, line: str) -> None:
        words = line.split(None, 1)
        keyword = words[0].lower() if words else ""
        rest = words[1].strip() if len(words) > 1 else ""
        if self.in_text:
            self.in_text = keyword != "endtext"
            return
        if not keyword or keyword.startswith("#"):
            return
        if keyword == "menu":
            sub = rest.split(None, 1)
            self.menu(source, sub[0].lower() if sub else "", sub[1].strip() if len(sub) > 1 else "")
        elif keyword == "label":
            self.label(source, rest.split()[0] if rest.split() else "")
        elif keyword == "include":
            self.include(source, rest)
        elif keyword == "text":
            self.in_text = rest.lower().startswith("help")
        elif keyword in _KERNEL_LIKE:
            self.kernel_like(keyword, rest)
        elif keyword in ("append", "initrd", "ipappend", "sysappend"):
            self.label_setting(keyword, rest)
        elif keyword == "default":
            self.default_cmd = rest
        elif keyword == "ontimeout":
            self.ontimeout_cmd = rest

    def label(self, source: str, name: str) -> None:
        draft = self.builder.add(Draft(title=name, source=source, label=name))
        self.current = _Label(draft, self.base)
        self.labels.append(self.current)
        self.by_name.setdefault(name, draft)

    def kernel_like(self, keyword: str, rest: str) -> None:
        if self.current is None:
            words = rest.split()
            if keyword == "config" and words:
                try:
                    base = resolve(words[1], self.base) if len(words) > 1 else self.base
                    target = resolve(words[0], self.base)
                except ForeignPath as exc:
                    self.reader.note(f"config {exc}; ignored")
                    return
                raise _Switch(target, base)
            return
        self.current.kind, self.current.image = keyword, rest

    def label_setting(self, keyword: str, rest: str) -> None:
        label = self.current
        if keyword == "append":
            if label is None:
                self.append = rest
            else:
                label.append = rest
        elif keyword == "initrd":
            if label is not None:
                label.initrd = rest
        elif label is None:
            self.sysappend = _number(rest)
        else:
            label.sysappend = _number(rest)

    def menu(self, source: str, sub: str, value: str) -> None:
        draft = self.current.draft if self.current is not None else None
        group = self.builder.current
        if sub == "label":
            if draft is not None:
                draft.title = _hotkey_free(value)
            elif group.parent is not None:
                group.title = _hotkey_free(value)
                self.labelled.add(id(group))
        elif sub == "title":
            if draft is None and group.parent is not None and id(group) not in self.labelled:
                group.title = _hotkey_free(value)
        elif sub == "default" and draft is not None:
            group.marked = draft
        elif sub == "hide" and draft is not None:
            draft.hidden = True
        elif sub in _NAVIGATION and draft is not None:
            draft.numbered = False
        elif sub == "begin":
            self.submenu(value)
        elif sub == "end":
            self.end_submenu(source)
        elif sub == "start":
            self.start = group
        elif sub == "include":
            self.include(source, value)

    def submenu(self, tag: str) -> None:
        self.current = None
        self.builder.open(tag, "")

    def end_submenu(self, source: str) -> None:
        self.current = None
        if not self.builder.close():
            self.reader.note(f"{source}: 'menu end' outside a submenu; ignored")

    # -- the end ------------------------------------------------------------------

    def finish(self) -> Tuple[Optional[Draft], Optional[_Switch]]:
        """Fill the entries in; the default, and the switch it asks for if any."""
        switches: Dict[int, _Switch] = {}
        for label in self.labels:
            try:
                switch = self.settle(label)
            except (ForeignPath, OutsidePath) as exc:
                label.draft.kernel, label.draft.config = None, None
                label.draft.refuse(str(exc))
                continue
            if switch is not None:
                switches[id(label.draft)] = switch
        default = self.default()
        return default, (switches.get(id(default)) if default is not None else None)

    def settle(self, label: _Label) -> Optional[_Switch]:
        """Resolve one label's directives into its draft (see module doc)."""
        draft = label.draft
        words = label.image.split()
        kind = label.kind
        if kind == "kernel" and words:
            ext = posixpath.splitext(words[0])[1].lower()
            kind = _EXTENSIONS.get(ext, "memdisk" if posixpath.basename(words[0]) == "memdisk"
                                   else "linux")
        if kind is None or (not words and kind != "localboot"):
            draft.refuse("names no kernel")
        elif kind == "config":
            draft.config = resolve(words[0], label.base)
            base = label.base
            if label.append and label.append.split() and label.append.strip() != "-":
                base = resolve(label.append.split()[0], label.base)
            return _Switch(draft.config, base)
        elif kind in _OTHER_KINDS:
            draft.refuse(_OTHER_KINDS[kind] + (f" {words[0]}" if words else ""))
        elif kind == "memdisk":
            draft.refuse("runs memdisk, which boots disk images")
        else:
            append = self.append if label.append is None else label.append
            if len(append) + len(label.image) > self.reader.limits.args:
                draft.refuse(f"command line longer than {self.reader.limits.args} characters")
                return None
            draft.args = " ".join(words[1:] + ["" if append.strip() == "-" else append]).strip()
            draft.sysappend = self.sysappend if label.sysappend is None else label.sysappend
            draft.kernel = resolve(words[0], label.base)
            draft.initrds = self.initrds(draft.args, label)
        return None

    @staticmethod
    def initrds(args: str, label: _Label) -> List[str]:
        """The files of the last ``initrd=`` (the keyword counts as the last one)."""
        value: Optional[str] = None
        for word in args.split():
            if word.startswith("initrd="):
                value = word[len("initrd="):]
        if label.initrd is not None and label.initrd.split():
            value = label.initrd.split()[0]
        if not value:
            return []
        return [resolve(name, label.base) for name in value.split(",") if name]

    def default(self) -> Optional[Draft]:
        for command in (self.default_cmd, self.ontimeout_cmd):
            words = command.split()
            draft = self.find_label(words[0]) if words else None
            if draft is not None:
                return draft
        start = self.start or self.builder.root
        if start.marked is not None and start.marked.numbered:
            return start.marked
        own = start.own_drafts()
        return own[0] if own else start.first()

    def find_label(self, name: str) -> Optional[Draft]:
        draft = self.by_name.get(name)
        if draft is None:
            folded = name.lower()
            draft = next((d for key, d in self.by_name.items() if key.lower() == folded), None)
        return draft if draft is not None and draft.numbered else None


def parse(reader: Reader, path: str, base: Optional[str] = None,
          fmt: str = SYSLINUX) -> Optional[Menu]:
    """The menu of the configuration *path*; None if the file is missing.

    *base* is the working directory (default: the directory of *path*).
    ``config`` switches, and a default label that is one, are followed
    within the include bounds; a loop among them refuses the menu.
    """
    base = posixpath.dirname(path) if base is None else base
    switches = Switches(reader, "config")
    while True:
        text = switches.load(path, (path, base))
        if text is None:
            return None
        state = _Parse(reader, path, base, fmt)
        try:
            state.file(path, text)
        except _Switch as switch:
            path, base = switch.path, switch.base
            continue
        default, switch = state.finish()
        if switch is not None:
            path, base = switch.path, switch.base
            continue
        return state.builder.finish(fmt, path, reader, default)


__all__ = ["parse"]
