"""Random access to one remote file by range requests: an image read in place."""

from __future__ import annotations

import io
from collections import OrderedDict
from typing import TYPE_CHECKING


from ...errors import BootError
from ..base import (ByteSource, Sink)

if TYPE_CHECKING:
    pass

if TYPE_CHECKING:
    from .tree import CurlTree


class RangeSource(ByteSource):
    """Random access to one remote file through range requests, for an image
    read in place (``--location=http://host/x.iso``).

    Image libraries read metadata in small pieces (pycdlib: one 2 KiB sector
    at a time), so small reads go through a cache of 128 KiB blocks with read
    ahead: opening an ISO costs a couple of requests, not dozens.  The files
    themselves are streamed with one request each (:meth:`copy_range`).
    """

    BLOCK = 128 * 1024
    READ_AHEAD = 4  # blocks fetched together on a miss (512 KiB)
    MAX_BLOCKS = 64  # cached blocks (8 MiB)
    DIRECT = 4 * BLOCK  # larger reads skip the cache
    #: Bytes fetched into the block cache (small reads: an image's metadata) per image.
    MAX_CACHED_BYTES = 256 << 20
    #: Requests allowed beyond one per REQUEST_QUANTUM bytes received: a crafted
    #: image cannot make the reader send endless tiny range requests.
    MAX_SMALL_REQUESTS = 4096
    REQUEST_QUANTUM = 256 << 10

    def __init__(self, tree: "CurlTree", path: str, size: int) -> None:
        self._tree = tree
        self._path = path
        self._size = size
        self._blocks: "OrderedDict[int, bytes]" = OrderedDict()
        self.name = tree.url(path)
        #: Requests made and bytes received: for --verbose and the tests.
        self.requests = 0
        self.received = 0
        self.cached = 0

    @property
    def size(self) -> int:
        return self._size

    def _get(self, start: int, end: int) -> bytes:
        buf = io.BytesIO()
        sink = Sink(buf, self.name, max_size=end - start)
        sink.expected = end - start
        self.copy_range(start, end - start, sink)
        return buf.getvalue()

    def copy_range(self, offset: int, length: int, sink: Sink) -> None:
        end = min(offset + length, self._size)
        if offset + length > self._size:
            raise BootError(f"{self.name}: ends at byte {self._size}, before the "
                            f"{offset + length} needed (truncated image?)")
        before = sink.written
        self._tree.fetch_span(self._path, offset, end, sink)
        self.requests += 1
        self.received += sink.written - before
        if self.requests > self.MAX_SMALL_REQUESTS + self.received // self.REQUEST_QUANTUM:
            raise BootError(f"{self.name}: {self.requests} range requests for {self.received} "
                            "bytes (corrupt or crafted image?)")

    def pread(self, offset: int, length: int) -> bytes:
        end = min(offset + length, self._size)
        if offset < 0 or offset >= end:
            return b""
        if end - offset > self.DIRECT:
            return self._get(offset, end)
        first, last = offset // self.BLOCK, (end - 1) // self.BLOCK
        missing = [index for index in range(first, last + 1) if index not in self._blocks]
        if missing:
            count = -(-self._size // self.BLOCK)
            stop = min(count, max(missing[-1] + 1, missing[0] + self.READ_AHEAD))
            data = self._get(missing[0] * self.BLOCK, min(self._size, stop * self.BLOCK))
            self.cached += len(data)
            if self.cached > self.MAX_CACHED_BYTES:
                raise BootError(f"{self.name}: more than {self.MAX_CACHED_BYTES} bytes of image "
                                "metadata fetched (corrupt or crafted image?)")
            for number, index in enumerate(range(missing[0], stop)):
                self._blocks[index] = data[number * self.BLOCK:(number + 1) * self.BLOCK]
        parts = []
        for index in range(first, last + 1):
            self._blocks.move_to_end(index)
            parts.append(self._blocks[index])
        while len(self._blocks) > self.MAX_BLOCKS:
            self._blocks.popitem(last=False)
        joined = parts[0] if len(parts) == 1 else b"".join(parts)
        base = first * self.BLOCK
        return joined[offset - base:end - base]

    def close(self) -> None:
        self._blocks.clear()
