"""Exact-size reads over a byte source that produces chunks of any size.

The cpio and ELF walkers want "the next 110 bytes" or "skip 4 MiB" of a
decompressor that hands out whatever it has; :class:`Reader` buffers just
enough for that and counts the stream position the formats' alignments are
relative to.
"""

from __future__ import annotations

from typing import Callable

from ._streams import CHUNK, Decompressed


def read_head(stream: Decompressed, size: int = 64 << 10) -> bytes:
    """The first *size* bytes a stream produces (fewer if it is shorter)."""
    return Reader(stream.read, size).read(size)


class Reader:
    """Exact-size reads and skips over a chunked byte source, tracking position.

    ``pos`` counts bytes from the start of the stream; cpio alignment and ELF
    offsets are relative to it.
    """

    def __init__(self, raw_read: Callable[[int], bytes], chunk: int = CHUNK) -> None:
        self._raw_read = raw_read
        self._chunk = chunk
        self._buf = b""
        self._off = 0
        self.pos = 0

    def _fill(self) -> bool:
        data = self._raw_read(self._chunk)
        if not data:
            return False
        self._buf = self._buf[self._off:] + data
        self._off = 0
        return True

    def _want(self, size: int) -> None:
        while len(self._buf) - self._off < size and self._fill():
            pass

    def read(self, size: int) -> bytes:
        """*size* bytes, or fewer only at the end of the stream."""
        self._want(size)
        out = self._buf[self._off:self._off + size]
        self._off += len(out)
        self.pos += len(out)
        return out

    def peek(self, size: int) -> bytes:
        """The next *size* bytes (fewer at the end) without consuming them."""
        self._want(size)
        return self._buf[self._off:self._off + size]

    def skip(self, size: int) -> int:
        """Discard *size* bytes; how many there were."""
        done = 0
        while done < size:
            have = len(self._buf) - self._off
            if have == 0:
                self._buf, self._off = b"", 0
                if not self._fill():
                    break
                continue
            step = min(have, size - done)
            self._off += step
            done += step
        self.pos += done
        return done

    def skip_zeros(self) -> int:
        """Discard NUL bytes (padding between archives); how many."""
        count = 0
        while True:
            if self._off >= len(self._buf):
                self._buf, self._off = b"", 0
                if not self._fill():
                    break
            rest = len(self._buf) - self._off
            stripped = len(self._buf[self._off:].lstrip(b"\0"))
            step = rest - stripped
            self._off += step
            count += step
            if stripped:
                break
        self.pos += count
        return count
