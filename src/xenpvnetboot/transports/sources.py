"""Random access to one file's bytes: what images are read through.

A local file, a block device, a file on NFS or behind HTTP range requests,
or a file inside an image: each is a :class:`ByteSource`, and containers turn
one into a tree without mounting anything.
"""

from __future__ import annotations

import abc
import io
from typing import TYPE_CHECKING

from ..errors import BootError
from .sink import Sink

if TYPE_CHECKING:
    from .base import Tree

#: Block size of :meth:`ByteSource.copy_range`'s default loop.
COPY_CHUNK = 1 << 20


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
