"""GRUB legacy menus (``menu.lst``, ``grub.conf``), read as data.

Read: ``title``, ``kernel`` (its ``--type=`` and other options skipped; a
non-Linux ``--type`` makes the entry not bootable), ``initrd``, ``module``
(after a ``kernel`` that is the Xen hypervisor, ``xen.gz`` or
``xen-<version>``, the first module is the guest kernel and the next ones
its ramdisks, as pygrub reads such entries),
``chainloader`` (not bootable), ``configfile`` (the entry switches to that
menu; followed when it is the default) and the global ``default`` (an
index; ``saved`` counts as 0).  Everything else (``root``, ``timeout``,
``color``, ``password``, ``hiddenmenu``...) is skipped.  A keyword may be
followed by blanks or by ``=``.  Paths are relative to the medium root; a
``(hd0,0)`` device prefix is dropped.
"""

from __future__ import annotations

import re
from typing import List, Optional, Set

from .build import Builder, Draft, is_hypervisor
from .model import GRUB_LEGACY, Menu
from .reader import ForeignPath, OutsidePath, Reader, Switches, resolve

_LINE = re.compile(r"^([A-Za-z_][\w$-]*)\s*(?:=\s*|\s+|$)(.*)$")
_NON_LINUX = {"netbsd", "freebsd", "openbsd", "multiboot"}


def _files(words: List[str]) -> List[str]:
    return [word for word in words if not word.startswith("--")]


class _Parse:
    def __init__(self, reader: Reader, path: str) -> None:
        self.reader = reader
        self.path = path
        self.builder = Builder(reader.limits, reader.url(path))
        self.drafts: List[Draft] = []
        self.current: Optional[Draft] = None
        self.xen: Set[int] = set()
        self.default = 0

    def line(self, line: str) -> None:
        match = _LINE.match(line)
        if not match:
            return
        keyword, rest = match.group(1).lower(), match.group(2).strip()
        if keyword == "title":
            self.current = self.builder.add(Draft(title=rest, source=self.path))
            self.drafts.append(self.current)
        elif keyword == "default" and self.current is None:
            self.default = int(rest) if rest.isdigit() and len(rest) < 6 else 0
        elif self.current is not None:
            try:
                self.command(self.current, keyword, rest.split())
            except (ForeignPath, OutsidePath) as exc:
                self.current.kernel = None
                self.current.refuse(str(exc))

    def command(self, draft: Draft, keyword: str, words: List[str]) -> None:
        files = _files(words)
        if keyword == "kernel" and files:
            kind = next((w.split("=", 1)[1] for w in words if w.startswith("--type=")), "")
            if kind.lower() in _NON_LINUX:
                draft.refuse(f"boots a {kind} kernel")
            elif is_hypervisor(files[0]):
                self.xen.add(id(draft))
            else:
                draft.kernel = resolve(files[0], "", device_prefix=True)
                draft.args = " ".join(words[words.index(files[0]) + 1:])
        elif keyword == "initrd" and files:
            draft.initrds = [resolve(files[0], "", device_prefix=True)]
        elif keyword == "module" and files and id(draft) in self.xen:
            if draft.kernel is None:
                draft.kernel = resolve(files[0], "", device_prefix=True)
                draft.args = " ".join(words[words.index(files[0]) + 1:])
            else:
                draft.initrds.append(resolve(files[0], "", device_prefix=True))
        elif keyword == "chainloader":
            draft.refuse("chains to another boot loader")
        elif keyword == "configfile" and files:
            draft.config = resolve(files[0], "", device_prefix=True)


def parse(reader: Reader, path: str) -> Optional[Menu]:
    """The menu of the GRUB legacy file *path*; None if the file is missing."""
    switches = Switches(reader, "configfile")
    while True:
        text = switches.load(path)
        if text is None:
            return None
        state = _Parse(reader, path)
        for line in text.splitlines():
            line = line.strip()
            if line and not line.startswith("#"):
                state.line(line)
        drafts = state.drafts
        default = drafts[state.default] if state.default < len(drafts) else (
            drafts[0] if drafts else None)
        if default is not None and default.kernel is None and default.config:
            path = default.config
            continue
        return state.builder.finish(GRUB_LEGACY, path, reader, default)


__all__ = ["parse"]
