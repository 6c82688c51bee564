"""What every image format shares: path resolution, streaming, byte views.

Each format module only has to say how to list one directory entry
(:meth:`ImageTree._lookup`) and how to read one file's bytes
(:meth:`ImageTree._file_source`); symlinks, ``..``, the escape rule, the
error wrapping and the streaming of file extents live here once.
"""

from __future__ import annotations

import importlib
from collections import deque
from contextlib import contextmanager
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any, Callable, Iterator, List, Optional, Sequence, Tuple

from ..errors import BootError, NotFound, XenPVNetBootError
from ..transports.base import ByteSource, FileInfo, Sink, Tree, clean_path
from .budget import Budget, MeteredSource

#: Symlinks followed while resolving one path (Linux allows 40 as well).
MAX_SYMLINKS = 40
#: Longest symlink target read from an image (PATH_MAX).
MAX_LINK_TARGET = 4096
#: Largest directory read to look up a name in it.  A real directory of a
#: million entries is some 40 MiB; a corrupt size of gigabytes would
#: otherwise be read (TSK: 1 KiB per step, for hours).
MAX_DIRECTORY = 64 << 20
#: Bytes of zeros produced at a time for a hole in a sparse file.
_ZEROS = bytes(1 << 20)

#: One piece of a file: ``(offset in the parent, length)``; offset None is a hole.
Run = Tuple[Optional[int], int]

FILE = "file"
DIR = "dir"
LINK = "link"
OTHER = "other"


def import_optional(module: str, package: str, what: str) -> ModuleType:
    """Import a format library only when an image of that format turns up.

    Keeps start-up fast, and turns a missing library into one line naming the
    pip package instead of an ImportError traceback.
    """
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise BootError(
            f"reading {what} images needs the Python package {package} "
            f"(pip install {package}): {exc}"
        ) from None


def describe(exc: BaseException) -> str:
    """One line about a library exception (its message alone is often empty)."""
    text = str(exc).strip().replace("\n", " ")
    name = type(exc).__name__
    return f"{name}: {text}" if text else name


def _nothing_pending() -> Optional[BaseException]:
    return None


@contextmanager
def library_errors(
    what: str, pending: Callable[[], Optional[BaseException]] = _nothing_pending
) -> Iterator[None]:
    """Turn whatever a parsing library raises on hostile bytes into BootError.

    Image contents are untrusted: a corrupt directory makes pycdlib, TSK or
    PySquashfsImage raise anything from ValueError to RecursionError or
    MemoryError.  Our own errors (NotFound, an I/O error of the source) pass
    through unchanged, also when a C library wrapped them on the way:
    *pending* returns the error a read callback kept for that case.
    """
    try:
        yield
    except XenPVNetBootError:
        raise
    except Exception as exc:
        cause = pending()
        if isinstance(cause, XenPVNetBootError):
            raise cause from None
        raise BootError(f"{what}: {describe(exc)}") from None


@dataclass
class Node:
    """One directory entry as a format module reports it.

    ``path`` holds the names as stored in the image, from the root (they may
    differ from the requested ones in case, for FAT and plain ISO9660).
    ``ref`` is the library's own object for the entry.
    """

    kind: str
    path: Tuple[str, ...] = ()
    size: int = 0
    target: str = ""
    ref: Any = field(default=None, repr=False)


class ExtentSource(ByteSource):
    """A view of runs ``(offset, length)`` of a parent source, as one file.

    Serves partitions (one run), files stored in ISO9660 or ext extents
    (a run at offset None is a hole, read as zeros), and the whole image
    itself (so that reads are clamped to its size whatever length a library
    asks for).  It does not own the parent: closing it is a no-op, and it is
    valid only while the parent is open.
    """

    def __init__(self, parent: ByteSource, runs: Sequence[Run], name: str) -> None:
        self._parent = parent
        self._runs: List[Run] = [(o, n) for o, n in runs if n > 0]
        self._size = sum(n for _, n in self._runs)
        self.name = name

    @property
    def size(self) -> int:
        return self._size

    def _pieces(self, offset: int, length: int) -> Iterator[Run]:
        """``(parent offset, length)`` of each run piece covering the range asked for."""
        end = min(offset + length, self._size)
        pos = 0
        for run_offset, run_length in self._runs:
            if pos >= end:
                return
            run_end = pos + run_length
            if run_end > offset:
                start = max(offset, pos)
                at = None if run_offset is None else run_offset + start - pos
                yield at, min(end, run_end) - start
            pos = run_end

    def pread(self, offset: int, length: int) -> bytes:
        if offset < 0:
            return b""
        parts = []
        for parent_offset, want in self._pieces(offset, length):
            if parent_offset is None:
                parts.append(bytes(want))
                continue
            data = self._parent.pread(parent_offset, want)
            parts.append(data)
            if len(data) < want:
                break  # the parent ends early: a truncated image
        if not parts:
            return b""
        return parts[0] if len(parts) == 1 else b"".join(parts)

    def copy_range(self, offset: int, length: int, sink: Sink) -> None:
        """Pass each run on to the parent, so a remote parent streams it in one
        request (runs that follow each other in the parent are joined)."""
        pending: Run = (None, 0)
        for piece in self._pieces(offset, length):
            start, count = pending
            if start is not None and piece[0] == start + count:
                pending = (start, count + piece[1])
                continue
            self._copy(pending, sink)
            pending = piece
        self._copy(pending, sink)

    def _copy(self, piece: Run, sink: Sink) -> None:
        parent_offset, want = piece
        if parent_offset is None:
            _write_zeros(want, sink)
        elif parent_offset + want > self._parent.size:
            raise BootError(
                f"{self.name}: the image ends before this file does (truncated image?)"
            )
        else:
            self._parent.copy_range(parent_offset, want, sink)


class MappedSource(ExtentSource):
    """A file whose blocks are found as it is read (ext block maps and extents).

    *run_at* gives ``(first block in the parent or None for a hole, blocks)``
    for the run starting at a logical block, so a read costs lookups for the
    runs it touches, not for the whole file whatever size it claims.
    """

    def __init__(self, parent: ByteSource, block_size: int, size: int,
                 run_at: Callable[[int], Tuple[Optional[int], int]], name: str) -> None:
        self._parent = parent
        self._block_size = block_size
        self._size = size
        self._run_at = run_at
        self.name = name

    def _pieces(self, offset: int, length: int) -> Iterator[Run]:
        end = min(offset + length, self._size)
        pos = max(offset, 0)
        while pos < end:
            logical, skip = divmod(pos, self._block_size)
            block, count = self._run_at(logical)
            want = min(max(count, 1) * self._block_size - skip, end - pos)
            yield (None if block is None else block * self._block_size + skip), want
            pos += want


def _write_zeros(count: int, sink: Sink) -> None:
    """A hole of a sparse file, into the sink."""
    while count > 0:
        piece = _ZEROS[:min(count, len(_ZEROS))]
        if sink.write(piece) != len(piece):
            raise sink.error or BootError(f"{sink.name}: write refused")
        count -= len(piece)


def stream(source: ByteSource, sink: Sink) -> None:
    """Copy a whole source into a sink (one request for a remote image's file)."""
    sink.expect(source.size)
    source.copy_range(0, source.size, sink)
    sink.check_complete()


class ImageTree(Tree):
    """The files of one filesystem image, read in place through its source.

    Paths name files from the image root, whether or not they start with a
    slash (``rooted``, as pygrub does).  The tree owns *source*: :meth:`close`
    closes it after releasing the library objects.  Byte sources returned by
    :meth:`open_source` are views that stay valid until the tree is closed.
    """

    rooted = True
    #: Format name for messages ("ISO9660", "ext4", ...).
    kind = "filesystem"

    def __init__(self, source: ByteSource, budget: Optional[Budget] = None) -> None:
        self.source = source
        #: The work this image may still cost (shared with the other partitions).
        self.budget = budget if budget is not None else Budget(source.name)
        #: What the readers read metadata from: the image with reads clamped
        #: to its size and charged to the budget.
        self.view = MeteredSource(
            ExtentSource(source, [(0, source.size)], source.name), self.budget
        )
        self._closed = False

    # -- what each format provides ------------------------------------------------

    def _root(self) -> Node:
        raise NotImplementedError

    def _lookup(self, parent: Node, name: str) -> Optional[Node]:
        """The entry *name* of directory *parent*, or None if there is none."""
        raise NotImplementedError

    def _file_source(self, node: Node, name: str) -> ByteSource:
        """Random access to the bytes of the regular file *node*."""
        raise NotImplementedError

    def _release(self) -> None:
        """Drop the library objects."""

    # -- shared behaviour ---------------------------------------------------------

    def _pending_error(self) -> Optional[BaseException]:
        """Our own exception a C library swallowed while reading (see TSK)."""
        return None

    def guard(self) -> Any:
        """Context turning library exceptions into BootError naming the image."""
        return library_errors(
            f"{self.source.name}: unreadable {self.kind} image", self._pending_error
        )

    def url(self, path: str) -> str:
        return f"{self.source.name}:/{path.lstrip('/')}"

    def _find(self, path: str) -> Node:
        """The regular file *path* names, symlinks followed (NotFound if none)."""
        return self._walk(path, self._lookup)

    def _walk(self, path: str, lookup: Callable[[Node, str], Optional[Node]]) -> Node:
        if self._closed:
            raise BootError(f"{self.source.name}: image already closed")

        def charged(parent: Node, name: str) -> Optional[Node]:
            self.budget.charge("lookups")
            return lookup(parent, name)

        with self.guard():
            return resolve(self._root(), clean_path(path), charged, self.url(path))

    def stat(self, path: str) -> FileInfo:
        return FileInfo(size=self._find(path).size)

    def open_source(self, path: str, info: Optional[FileInfo] = None) -> ByteSource:
        """*info* is not needed: the image itself says how large the file is."""
        node = self._find(path)
        with self.guard():
            return GuardedSource(self, self._file_source(node, self.url(clean_path(path))))

    def fetch(self, path: str, sink: Sink) -> None:
        stream(self.open_source(path), sink)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            self._release()
        finally:
            self.source.close()


class GuardedSource(ByteSource):
    """A file inside an image: library errors become BootError, and reads
    after the tree is closed are refused instead of touching freed objects."""

    def __init__(self, tree: ImageTree, inner: ByteSource) -> None:
        self._tree = tree
        self._inner = inner
        self.name = inner.name

    @property
    def size(self) -> int:
        return self._inner.size

    def pread(self, offset: int, length: int) -> bytes:
        if self._tree._closed:
            raise BootError(f"{self.name}: the image holding it is closed")
        with self._tree.guard(), self._tree.budget.unmetered():
            return self._inner.pread(offset, length)

    def copy_range(self, offset: int, length: int, sink: Sink) -> None:
        if self._tree._closed:
            raise BootError(f"{self.name}: the image holding it is closed")
        with self._tree.guard(), self._tree.budget.unmetered():
            self._inner.copy_range(offset, length, sink)


def resolve(
    root: Node, path: str, lookup: Callable[[Node, str], Optional[Node]], where: str
) -> Node:
    """Walk *path* from *root*, following symlinks inside the image.

    A link target is resolved relative to the link's directory (from the
    image root if absolute) and ``..`` climbs the directories really walked,
    as the kernel does.  Climbing above the root is refused rather than
    clamped: a link that points outside the image names a file of the host
    the image was made on, never one we may read.  *where* names the image
    and path in messages.
    """
    todo = deque(part for part in path.split("/") if part not in ("", "."))
    stack = [root]
    links = 0
    while todo:
        name = todo.popleft()
        if name == "..":
            if len(stack) == 1:
                raise BootError(f"{where}: a symbolic link leads outside the image")
            stack.pop()
            continue
        parent = stack[-1]
        if parent.kind != DIR:
            raise NotFound(f"{where}: {'/'.join(parent.path)} is not a directory")
        node = lookup(parent, name)
        if node is None:
            raise NotFound(f"{where}: no such file")
        if node.kind == LINK:
            links += 1
            if links > MAX_SYMLINKS:
                raise BootError(f"{where}: too many levels of symbolic links")
            if not node.target:
                raise NotFound(f"{where}: empty symbolic link {'/'.join(node.path)}")
            if node.target.startswith("/"):
                del stack[1:]
            parts = [p for p in node.target.split("/") if p not in ("", ".")]
            todo.extendleft(reversed(parts))
            continue
        stack.append(node)
    found = stack[-1]
    if found.kind == DIR:
        raise NotFound(f"{where}: is a directory")
    if found.kind != FILE:
        raise NotFound(f"{where}: not a regular file")
    return found
