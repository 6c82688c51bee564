"""Paths below the location, symbolic links resolved here and never out of it."""

from __future__ import annotations

from collections import deque
from typing import Deque, List, Optional, Sequence, Tuple

from ...errors import BootError, NotFound
from .client import Connection, Entry


#: Symlinks followed while resolving one path (Linux allows 40 as well).
MAX_SYMLINKS = 40
#: Longest symlink target accepted (PATH_MAX).
MAX_LINK_TARGET = 4096


def resolve(
    connection: Connection,
    start: Tuple[str, ...],
    names: Sequence[str],
    floor: int,
    where: str,
    absolute_ok: bool = False,
) -> Tuple[Tuple[str, ...], Entry]:
    """Walk *names* from *start*, following symlinks; return (path, entry).

    The server never follows a symlink for us (LOOKUP stops at it), so one
    ``stat`` of the whole path proves there is none on the way; only when
    it meets one is the path walked component by component, each link read
    and its target resolved against the directories really walked, as the
    kernel does.  ``..`` may not climb above the first *floor* components:
    a link leading out of the location is refused, not clamped.  Absolute
    targets name files of whatever host mounts the export, so they are
    refused too, except when *absolute_ok* (the location path itself on an
    NFSv4 server, walked from the server root).
    """
    path = tuple(start) + tuple(names)
    entry = connection.probe(path, where) if names else connection.stat(path, where)
    if entry is not None and entry.kind != "symlink":
        return path, entry
    return _walk(connection, start, names, floor, where, absolute_ok)


def _walk(
    connection: Connection,
    start: Tuple[str, ...],
    names: Sequence[str],
    floor: int,
    where: str,
    absolute_ok: bool,
) -> Tuple[Tuple[str, ...], Entry]:
    todo: Deque[str] = deque(names)
    done: List[str] = list(start)
    entry: Optional[Entry] = None  # of done[-1], None when not known
    links = 0
    while todo:
        name = todo.popleft()
        if name in ("", "."):
            continue
        if name == "..":
            if len(done) <= floor:
                raise BootError(f"{where}: a symbolic link leads outside the location")
            done.pop()
            entry = None
            continue
        entry = connection.stat(tuple(done) + (name,), where)
        if entry.kind == "symlink":
            links += 1
            if links > MAX_SYMLINKS:
                raise BootError(f"{where}: too many levels of symbolic links")
            target = _link_target(connection, tuple(done) + (name,), where)
            if target.startswith("/"):
                if not absolute_ok:
                    raise BootError(
                        f"{where}: symbolic link {'/'.join(done[floor:] + [name])} -> {target} "
                        "is absolute and may lead outside the location"
                    )
                del done[:]
            todo.extendleft(reversed(target.split("/")))
            entry = None
            continue
        if entry.kind != "directory" and any(part not in ("", ".") for part in todo):
            raise NotFound(f"{where}: {'/'.join(done[floor:] + [name])} is not a directory")
        done.append(name)
    return tuple(done), entry or connection.stat(tuple(done), where)


def _link_target(connection: Connection, parts: Tuple[str, ...], where: str) -> str:
    target = connection.readlink(parts, where)
    if not target or len(target) > MAX_LINK_TARGET:
        raise NotFound(f"{where}: unusable symbolic link {'/'.join(parts)}")
    return target


# -- trees and sources ------------------------------------------------------------


def _check_file(entry: Entry, where: str) -> None:
    if entry.kind == "directory":
        raise NotFound(f"{where}: is a directory")
    if entry.kind != "file":
        raise NotFound(f"{where}: not a regular file")
