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
import os
import posixpath
import time
from dataclasses import dataclass
from urllib.parse import SplitResult, urlsplit
from typing import (TYPE_CHECKING, BinaryIO, Callable, Dict, FrozenSet, Iterable, Mapping, Optional,
                    Protocol, Sequence, Tuple, Union)

from ..errors import BootError, Interrupted, TransientError, UsageError

if TYPE_CHECKING:
    from .peers import PeerPolicy

#: Block size of :meth:`ByteSource.copy_range`'s default loop.
COPY_CHUNK = 1 << 20
#: Default bound on one fetched file (the ``--max-size`` option overrides it).
DEFAULT_MAX_SIZE = 1 << 30
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


def _sha256():  # type: ignore[no-untyped-def]
    import hashlib  # only boots that check a digest pay for it

    return hashlib.sha256()


def _free_space(fileobj: BinaryIO) -> Optional[int]:
    """Bytes an unprivileged writer may still use on the file's filesystem."""
    try:
        st = os.fstatvfs(fileobj.fileno())
    except (AttributeError, OSError, io.UnsupportedOperation):
        return None
    return st.f_bavail * st.f_frsize


class SinkTap(Protocol):
    """Follows a :class:`Sink`'s file while it is written (the ``--check``
    inspection, which reads each file as it arrives)."""

    def wrote(self, sink: "Sink") -> None:
        """Bytes up to ``sink.written`` were accepted (they may still be buffered)."""

    def rewound(self, sink: "Sink") -> None:
        """The file was emptied to start over: what was read of it is void."""


class Sink:
    """Where a transport writes the bytes of one file.

    It counts and bounds what arrives (a server that sends more than the size
    limit, or more than it announced, fails the transfer instead of filling the
    disk) and reports progress.  Transports call :meth:`write` for each chunk
    and :meth:`expect` as soon as they learn the announced size.  ``write``
    never raises: it returns 0 to stop a transfer (what libcurl's write
    callback wants) and keeps the reason in :attr:`error`, which the transport
    raises once it is back in control.  *data* may be a memoryview of a
    transport's receive buffer, valid only during the call: a sink that keeps
    it must copy it.  A *tap* is told of each accepted write and of a
    rewind; with *digest* the SHA-256 of the bytes is computed even when none
    is expected (:meth:`hexdigest`, for the cache).
    """

    def __init__(
        self,
        fileobj: BinaryIO,
        name: str,
        max_size: int = DEFAULT_MAX_SIZE,
        progress: Optional[Callable[["Sink"], None]] = None,
        sha256: Optional[str] = None,
        on_complete: Optional[Callable[["Sink"], None]] = None,
        tap: Optional[SinkTap] = None,
        digest: bool = False,
    ) -> None:
        self.fileobj = fileobj
        self.on_complete = on_complete
        self.tap = tap
        self.name = name
        self.max_size = max_size
        self.progress = progress
        self.written = 0
        self.expected: Optional[int] = None
        self.error: Optional[BootError] = None
        self._write = fileobj.write
        self.want_sha256 = sha256.lower() if sha256 else None
        self._digest = _sha256() if sha256 or digest else None

    def expect(self, size: Optional[int]) -> None:
        """Record the announced size; refuse it at once if it is too large."""
        if size is None or size < 0:
            return
        self.expected = size
        if size > self.max_size:
            self.fail(
                f"{self.name}: file is {size} bytes, more than the limit of "
                f"{self.max_size} bytes (--max-size)"
            )
            raise self.error  # type: ignore[misc]
        free = _free_space(self.fileobj)
        if free is not None and size - self.written > free:
            self.fail(
                f"{self.name}: needs {size} bytes but only {free} are free in the "
                "output directory (choose a larger one with --output-directory)"
            )
            raise self.error  # type: ignore[misc]

    def fail(self, message: str) -> int:
        if self.error is None:
            self.error = BootError(message)
        return 0

    def write(self, data: bytes) -> int:
        n = len(data)
        total = self.written + n
        if total > self.max_size:
            return self.fail(
                f"{self.name}: more than {self.max_size} bytes received (--max-size)"
            )
        if self.expected is not None and total > self.expected:
            return self.fail(
                f"{self.name}: server sent more than the {self.expected} bytes it announced"
            )
        try:
            self._write(data)
        except OSError as exc:
            return self.fail(f"{self.name}: cannot write output: {exc.strerror or exc}")
        self.written = total
        if self._digest is not None:
            self._digest.update(data)
        if self.progress is not None:
            self.progress(self)
        if self.tap is not None:
            self.tap.wrote(self)
        if total == self.expected and self.on_complete is not None:
            on_complete, self.on_complete = self.on_complete, None
            on_complete(self)
        return n

    def digest_matches(self) -> bool:
        """Whether what was written so far has the SHA-256 asked for (or none was)."""
        return self.want_sha256 is None or self.hexdigest() == self.want_sha256

    def hexdigest(self) -> Optional[str]:
        """The SHA-256 of what was written so far, if it is computed (see *digest*)."""
        return self._digest.hexdigest() if self._digest is not None else None

    def rewind(self) -> None:
        """Forget what was written, to restart a transfer from its first byte."""
        self.fileobj.seek(0)
        self.fileobj.truncate()
        self.written = 0
        self.error = None
        if self._digest is not None:
            self._digest = _sha256()
        if self.tap is not None:
            self.tap.rewound(self)

    def check_complete(self) -> None:
        """Raise if the transfer stopped early or a write was refused."""
        if self.error is not None:
            raise self.error
        if self.expected is not None and self.written != self.expected:
            raise TransientError(
                f"{self.name}: transfer ended after {self.written} of "
                f"{self.expected} bytes"
            )
        if self.want_sha256 is not None:
            got = self.hexdigest()
            if got != self.want_sha256:
                raise BootError(
                    f"{self.name}: SHA-256 is {got}, expected {self.want_sha256}"
                )


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


class ByteSource(abc.ABC):
    """Random-access reads of one file (local file, block device, NFS, HTTP Range)."""

    #: Shown in error messages.
    name: str = "?"

    @property
    @abc.abstractmethod
    def size(self) -> int:
        """Total length in bytes."""

    @abc.abstractmethod
    def pread(self, offset: int, length: int) -> bytes:
        """Up to *length* bytes at *offset*; shorter only at the end of the file."""

    def close(self) -> None:
        """Release the underlying handle."""

    def copy_range(self, offset: int, length: int, sink: Sink) -> None:
        """Write bytes ``[offset, offset + length)`` into *sink*.

        Remote sources override it with one streamed request; this default
        reads in 1 MiB blocks.  A source that ends early is an error (a
        truncated image), never a short file.
        """
        end = offset + length
        while offset < end:
            data = self.pread(offset, min(COPY_CHUNK, end - offset))
            if not data:
                raise BootError(
                    f"{self.name}: ends at byte {offset}, before the {end} needed "
                    "(truncated image?)"
                )
            offset += len(data)
            if sink.write(data) != len(data):
                raise sink.error or BootError(f"{sink.name}: write refused")

    def as_file(self) -> "SourceFile":
        """A seekable read-only file object over this source (for pycdlib etc.)."""
        return SourceFile(self)


class OwningSource(ByteSource):
    """A source that also closes the tree it came from (an image opened from a URL)."""

    def __init__(self, source: ByteSource, owner: "Tree") -> None:
        self._source = source
        self._owner = owner
        self.name = source.name

    @property
    def size(self) -> int:
        return self._source.size

    def pread(self, offset: int, length: int) -> bytes:
        return self._source.pread(offset, length)

    def copy_range(self, offset: int, length: int, sink: Sink) -> None:
        self._source.copy_range(offset, length, sink)

    def close(self) -> None:
        try:
            self._source.close()
        finally:
            self._owner.close()


class SourceFile(io.RawIOBase):
    """Adapts a :class:`ByteSource` to the read/seek/tell protocol of libraries."""

    def __init__(self, source: ByteSource) -> None:
        super().__init__()
        self._source = source
        self._pos = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        if whence == io.SEEK_SET:
            pos = offset
        elif whence == io.SEEK_CUR:
            pos = self._pos + offset
        elif whence == io.SEEK_END:
            pos = self._source.size + offset
        else:
            raise ValueError(f"invalid whence {whence}")
        if pos < 0:
            raise ValueError("negative seek position")
        self._pos = pos
        return pos

    def read(self, size: int = -1) -> bytes:
        if size is None or size < 0:
            size = max(0, self._source.size - self._pos)
        data = self._source.pread(self._pos, size)
        self._pos += len(data)
        return data

    def readinto(self, buffer) -> int:  # type: ignore[override]
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)


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
