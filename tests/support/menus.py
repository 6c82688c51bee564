"""Helpers of the menu tests: an in-memory tree, and writers of menus in each format.

The writers turn one abstract menu (entries and submenus) into SYSLINUX,
GRUB 2 and GRUB legacy text, so the property tests can check that parsing
what was written gives the same entries back.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple, Union

from xenpvnetboot.errors import NotFound
from xenpvnetboot.transports import FileInfo, Sink, Tree


class MemoryTree(Tree):
    """Files held in a dict; read through the real :class:`Sink` bounds.

    ``reads`` counts the fetches, so tests can check that work is bounded.
    """

    def __init__(self, files: Dict[str, Union[str, bytes]], name: str = "mem:/") -> None:
        self.files = {path: data.encode() if isinstance(data, str) else data
                      for path, data in files.items()}
        self.name = name
        self.reads: List[str] = []

    def url(self, path: str) -> str:
        return self.name + path

    def stat(self, path: str) -> FileInfo:
        if path not in self.files:
            raise NotFound(f"{self.url(path)}: no such file")
        return FileInfo(size=len(self.files[path]))

    def fetch(self, path: str, sink: Sink) -> None:
        self.reads.append(path)
        self.stat(path)
        data = self.files[path]
        sink.expect(len(data))
        sink.write(data)
        sink.check_complete()


@dataclass
class Item:
    """An entry of an abstract menu."""

    title: str
    kernel: str
    initrds: Tuple[str, ...] = ()
    args: str = ""


@dataclass
class Sub:
    """A submenu of an abstract menu."""

    title: str
    items: List[Union[Item, "Sub"]] = field(default_factory=list)


Tree_ = List[Union[Item, Sub]]


def flatten(items: Sequence[Union[Item, Sub]], parents: Tuple[str, ...] = ()) -> List[Tuple[Item, Tuple[str, ...]]]:
    """The entries depth first, with the titles of the submenus that hold them."""
    out: List[Tuple[Item, Tuple[str, ...]]] = []
    for item in items:
        if isinstance(item, Sub):
            out.extend(flatten(item.items, parents + (item.title,)))
        else:
            out.append((item, parents))
    return out


def write_syslinux(items: Sequence[Union[Item, Sub]], default: Optional[int] = None) -> str:
    lines = ["ui vesamenu.c32", "timeout 50"]
    counter = [0]

    def emit(entries: Sequence[Union[Item, Sub]], indent: str) -> None:
        for item in entries:
            if isinstance(item, Sub):
                lines.extend([f"{indent}menu begin", f"{indent}  menu label {item.title}"])
                emit(item.items, indent + "  ")
                lines.append(f"{indent}menu end")
                continue
            number = counter[0]
            counter[0] += 1
            lines.append(f"{indent}label l{number}")
            lines.append(f"{indent}  menu label {item.title}")
            lines.append(f"{indent}  kernel /{item.kernel}")
            initrd = f"initrd={','.join('/' + i for i in item.initrds)} " if item.initrds else ""
            lines.append(f"{indent}  append {initrd}{item.args}".rstrip())
    emit(items, "")
    if default is not None:
        lines.append(f"default l{default}")
    return "\n".join(lines) + "\n"


def _grub_quote(text: str) -> str:
    return "'" + text.replace("'", "'\\''") + "'"


def write_grub2(items: Sequence[Union[Item, Sub]], default: Optional[str] = None) -> str:
    lines = ["set timeout=5"]
    if default is not None:
        lines.append(f"set default={_grub_quote(default)}")

    def emit(entries: Sequence[Union[Item, Sub]], indent: str) -> None:
        for item in entries:
            if isinstance(item, Sub):
                lines.append(f"{indent}submenu {_grub_quote(item.title)} {{")
                emit(item.items, indent + "    ")
                lines.append(f"{indent}}}")
                continue
            lines.append(f"{indent}menuentry {_grub_quote(item.title)} --class os {{")
            lines.append(f"{indent}    linux /{item.kernel} {item.args}".rstrip())
            if item.initrds:
                lines.append(f"{indent}    initrd " + " ".join("/" + i for i in item.initrds))
            lines.append(f"{indent}}}")
    emit(items, "")
    return "\n".join(lines) + "\n"


def write_legacy(items: Sequence[Item], default: Optional[int] = None) -> str:
    lines = ["timeout 5"] + ([f"default {default}"] if default is not None else [])
    for item in items:
        lines.append(f"title {item.title}")
        lines.append("\troot (hd0,0)")
        lines.append(f"\tkernel /{item.kernel} {item.args}".rstrip())
        if item.initrds:
            lines.append(f"\tinitrd /{item.initrds[0]}")
    return "\n".join(lines) + "\n"
