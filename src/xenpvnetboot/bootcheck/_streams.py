"""Bounded, forward-only reading of plain and compressed byte streams.

Every inspector works on a stream that produces bytes a chunk at a time, so
that a 40 MB initrd or a kernel payload is never held in memory whole and a
hostile file (a decompression bomb, a huge declared size) costs bounded time
and memory: each decompressor stops with ``TooLarge`` once it has produced
``limit`` bytes.
"""

from __future__ import annotations

import bz2
import importlib
import lzma
import zlib
from typing import BinaryIO, Optional

#: Size of the reads from the file and of the chunks asked of a decompressor.
CHUNK = 1 << 20
#: Memory liblzma may use; ``xz -9`` needs 65 MiB, kernels use a 32 MiB dictionary.
LZMA_MEMLIMIT = 320 << 20
#: The largest zstd block (RFC 8878, Block_Maximum_Size).
ZSTD_MAX_BLOCK = 128 << 10
#: Bound on the blocks walked in one zstd frame, before anything is
#: decompressed (a block holds at most 128 KiB of output, so real frames of
#: 1 GiB have some 8,200; this allows 8 GiB and costs at most a few tens of
#: milliseconds per frame).
ZSTD_MAX_BLOCKS = 1 << 16
#: lz4 legacy format: magic, block output size and the largest compressed block.
LZ4_LEGACY_MAGIC = b"\x02\x21\x4c\x18"
LZ4_LEGACY_BLOCK = 8 << 20
LZ4_LEGACY_MAX_INPUT = LZ4_LEGACY_BLOCK + LZ4_LEGACY_BLOCK // 255 + 16

#: Compression formats, by the short name used in messages.
GZIP, BZIP2, XZ, LZMA, ZSTD, LZ4, LZ4_FRAME, LZO = (
    "gzip", "bzip2", "xz", "lzma", "zstd", "lz4", "lz4 frame", "lzo",
)


class StreamError(Exception):
    """The *fmt* data could not be read as far as the check needed."""

    def __init__(self, fmt: str, detail: str = "") -> None:
        super().__init__(f"{fmt} data: {detail}" if detail else f"{fmt} data")
        self.format = fmt
        self.detail = detail


class TruncatedStream(StreamError):
    """The input ended before the compressed stream did."""


class CorruptStream(StreamError):
    """The decompressor rejected the data; ``detail`` says why."""


class TooLarge(StreamError):
    """More than ``limit`` bytes would have to be produced."""

    def __init__(self, fmt: str, limit: int) -> None:
        super().__init__(fmt, f"more than {limit} bytes once decompressed")
        self.limit = limit


class OutOfWork(StreamError):
    """A bound of the check on the work for one file was reached; ``detail``
    says which ("after 20 s of CPU"): the rest is unknown, not wrong."""


class MissingModule(StreamError):
    """The Python package that reads this format is not installed ("" if none exists)."""

    def __init__(self, fmt: str, package: str) -> None:
        super().__init__(fmt, f"needs the Python package {package}" if package
                         else "no reader for this format")
        self.package = package


class FileRegion:
    """Sequential reads of bytes ``[start, end)`` of an open binary file."""

    def __init__(self, fileobj: BinaryIO, start: int, end: int) -> None:
        self._file = fileobj
        self.pos = start
        self.end = end

    def read(self, size: int = -1) -> bytes:
        """Up to *size* bytes (all that is left for a negative size)."""
        left = self.end - self.pos
        if size < 0 or size > left:
            size = left
        if size <= 0:
            return b""
        self._file.seek(self.pos)
        data = self._file.read(size)
        self.pos += len(data)
        return data

    @property
    def exhausted(self) -> bool:
        return self.pos >= self.end


def read_at(fileobj: BinaryIO, offset: int, size: int) -> bytes:
    """Up to *size* bytes of *fileobj* at *offset* (short at the end of file)."""
    fileobj.seek(offset)
    return fileobj.read(size)


class Decompressed:
    """The output of one compressed stream, read forwards.

    ``read`` returns ``b""`` only when the stream ended properly; an input that
    stops early raises ``TruncatedStream``.  ``end_offset`` is the file offset
    just past the compressed stream once it has ended, which is where the next
    member of a concatenated ramdisk starts.
    """

    def __init__(self, fmt: str, limit: int) -> None:
        self.format = fmt
        self.limit = limit
        self.produced = 0
        self.end_offset: Optional[int] = None

    def read(self, size: int) -> bytes:
        raise NotImplementedError

    def _account(self, data: bytes) -> bytes:
        self.produced += len(data)
        if self.produced > self.limit:
            raise TooLarge(self.format, self.limit)
        return data


class _ObjectStream(Decompressed):
    """Streams driven by a zlib/lzma/bz2/lz4.frame-style decompressor object."""

    def __init__(self, fmt: str, region: FileRegion, obj, limit: int,
                 errors: tuple) -> None:
        super().__init__(fmt, limit)
        self._region = region
        self._obj = obj
        self._errors = errors
        self._fed = 0
        self._start = region.pos

    def _next_input(self) -> bytes:
        tail = getattr(self._obj, "unconsumed_tail", None)
        if tail:
            return tail
        if tail is None and not self._obj.needs_input:
            return b""
        data = self._region.read(CHUNK)
        self._fed += len(data)
        return data

    def read(self, size: int) -> bytes:
        idle = 0
        while not self._obj.eof:
            data = self._next_input()
            try:
                out = self._obj.decompress(data, size)
            except self._errors as exc:
                raise CorruptStream(self.format, str(exc)) from None
            if out:
                return self._account(out)
            if not data and self._region.exhausted:
                idle += 1
                if idle > 1:
                    raise TruncatedStream(self.format)
        self._finish()
        return b""

    def _finish(self) -> None:
        if self.end_offset is None:
            left = len(self._obj.unused_data) + len(getattr(self._obj, "unconsumed_tail", b""))
            self.end_offset = self._start + self._fed - left


class _ZstdStream(Decompressed):
    """One zstd frame: its end is found by walking block headers, then decoded."""

    def __init__(self, region: FileRegion, fileobj: BinaryIO, limit: int) -> None:
        super().__init__(ZSTD, limit)
        zstandard = _import(ZSTD, "zstandard", "zstandard")
        length = zstd_frame_length(fileobj, region.pos, region.end)
        self._frame_end = region.pos + length
        frame = FileRegion(fileobj, region.pos, self._frame_end)
        self._reader = zstandard.ZstdDecompressor().stream_reader(
            frame, read_size=CHUNK, read_across_frames=False)
        self._error = zstandard.ZstdError

    def read(self, size: int) -> bytes:
        try:
            out = self._reader.read(size)
        except self._error as exc:
            raise CorruptStream(ZSTD, str(exc)) from None
        if not out:
            self.end_offset = self._frame_end
        return self._account(out)


class _Lz4LegacyStream(Decompressed):
    """The lz4 legacy format (``lz4 -l``, what Linux uses): sized 8 MiB blocks.

    The stream has no end marker: it runs to the end of its input, as the
    kernel reads it.  Four bytes left alone at the very end are the
    uncompressed size the kernel build appends, not a block.
    """

    def __init__(self, region: FileRegion, limit: int) -> None:
        super().__init__(LZ4, limit)
        self._block = _import(LZ4, "lz4.block", "lz4")
        self._region = region
        self._pending = b""
        self._done = False
        if region.read(4) != LZ4_LEGACY_MAGIC:
            raise CorruptStream(LZ4, "no lz4 legacy magic")

    def _next_block(self) -> bytes:
        while True:
            head = self._region.read(4)
            if not head:
                return b""
            if len(head) < 4:
                raise TruncatedStream(LZ4)
            if head == LZ4_LEGACY_MAGIC:
                continue
            size = int.from_bytes(head, "little")
            left = self._region.end - self._region.pos
            if left == 0:
                return b""
            if size > LZ4_LEGACY_MAX_INPUT:
                raise CorruptStream(LZ4, "block too large")
            if size > left:
                raise TruncatedStream(LZ4)
            try:
                return self._block.decompress(self._region.read(size),
                                              uncompressed_size=LZ4_LEGACY_BLOCK)
            except Exception as exc:  # lz4 raises its own LZ4BlockError
                raise CorruptStream(LZ4, str(exc)) from None

    def read(self, size: int) -> bytes:
        while not self._pending and not self._done:
            block = self._next_block()
            if not block:
                self._done = True
                self.end_offset = self._region.end
            self._pending = block
        out, self._pending = self._pending[:size], self._pending[size:]
        return self._account(out)


def _import(fmt: str, module: str, package: str):
    try:
        return importlib.import_module(module)
    except ImportError:
        raise MissingModule(fmt, package) from None


def zstd_frame_length(fileobj: BinaryIO, start: int, end: int) -> int:
    """Length of the zstd frame at *start*, from its headers alone (RFC 8878).

    Walking the 3-byte block headers finds a truncated frame and the frame's
    end without decompressing anything.
    """
    head = read_at(fileobj, start, 18)
    magic = int.from_bytes(head[:4], "little")
    if len(head) >= 8 and 0x184D2A50 <= magic <= 0x184D2A5F:
        length = 8 + int.from_bytes(head[4:8], "little")
        if start + length > end:
            raise TruncatedStream(ZSTD)
        return length
    if len(head) < 6 or magic != 0xFD2FB528:
        raise TruncatedStream(ZSTD)
    desc = head[4]
    if desc & 0x08:
        raise CorruptStream(ZSTD, "reserved bit set")
    single = (desc >> 5) & 1
    fcs_size = (single, 2, 4, 8)[desc >> 6]
    pos = start + 5 + (1 - single) + (0, 1, 2, 4)[desc & 3] + fcs_size
    window = _Window(fileobj, end)
    for _ in range(ZSTD_MAX_BLOCKS):
        header = window.get(pos, 3)
        if len(header) < 3:
            raise TruncatedStream(ZSTD)
        value = int.from_bytes(header, "little")
        kind, size = (value >> 1) & 3, value >> 3
        if kind == 3 or size > ZSTD_MAX_BLOCK:
            raise CorruptStream(ZSTD, "bad block header")
        pos += 3 + (1 if kind == 1 else size)
        if value & 1:
            break
    else:
        raise TooLarge(ZSTD, ZSTD_MAX_BLOCKS * ZSTD_MAX_BLOCK)
    pos += 4 if desc & 0x04 else 0
    if pos > end:
        raise TruncatedStream(ZSTD)
    return pos - start


class _Window:
    """A cached 1 MiB view of a file for many small reads at rising offsets."""

    def __init__(self, fileobj: BinaryIO, end: int) -> None:
        self._file = fileobj
        self._end = end
        self._base = 0
        self._data = b""

    def get(self, offset: int, size: int) -> bytes:
        if offset < self._base or offset + size > self._base + len(self._data):
            self._base = offset
            self._data = read_at(self._file, offset, max(0, min(CHUNK, self._end - offset)))
        return self._data[offset - self._base:offset - self._base + size]


def open_decompressed(fmt: str, fileobj: BinaryIO, start: int, end: int,
                      limit: int) -> Decompressed:
    """A ``Decompressed`` for the *fmt* stream at ``[start, end)`` of *fileobj*."""
    region = FileRegion(fileobj, start, end)
    if fmt == ZSTD:
        return _ZstdStream(region, fileobj, limit)
    if fmt == LZ4:
        return _Lz4LegacyStream(region, limit)
    if fmt == LZO:
        raise MissingModule(LZO, "")
    obj, errors = _decompressor(fmt)
    return _ObjectStream(fmt, region, obj, limit, errors)


def _gzip_module():
    """isal's zlib-compatible inflate when installed (about twice as fast), else zlib.

    Checking a ramdisk means inflating all of it; with Debian's 40 MB
    initrd that is most of the check's cost.
    """
    try:
        return importlib.import_module("isal.isal_zlib")
    except ImportError:
        return zlib


def _decompressor(fmt: str):
    """A fresh decompressor object for *fmt* and the exceptions it raises."""
    if fmt == GZIP:
        inflate = _gzip_module()
        return inflate.decompressobj(16 + zlib.MAX_WBITS), (inflate.error,)
    if fmt == XZ:
        return lzma.LZMADecompressor(lzma.FORMAT_XZ, LZMA_MEMLIMIT), (lzma.LZMAError,)
    if fmt == LZMA:
        return lzma.LZMADecompressor(lzma.FORMAT_ALONE, LZMA_MEMLIMIT), (lzma.LZMAError,)
    if fmt == BZIP2:
        return bz2.BZ2Decompressor(), (OSError, ValueError)
    if fmt == LZ4_FRAME:
        frame = _import(LZ4_FRAME, "lz4.frame", "lz4")
        return frame.LZ4FrameDecompressor(), (RuntimeError, ValueError, OSError)
    raise CorruptStream(fmt, "unknown compression")
