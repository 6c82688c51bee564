"""Where a transport writes the bytes of one file: counted, bounded, checked.

Every transport streams into a :class:`Sink`; it refuses more than the size
limit or than the server announced, keeps the SHA-256 when one is expected
(or asked for), tells a tap (the live ``--check``) of each write, and
reports a short transfer, so that no transport needs its own accounting.
"""

from __future__ import annotations

import io
import os
from typing import BinaryIO, Callable, Optional, Protocol

from ..errors import BootError, TransientError

#: Default bound on one fetched file (the ``--max-size`` option overrides it).
DEFAULT_MAX_SIZE = 1 << 30


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
