"""Reading menu files from a tree, within fixed bounds, and resolving their paths.

Menus come from whoever serves the medium, so every read is bounded: the
size of one file, the bytes parsed in all (a file included a thousand times
counts a thousand times, which also bounds the work of include chains), the
number of files asked for, and the include depth.  A menu that crosses a
bound is refused with :class:`MenuError`; the caller then boots as if there
were no menu.  Nothing read here is ever executed.
"""

from __future__ import annotations

import contextlib
import posixpath
import re
from typing import Dict, Hashable, Iterator, List, Optional, Set

from ..errors import BootError, Interrupted, NotFound
from ..layouts.text import looks_like_html
from ..transports import Tree
from ..transports.base import clean_path
from .model import LIMITS, Limits, MenuError

#: Control bytes that real menu files never hold (tab, newlines, form feed,
#: DOS end-of-file and escape are allowed).
_CONTROL = re.compile(rb"[\x00-\x08\x0e-\x19\x1c-\x1f\x7f]")
_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")


def decode(data: bytes, name: str) -> str:
    """Menu text from bytes; binary data is refused rather than parsed."""
    if b"\0" in data or len(_CONTROL.findall(data)) * 32 > len(data):
        raise MenuError(f"{name}: binary data, not a menu")
    return data.decode("utf-8", "replace")


class ForeignPath(Exception):
    """A path that names a file on another server (a URL, ``host::file``)."""


class OutsidePath(MenuError):
    """A path that climbs out of the medium, or names no file."""


def resolve(path: str, base: str = "", device_prefix: bool = False) -> str:
    """*path* as written in a menu -> a path relative to the medium root.

    Absolute paths name files from the medium root, relative ones from
    *base*.  GRUB's ``(device)`` prefix is dropped when *device_prefix* is
    set (the medium is the only device there is), except a network device
    naming another server.  A path that climbs out of the medium raises
    :class:`OutsidePath`; one on another server raises :class:`ForeignPath`.
    """
    text = path.strip()
    if device_prefix and text.startswith("("):
        device, close, rest = text[1:].partition(")")
        if not close:
            raise OutsidePath(f"path {path!r}: unterminated device name")
        kind, _, host = device.partition(",")
        if kind in ("http", "https", "tftp", "pxe") and host:
            raise ForeignPath(f"{path} is on another server")
        text = rest
    elif "::" in text:
        host, _, rest = text.partition("::")
        if host:
            raise ForeignPath(f"{path} is on another server")
        text = "/" + rest
    if _URL.match(text):
        raise ForeignPath(f"{path} is on another server")
    joined = text if text.startswith("/") else posixpath.join("/" + base, text)
    try:
        cleaned = clean_path(joined)
    except BootError:
        raise OutsidePath(f"path {path!r} leaves the medium") from None
    if not cleaned:
        raise OutsidePath(f"path {path!r} names no file")
    return cleaned


class Reader:
    """Bounded, cached reads of the menu files of one tree (see module doc)."""

    def __init__(self, tree: Tree, limits: Limits = LIMITS) -> None:
        self.tree = tree
        self.limits = limits
        self.files: List[str] = []
        self.notes: List[str] = []
        self._cache: Dict[str, Optional[str]] = {}
        self._parsed = 0
        self._stack: List[str] = []
        #: GRUB script words read so far (see :attr:`Limits.words`).
        self.words = 0

    def url(self, path: str) -> str:
        return self.tree.url(path)

    def load(self, path: str) -> Optional[str]:
        """The text of *path*, or None if the tree has no such file.

        Network trouble that retries did not cure, and interruptions, are
        raised as they are; any other failure to read refuses the menu.
        """
        if path not in self._cache:
            if len(self._cache) >= self.limits.files:
                raise MenuError(f"{self.url(path)}: menu reads more than "
                                f"{self.limits.files} files")
            self._cache[path] = self._fetch(path)
        text = self._cache[path]
        if text is not None:
            self._parsed += len(text)
            if self._parsed > self.limits.total_size:
                raise MenuError(f"{self.url(path)}: menu files add up to more than "
                                f"{self.limits.total_size >> 20} MiB")
            if path not in self.files:
                self.files.append(path)
        return text

    def _fetch(self, path: str) -> Optional[str]:
        limit = self.limits.file_size
        try:
            data = self.tree.read_bytes(path, limit)
        except NotFound:
            return None
        except Interrupted:
            raise
        except BootError as exc:  # TransientError too: the menu is optional, the boot goes on
            raise MenuError(self._why_unreadable(path, exc)) from None
        text = decode(data, self.url(path))
        if looks_like_html(text):
            self.note(f"{path}: an HTML page, not a menu; skipped")
            return None
        return text

    def _why_unreadable(self, path: str, exc: BootError) -> str:
        """One line for a failed read: over the size bound, or the tree's reason."""
        try:
            size = self.tree.stat(path).size
        except BootError:
            size = None
        limit = self.limits.file_size
        if size is not None and size > limit or "more than" in str(exc):
            return f"{self.url(path)}: menu file larger than {limit >> 10} KiB"
        return f"{self.url(path)}: cannot read menu file: {exc}"

    @contextlib.contextmanager
    def including(self, path: str) -> Iterator[None]:
        """Bracket the parse of an included file: depth bound and loop check."""
        if path in self._stack:
            raise MenuError(f"{self.url(path)}: include loop ("
                            + " -> ".join(self._stack[self._stack.index(path):] + [path]) + ")")
        if len(self._stack) > self.limits.include_depth:
            raise MenuError(f"{self.url(path)}: includes nested deeper than "
                            f"{self.limits.include_depth}")
        self._stack.append(path)
        try:
            yield
        finally:
            self._stack.pop()

    def note(self, text: str) -> None:
        if len(self.notes) < 64 and text not in self.notes:
            self.notes.append(text)


class Switches:
    """The files one menu switches through (``config``, ``configfile``).

    A switch abandons the current file for another, as if that one had been
    found first; the chain is bounded like includes, and a loop is refused.
    """

    def __init__(self, reader: Reader, keyword: str) -> None:
        self.reader = reader
        self.keyword = keyword
        self._seen: Set[Hashable] = set()

    def load(self, path: str, key: Optional[Hashable] = None) -> Optional[str]:
        """The text of the next file; None only if the very first one is missing.

        *key* tells two visits apart (SYSLINUX: the file and its working
        directory); it defaults to the path.
        """
        key = path if key is None else key
        url = self.reader.url(path)
        if key in self._seen:
            raise MenuError(f"{url}: '{self.keyword}' loop")
        if len(self._seen) > self.reader.limits.include_depth:
            raise MenuError(f"{url}: more than {self.reader.limits.include_depth} "
                            f"'{self.keyword}' switches")
        first = not self._seen
        self._seen.add(key)
        text = self.reader.load(path)
        if text is None and not first:
            raise MenuError(f"{url}: the menu switches to a missing file")
        return text
