"""The interfaces every location plugs into.

A *tree* is a read-only view of the files below one root: an http directory,
a TFTP server, an NFS export, a local directory, or the filesystem inside an
ISO/ext4 image.  Layout detection asks a tree whether files exist and reads
small metadata files from it; the boot step streams the kernel and ramdisk out
of it into a :class:`Sink`.  A *byte source* is random access to one file's
bytes; containers turn a byte source into a tree without mounting anything.

Paths handed to a tree are decoded, ``/``-separated and relative to its root
(see :func:`clean_path`); each tree quotes or maps them as its protocol needs.
"""

from __future__ import annotations

import abc
import functools
import io
import posixpath
import time
from dataclasses import dataclass
from urllib.parse import SplitResult, urlsplit
from typing import (TYPE_CHECKING, Callable, Dict, FrozenSet, Iterable, Mapping, Optional,
                    Sequence, Tuple, Union)

from ..errors import BootError, Interrupted, UsageError
# Re-exported: every layer reaches the transport interfaces through this module.
from .sink import DEFAULT_MAX_SIZE, Sink, SinkTap  # noqa: F401
from .sources import COPY_CHUNK, ByteSource, OwningSource, SourceFile  # noqa: F401


if TYPE_CHECKING:
    from .peers import PeerPolicy

#: Seconds without progress before a transfer is given up (``--timeout``).
DEFAULT_TIMEOUT = 30.0
#: Backoff between retries of a transient failure: 0.5 s, doubling, at most 5 s.
RETRY_FIRST_DELAY = 0.5
RETRY_MAX_DELAY = 5.0


def retry_delay(attempt: int) -> float:
    """Seconds to wait before retry number *attempt* (counted from 0)."""
    return min(RETRY_MAX_DELAY, RETRY_FIRST_DELAY * (2 ** attempt))


@dataclass(frozen=True)
class TransportOptions:
    """Settings shared by every transport, filled from the command line."""

    timeout: float = DEFAULT_TIMEOUT
    retries: int = 3
    max_size: int = DEFAULT_MAX_SIZE
    ca_cert: Optional[str] = None
    #: The --ca-cert bundle read while still root (for a deprivileged child).
    ca_cert_data: Optional[bytes] = None
    insecure: bool = False
    tftp_blksize: Optional[int] = None
    tftp_windowsize: Optional[int] = None
    verbose: bool = False
    #: Where transports report retries and protocol details (the console).
    log: Optional[Callable[[str], None]] = None
    #: ``time.monotonic()`` after which no retry starts (libxl's kill is near).
    deadline: Optional[float] = None
    #: Guarded address classes (see :mod:`.peers`) allowed beyond those the
    #: tree's own URL names; empty for a boot, all of them for trusting tests.
    allow_addresses: FrozenSet[str] = frozenset()
    #: Called with (directory tree, image name, byte source, remote?) between
    #: opening an image location's bytes and reading its filesystem; returns
    #: the source to read it through (``--verify`` checks the image there).
    image_hook: Optional[Callable[["Tree", str, "ByteSource", bool], "ByteSource"]] = None

    def note(self, message: str) -> None:
        if self.log is not None:
            self.log(message)

    def peers_for(self, host: Optional[str]) -> "PeerPolicy":
        """Where a tree whose location names *host* may connect (see :mod:`.peers`)."""
        from .peers import PeerPolicy

        return PeerPolicy.named_by([host], extra=self.allow_addresses)

    def may_retry(self, delay: float) -> bool:
        """True if a retry after *delay* seconds still starts before the deadline."""
        return self.deadline is None or time.monotonic() + delay < self.deadline


@dataclass(frozen=True)
class FileInfo:
    """What a tree can tell about a file without fetching it (None: unknown)."""

    size: Optional[int] = None
    mtime: Optional[float] = None
    #: An http entity tag: tells a changed file even when size and date agree.
    etag: Optional[str] = None
    #: The server answered for a directory (a redirect to ``name/``, a listing).
    directory: bool = False


def clean_path(path: str) -> str:
    """Normalise a path relative to a tree root, refusing any escape from it.

    Leading slashes are dropped (an absolute path inside an image or export
    names a file from its root), ``.`` and empty parts vanish, and ``..`` may
    only climb back as far as the root: a path that would leave the location
    is an error rather than a read of some other file.
    """
    if "\0" in path:
        raise BootError(f"invalid path {path!r}: contains a NUL byte")
    parts: list = []
    for part in path.split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            if not parts:
                raise BootError(f"path {path!r} leaves the location root")
            parts.pop()
            continue
        parts.append(part)
    return "/".join(parts)


#: One answer of :meth:`Tree.stat_many`: what a stat said, the bytes read, or
#: why that path failed (:class:`NotFound` when it is not there).
Answer = Union[FileInfo, bytes, BootError]


def answer_of(action: Callable[[], Union[FileInfo, bytes]]) -> Answer:
    """*action*'s result, or the error it raised for its path; an interruption propagates."""
    try:
        return action()
    except Interrupted:
        raise
    except BootError as exc:
        return exc


class Tree(abc.ABC):
    """Read-only files below one root; see the module docstring."""

    #: Worth keeping in the shared cache: remote, and stat() tells a change.
    cacheable = False
    #: :meth:`stat_many` overlaps its requests: asking many paths at once costs
    #: about one round trip, so a search may ask ahead instead of one by one.
    parallel_stats = False

    @abc.abstractmethod
    def url(self, path: str) -> str:
        """The URL or path of *path*, for messages and installer arguments."""

    @abc.abstractmethod
    def stat(self, path: str) -> FileInfo:
        """Tell whether *path* exists; raise :class:`NotFound` if it does not."""

    @abc.abstractmethod
    def fetch(self, path: str, sink: Sink) -> None:
        """Stream the whole of *path* into *sink*, then ``sink.check_complete()``."""

    def stat_many(self, paths: Sequence[str],
                  reads: Optional[Mapping[str, int]] = None) -> Dict[str, Answer]:
        """Stat *paths* and read the small files *reads* (path -> size limit) together.

        One answer per path (see :data:`Answer`); a failure is the value of
        its path rather than raised, so that one 404 does not hide the other
        answers.  This default asks one path after the other; a transport that
        can overlap requests overrides it and sets :attr:`parallel_stats`.
        """
        answers: Dict[str, Answer] = {}
        for path, limit in (reads or {}).items():
            answers[path] = answer_of(functools.partial(self.read_bytes, path, limit))
        for path in paths:
            if path not in answers:
                answers[path] = answer_of(functools.partial(self.stat, path))
        return answers

    def fetch_many(self, jobs: Sequence[Tuple[str, Sink]]) -> None:
        """Fetch several files; transports that can overlap transfers override it."""
        for path, sink in jobs:
            self.fetch(path, sink)

    def read_bytes(self, path: str, limit: int = 1 << 20) -> bytes:
        """Fetch a small metadata file (``.treeinfo``) into memory, bounded."""
        buf = io.BytesIO()
        sink = Sink(buf, self.url(path), max_size=limit)
        self.fetch(path, sink)
        return buf.getvalue()

    def open_source(self, path: str, info: Optional[FileInfo] = None) -> "ByteSource":
        """Random access to *path* (for an ISO or image read in place); *info*
        is what :meth:`stat` said of it, if the caller asked already."""
        raise BootError(f"{self.url(path)}: random access is not supported here")

    def close(self) -> None:
        """Release connections; the default has none."""

    def __enter__(self) -> "Tree":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def split_url(url: str) -> SplitResult:
    """``urlsplit`` that turns a malformed URL (bad brackets, bad port) into a usage error."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018  (raises on a bad port)
    except ValueError as exc:
        raise UsageError(f"invalid URL {url!r}: {exc}") from None
    return parts


def join_url_path(base: str, path: str) -> str:
    """Join a base directory and a cleaned relative path with exactly one slash."""
    if not path:
        return base
    return posixpath.join(base if base.endswith("/") else base + "/", path)


def iter_chunks(read: Callable[[int], bytes], chunk: int = 1 << 20) -> Iterable[bytes]:
    while True:
        data = read(chunk)
        if not data:
            return
        yield data
