"""Reading a file while it is still being written.

The check inspects the kernel while it downloads (see :mod:`xenpvnetboot.check`),
so that decompressing it up to its Xen notes overlaps the transfer instead of
following it.  The inspector reads the output file through a descriptor of
its own, as it reads a complete one; a read past what has arrived waits until
the writer publishes more (:meth:`Arrivals.publish`), and fails with
:class:`Abandoned` once the writer gives up (a failed or restarted transfer),
so a waiting inspection never outlives its download.
"""

from __future__ import annotations

import os
import threading
from typing import BinaryIO

from ..transports.base import ByteSource


class Abandoned(Exception):
    """The writer gave up on the file: it will not be complete, so stop reading."""


class Arrivals:
    """How many bytes of a file of known final *size* may be read so far.

    The writer's thread calls :meth:`publish` once bytes are in the file
    (written through to it, not buffered) and :meth:`abandon` when it gives
    up; readers wait in :meth:`wait_for`.
    """

    def __init__(self, size: int) -> None:
        self.size = size
        self._available = 0
        self._abandoned = False
        self._changed = threading.Condition()

    @property
    def abandoned(self) -> bool:
        return self._abandoned

    def publish(self, count: int) -> None:
        with self._changed:
            if count > self._available:
                self._available = min(count, self.size)
                self._changed.notify_all()

    def abandon(self) -> None:
        with self._changed:
            self._abandoned = True
            self._changed.notify_all()

    def wait_for(self, end: int) -> None:
        """Return once bytes up to *end* (at most the final size) may be read."""
        end = min(end, self.size)
        with self._changed:
            while not self._abandoned and self._available < end:
                self._changed.wait()
            if self._abandoned:
                raise Abandoned()


class GrowingSource(ByteSource):
    """The bytes of descriptor *fd* as they arrive: a read waits for the bytes it needs.

    It behaves as the complete file of ``arrivals.size`` bytes would (a read
    is short only at that end); :func:`growing_file` gives it as a file
    object.  *fd* stays open (it is the caller's).
    """

    def __init__(self, fd: int, arrivals: Arrivals) -> None:
        self._fd = fd
        self._arrivals = arrivals
        self.name = f"descriptor {fd}"

    @property
    def size(self) -> int:
        return self._arrivals.size

    def pread(self, offset: int, length: int) -> bytes:
        length = max(0, min(length, self._arrivals.size - offset))
        if length == 0:
            return b""
        self._arrivals.wait_for(offset + length)
        parts = []
        while length > 0:
            data = os.pread(self._fd, length, offset)
            if not data:  # shorter than announced: the transfer will fail
                raise Abandoned()
            parts.append(data)
            offset += len(data)
            length -= len(data)
        return parts[0] if len(parts) == 1 else b"".join(parts)


def growing_file(fd: int, arrivals: Arrivals) -> BinaryIO:
    """A read-only, seekable file object of :class:`GrowingSource`."""
    return GrowingSource(fd, arrivals).as_file()  # type: ignore[return-value]
