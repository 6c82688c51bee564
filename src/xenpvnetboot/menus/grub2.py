"""GRUB 2 menus (``grub.cfg``, ``loopback.cfg``), read as data.

What is read: ``menuentry`` and ``submenu`` (title, ``--id``; the other
options are skipped), in their bodies ``linux``/``linuxefi``/``linux16``
and ``initrd``/``initrdefi``/``initrd16`` (several files), ``set`` and
``NAME=VALUE`` assignments with ``$var``/``${var}`` substitution,
``unset``, ``source`` (the file is read in place) and ``configfile`` (the
menu switches to that file; inside an entry, the entry switches when booted,
and a default entry that does so is followed), ``set default=`` (an index,
a title, an ``--id``, or a ``>``-separated path into submenus).  Entries
that boot the Xen hypervisor (``multiboot``/``multiboot2`` of ``xen.gz``
or ``xen-<version>``) boot their first ``module`` as the kernel and the
others as ramdisks, as pygrub does for such entries; other loaders (``chainloader``,
``kfreebsd``, ``fwsetup``, ``exit``...) make the entry not bootable.

What is never run: every other command is skipped.  ``if``/``elif``/
``else`` conditions are not evaluated: every branch is read, in file order,
as if each ran (so ``set linux=linuxefi`` in one branch and ``set
linux=linux`` in the next leave the last value, and entries in every branch
are listed).  ``for``/``while``/``until`` loops and ``function``
definitions are not read at all: what they would do depends on running
them.

Bodies are read as GRUB runs them, when the entry is booted: with the
variables as the whole file left them.  Paths are relative to the medium
root; a ``(device)`` prefix is dropped (the medium is the only device).
"""

from __future__ import annotations

import posixpath
import re
from collections import ChainMap
from dataclasses import dataclass
from typing import Dict, List, MutableMapping, Optional, Sequence, Set, Tuple, Union

from .build import Builder, Draft, Group, is_hypervisor
from .grub2_syntax import Block, Branches, Command, Node, Skipped, Word, parse_script
from .model import GRUB2, Menu, MenuError
from .reader import ForeignPath, OutsidePath, Reader, Switches, resolve

_ASSIGNMENT = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)=(.*)$", re.DOTALL)
_KERNEL = {"linux", "linuxefi", "linux16", "linuxx64"}
_INITRD = {"initrd", "initrdefi", "initrd16"}
_MULTIBOOT = {"multiboot", "multiboot2"}
_MODULE = {"module", "module2"}
#: Commands that load something other than a Linux kernel.
_OTHER_LOADERS = {"chainloader", "kfreebsd", "knetbsd", "kopenbsd", "appleloader",
                  "xnu_kernel", "xnu_kernel64", "ntldr", "freedos", "plan9", "fwsetup",
                  "exit", "halt", "reboot", "efi", "syslinux_configfile", "legacy_configfile"}
#: ``menuentry`` options that take a value.
_VALUED = {"--class", "--users", "--hotkey", "--id", "--source"}

#: Variables; a body's are layered over the file's (a ChainMap), never copied.
Scope = MutableMapping[str, str]


class _Switch(Exception):
    """``configfile`` outside an entry: the menu is that file's."""

    def __init__(self, path: str) -> None:
        super().__init__(path)
        self.path = path


@dataclass
class _Pending:
    """A body read later, with the variables the whole file leaves."""

    block: Block
    target: Union[Draft, Group]
    source: str


class _Eval:
    def __init__(self, reader: Reader, builder: Builder, path: str) -> None:
        self.reader = reader
        self.builder = builder
        self.path = path
        self.expanded = 0
        self.skipped: Dict[str, int] = {}
        #: Entries that boot a Xen hypervisor: their modules are the kernel and ramdisks.
        self.xen: Set[int] = set()

    # -- words ----------------------------------------------------------------------

    def expand(self, words: Sequence[Word], scope: Scope) -> List[str]:
        """Substitute variables; unquoted ones split on blanks, as GRUB does."""
        out: List[str] = []
        for word in words:
            if len(word) == 1 and word[0][1] in ("lit", "qlit"):
                self.expanded += len(word[0][0]) + 1
                out.append(word[0][0])
                continue
            fields: List[str] = []
            current, keep = "", False
            for text, kind in word:
                if kind in ("var", "qvar"):
                    text = scope.get(text, "")
                if kind == "var":
                    pieces = text.split()
                    if not pieces:
                        continue
                    if text[:1].isspace() and (current or keep):
                        fields.append(current)
                        current, keep = "", False
                    current += pieces[0]
                    for piece in pieces[1:]:
                        fields.append(current)
                        current = piece
                    if text[-1:].isspace():
                        fields.append(current)
                        current, keep = "", False
                        continue
                else:
                    current += text
                keep = True
            if current or keep:
                fields.append(current)
            self.expanded += sum(map(len, fields)) + 1
            if self.expanded > self.reader.limits.expansion:
                raise MenuError(f"{self.reader.url(self.path)}: variables expand to more than "
                                f"{self.reader.limits.expansion >> 20} MiB")
            out.extend(fields)
        return out

    def assign(self, words: List[str], scope: Scope) -> bool:
        """``set NAME=VALUE``, ``NAME=VALUE``, ``unset NAME``; True if it was one."""
        if words[0] == "set":
            for word in words[1:]:
                match = _ASSIGNMENT.match(word)
                if match:
                    scope[match.group(1)] = match.group(2)
            return True
        if words[0] == "unset":
            for word in words[1:]:
                scope[word] = ""  # what an unset variable expands to
            return True
        match = _ASSIGNMENT.match(words[0])
        if match and len(words) == 1:
            scope[match.group(1)] = match.group(2)
            return True
        return False

    # -- files ----------------------------------------------------------------------

    def load(self, name: str, source: str) -> Optional[Tuple[str, List[Node]]]:
        """(path, tree) of a ``source``/``configfile`` target; None if missing."""
        try:
            path = resolve(name, "", device_prefix=True)
        except ForeignPath as exc:
            self.reader.note(f"{source}: {exc}; not read")
            return None
        text = self.reader.load(path)
        if text is None:
            self.reader.note(f"{source}: {name} not found; skipped")
            return None
        return path, _script(self.reader, path, text)

    # -- menus (the file, a sourced file, a submenu body) -----------------------------

    def menu(self, nodes: List[Node], scope: Scope, source: str, pending: List[_Pending]) -> None:
        for node in nodes:
            if isinstance(node, Branches):
                for branch in node.lists:
                    self.menu(branch, scope, source, pending)
            elif isinstance(node, Skipped):
                self.skipped[node.kind] = self.skipped.get(node.kind, 0) + 1
            elif isinstance(node, Block):
                self.define(node, scope, source, pending)
            else:
                self.menu_command(node, scope, source, pending)

    def menu_command(self, node: Command, scope: Scope, source: str,
                     pending: List[_Pending]) -> None:
        words = self.expand(node.words, scope)
        if not words or self.assign(words, scope):
            return
        name = words[0]
        if name in ("source", ".", "extract_entries_source") and len(words) > 1:
            loaded = self.load(words[1], source)
            if loaded is not None:
                with self.reader.including(loaded[0]):
                    self.menu(loaded[1], scope, loaded[0], pending)
        elif name in ("configfile", "extract_entries_configfile") and len(words) > 1:
            try:
                target = resolve(words[1], "", device_prefix=True)
            except ForeignPath as exc:
                self.reader.note(f"{source}: {exc}; not read")
                return
            if self.reader.load(target) is None:
                self.reader.note(f"{source}: configfile {words[1]} not found; skipped")
                return
            raise _Switch(target)

    def define(self, block: Block, scope: Scope, source: str, pending: List[_Pending]) -> None:
        title, ident = self.title(self.expand(block.words, scope))
        if block.kind == "submenu":
            group = self.builder.open(title, ident)
            self.builder.close()
            pending.append(_Pending(block, group, source))
        else:
            draft = self.builder.add(Draft(title=title, source=source, label=ident))
            pending.append(_Pending(block, draft, source))

    @staticmethod
    def title(args: List[str]) -> Tuple[str, str]:
        """(title, --id) of ``menuentry``/``submenu`` arguments."""
        title: Optional[str] = None
        ident, skip, options = "", False, True
        for index, arg in enumerate(args):
            if skip:
                skip = False
                continue
            option, equals, value = arg.partition("=")
            if arg == "--" and options:
                options = False
                continue
            if arg.startswith("--") and options:
                if option == "--id":
                    ident = value if equals else (args[index + 1] if index + 1 < len(args) else "")
                skip = option in _VALUED and not equals
                continue
            if title is None:
                title = arg
        return title or "", ident

    def settle(self, pending: List[_Pending], scope: Scope) -> None:
        """Read the bodies defined in one menu, with the variables it left."""
        for item in pending:
            if isinstance(item.target, Group):
                inner: ChainMap = ChainMap({}, scope)
                outer, self.builder.current = self.builder.current, item.target
                nested: List[_Pending] = []
                try:
                    self.menu(item.block.body, inner, item.source, nested)
                except _Switch as switch:
                    self.builder.add(Draft(title=item.target.title, source=item.source,
                                           config=switch.path))
                finally:
                    self.builder.current = outer
                item.target.default_spec = inner.maps[0].get("default", "")
                self.settle(nested, inner)
            else:
                self.entry(item.block.body, ChainMap({}, scope), item.target, item.source)

    # -- entries ----------------------------------------------------------------------

    def entry(self, nodes: List[Node], scope: Scope, draft: Draft, source: str) -> None:
        for node in nodes:
            if isinstance(node, Branches):
                for branch in node.lists:
                    self.entry(branch, scope, draft, source)
            elif isinstance(node, Command):
                self.entry_command(self.expand(node.words, scope), scope, draft, source)

    def entry_command(self, words: List[str], scope: Scope, draft: Draft, source: str) -> None:
        if not words or self.assign(words, scope):
            return
        name, args = words[0], words[1:]
        try:
            if name in _KERNEL and args:
                draft.kernel = resolve(args[0], "", device_prefix=True)
                draft.args = _join(args[1:])
            elif name in _INITRD:
                draft.initrds = [resolve(a, "", device_prefix=True) for a in args
                                 if not a.startswith("--")]
            elif name in _MULTIBOOT and args:
                if is_hypervisor(args[0]):
                    draft.kernel, draft.initrds, draft.args = None, [], ""
                    self.xen.add(id(draft))
                else:
                    draft.refuse(f"boots the multiboot image {args[0]}")
            elif name in _MODULE and id(draft) in self.xen:
                files = [a for a in args if not a.startswith("--")]
                if files and draft.kernel is None:
                    draft.kernel = resolve(files[0], "", device_prefix=True)
                    draft.args = _join(files[1:])
                elif files:
                    draft.initrds.append(resolve(files[0], "", device_prefix=True))
            elif name in _OTHER_LOADERS:
                draft.refuse(f"runs {name}")
            elif name in ("configfile", "extract_entries_configfile") and args:
                draft.config = resolve(args[0], "", device_prefix=True)
            elif name in ("source", ".") and args:
                loaded = self.load(args[0], source)
                if loaded is not None:
                    with self.reader.including(loaded[0]):
                        self.entry(loaded[1], scope, draft, loaded[0])
        except (ForeignPath, OutsidePath) as exc:
            draft.kernel = None
            draft.refuse(str(exc))


def _join(args: Sequence[str]) -> str:
    """Arguments back into a command line, quoting those with blanks as GRUB does."""
    out = []
    for arg in args:
        if any(ch.isspace() for ch in arg):
            key, equals, value = arg.partition("=")
            arg = f'{key}="{value}"' if equals and not any(c.isspace() for c in key) else f'"{arg}"'
        out.append(arg)
    return " ".join(out)


def _script(reader: Reader, path: str, text: str) -> List[Node]:
    """The syntax tree of one file, its tokens counted against the menu's words bound."""
    left = reader.limits.words - reader.words
    nodes, notes, used = parse_script(text, reader.url(path), reader.limits.nesting, left)
    reader.words += used
    for note in notes:
        reader.note(note)
    return nodes


def _named(item: Union[Draft, Group], name: str) -> bool:
    return item.title == name or bool(item.label) and item.label == name


def pick_default(group: Group, spec: str) -> Optional[Draft]:
    """The entry ``set default=`` names: index, title or id, ``>`` into submenus.

    Indexes count the items of one level, submenus included, as GRUB counts
    them; a name that matches nothing gives GRUB's fallback, the first entry.
    """
    node = group
    for part in (p.strip() for p in spec.split(">")) if spec.strip() else ():
        if part.isdigit():
            index = int(part)
            chosen = node.items[index] if index < len(node.items) else None
        else:
            chosen = next((item for item in node.items if _named(item, part)), None)
        if chosen is None:
            return group.first()
        if isinstance(chosen, Draft):
            return chosen
        node = chosen
    if node is not group:
        return pick_default(node, node.default_spec) if node.default_spec else node.first()
    return group.first()


def parse(reader: Reader, path: str) -> Optional[Menu]:
    """The menu of the GRUB 2 script *path*; None if the file is missing."""
    switches = Switches(reader, "configfile")
    scope: Scope = {"prefix": "/" + posixpath.dirname(path), "root": ""}
    while True:
        text = switches.load(path)
        if text is None:
            return None
        nodes = _script(reader, path, text)
        builder = Builder(reader.limits, reader.url(path))
        evaluator = _Eval(reader, builder, path)
        pending: List[_Pending] = []
        try:
            with reader.including(path):
                evaluator.menu(nodes, scope, path, pending)
                evaluator.settle(pending, scope)
        except _Switch as switch:
            path = switch.path
            continue
        for kind, count in sorted(evaluator.skipped.items()):
            reader.note(f"{path}: {count} '{kind}' block(s) not read (GRUB script is not run)")
        default = pick_default(builder.root, scope.get("default", ""))
        if default is not None and default.kernel is None and default.config:
            path = default.config
            continue
        return builder.finish(GRUB2, path, reader, default)


__all__ = ["parse", "pick_default"]
