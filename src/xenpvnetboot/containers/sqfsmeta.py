"""The squashfs 4.0 format, read lazily: metadata blocks, inodes, one directory.

PySquashfsImage walks the whole directory tree when an image is opened, and
a directory that many others share (a DAG: no cycle, nothing to detect) is
walked once per path to it: 40 levels of two names each pointing at the
next level make a 5 KB image cost 2**40 visits.  Its decompressors inflate
whatever a block holds, without bound.  So only the superblock comes from
the library; everything else is read here, on demand: a directory is parsed
when a path goes through it, once, and every block is inflated to at most
the size the format allows.  Blocks and directory entries are charged to
the image's budget.
"""

from __future__ import annotations

import importlib
import lzma
import struct
import zlib
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Tuple

from ..errors import BootError
from ..transports.base import ByteSource
from .budget import Budget

#: Size of a metadata block once decompressed (SQUASHFS_METADATA_SIZE).
METADATA_SIZE = 8192
#: Metadata blocks kept decompressed per image (2 MiB).
CACHED_BLOCKS = 256
#: Longest name in a directory, and most entries under one directory header.
MAX_NAME = 256
MAX_HEADER_ENTRIES = 256
#: Memory liblzma may use for one block (xz -9 needs 65 MiB).
LZMA_MEMLIMIT = 128 << 20

_UNCOMPRESSED_METADATA = 0x8000
_CHECK_FLAG = 0x0004  # SQUASHFS_CHECK: a check byte after each metadata header

Inflate = Callable[[bytes, int], bytes]
#: pip packages of the optional decompressors.
PACKAGES = {"zstandard": "zstandard", "lzo": "python-lzo", "lz4": "lz4"}


class TooMuchOutput(ValueError):
    """A block inflates to more than the format allows."""


def _zlib() -> Inflate:
    """isal's zlib-compatible inflate when installed (twice as fast), else zlib."""
    try:
        module: Any = importlib.import_module("isal.isal_zlib")
    except ImportError:
        module = zlib

    def inflate(data: bytes, limit: int) -> bytes:
        inflater = module.decompressobj()
        out = inflater.decompress(data, limit)
        if inflater.unconsumed_tail:
            raise TooMuchOutput(f"a gzip block inflates to more than {limit} bytes")
        if not inflater.eof:
            raise ValueError("a gzip block ends early")
        return out
    return inflate


def _lzma(fmt: int) -> Inflate:
    def inflate(data: bytes, limit: int) -> bytes:
        inflater = lzma.LZMADecompressor(fmt, LZMA_MEMLIMIT)
        out = inflater.decompress(data, limit)
        if not inflater.eof:
            if len(out) >= limit:
                raise TooMuchOutput(f"an xz block inflates to more than {limit} bytes")
            raise ValueError("an xz block ends early")
        return out
    return inflate


def _zstd() -> Inflate:
    zstandard = importlib.import_module("zstandard")
    context = zstandard.ZstdDecompressor()

    def inflate(data: bytes, limit: int) -> bytes:
        if zstandard.frame_content_size(data) > limit:  # -1 when not given
            raise TooMuchOutput(f"a zstd block claims more than {limit} bytes")
        return context.decompress(data, max_output_size=limit)
    return inflate


def _lz4() -> Inflate:
    block = importlib.import_module("lz4.block")
    return lambda data, limit: block.decompress(data, uncompressed_size=limit)


def _lzo() -> Inflate:
    lzo = importlib.import_module("lzo")
    return lambda data, limit: lzo.decompress(data, False, limit)


def inflater(compression: int, where: str) -> Inflate:
    """The bounded decompressor of squashfs compression id *compression*.

    ImportError (a missing optional package) is left to the caller.
    """
    if compression == 1:
        return _zlib()
    if compression == 2:
        return _lzma(lzma.FORMAT_ALONE)
    if compression == 4:
        return _lzma(lzma.FORMAT_XZ)
    makers = {3: _lzo, 5: _lz4, 6: _zstd}
    if compression not in makers:
        raise BootError(f"{where}: squashfs compression {compression} is not supported")
    return makers[compression]()


class Metadata:
    """Metadata blocks of one image: read, inflated, remembered, charged."""

    def __init__(self, view: ByteSource, budget: Budget, inflate: Inflate, flags: int,
                 where: str) -> None:
        self._view = view
        self._budget = budget
        self._inflate = inflate
        self._header = 3 if flags & _CHECK_FLAG else 2
        self._where = where
        self._cache: "OrderedDict[int, Tuple[bytes, int]]" = OrderedDict()

    def block(self, pos: int) -> Tuple[bytes, int]:
        """The bytes of the metadata block at *pos*, and where the next one starts."""
        cached = self._cache.get(pos)
        if cached is not None:
            self._cache.move_to_end(pos)
            return cached
        self._budget.charge("blocks")
        word = int.from_bytes(self._view.pread(pos, 2).ljust(2, b"\0"), "little")
        stored = word & ~_UNCOMPRESSED_METADATA
        if not 0 < stored <= METADATA_SIZE:
            raise BootError(f"{self._where}: corrupt squashfs metadata block at {pos}")
        data = self._view.pread(pos + self._header, stored)
        if len(data) != stored:
            raise BootError(f"{self._where}: squashfs image is truncated")
        if not word & _UNCOMPRESSED_METADATA:
            data = self._inflate(data, METADATA_SIZE)
        cached = (data, pos + self._header + stored)
        self._cache[pos] = cached
        while len(self._cache) > CACHED_BLOCKS:
            self._cache.popitem(last=False)
        return cached

    def read(self, pos: int, offset: int, length: int) -> Tuple[bytes, int, int]:
        """*length* bytes from *offset* of the block at *pos*, across blocks.

        Returns the bytes and the (block, offset) just after them.  Blocks
        only ever lie further on, so this walks forwards and ends.
        """
        parts: List[bytes] = []
        while length > 0:
            data, following = self.block(pos)
            if offset > len(data):
                raise BootError(f"{self._where}: corrupt squashfs metadata reference")
            piece = data[offset:offset + length]
            parts.append(piece)
            length -= len(piece)
            offset += len(piece)
            if offset >= len(data):
                pos, offset = following, 0
        return b"".join(parts), pos, offset


# -- inodes -------------------------------------------------------------------

DIR, FILE, SYMLINK, LDIR, LFILE, LSYMLINK = 1, 2, 3, 8, 9, 10
_INVALID_FRAGMENT = 0xFFFFFFFF


@dataclass
class Inode:
    """What a lookup or a read needs of one inode."""

    kind: int
    #: Directories: where the listing starts (block relative to the table,
    #: offset) and its size in bytes; files: start of the data blocks.
    start: int = 0
    offset: int = 0
    size: int = 0
    fragment: int = _INVALID_FRAGMENT
    #: Regular files: how many full data blocks, and where their list of
    #: size words is (metadata block, offset); read only when the file is.
    blocks: int = 0
    block_list: Tuple[int, int] = (0, 0)
    target: bytes = b""

    @property
    def is_dir(self) -> bool:
        return self.kind in (DIR, LDIR)


@dataclass
class Layout:
    """The superblock fields the readers use."""

    block_size: int
    inode_table: int
    directory_table: int
    fragment_table: int
    fragments: int
    size: int


def read_inode(meta: Metadata, layout: Layout, ref: int, where: str) -> Inode:
    """The inode at reference *ref* (block << 16 | offset, as directories store it)."""
    pos, offset = layout.inode_table + (ref >> 16), ref & 0xFFFF
    header, pos, offset = meta.read(pos, offset, 16)
    kind, = struct.unpack_from("<H", header)
    if kind == DIR:
        body, pos, offset = meta.read(pos, offset, 16)
        start, _nlink, size, dir_offset, _parent = struct.unpack("<IIHHI", body)
        return Inode(kind, start, dir_offset, size)
    if kind == LDIR:
        body, pos, offset = meta.read(pos, offset, 24)
        _nlink, size, start, _parent, _count, dir_offset, _xattr = struct.unpack("<IIIIHHI", body)
        return Inode(kind, start, dir_offset, size)
    if kind in (FILE, LFILE):
        fmt = "<IIII" if kind == FILE else "<QQQIIII"
        body, pos, offset = meta.read(pos, offset, struct.calcsize(fmt))
        values = struct.unpack(fmt, body)
        if kind == FILE:
            start, fragment, frag_offset, size = values
        else:
            start, size, _sparse, _nlink, fragment, frag_offset, _xattr = values
        whole = size // layout.block_size if fragment != _INVALID_FRAGMENT else \
            -(-size // layout.block_size)
        if whole * 4 > layout.size:  # its block list could not fit in the image
            raise BootError(f"{where}: corrupt squashfs inode (size {size})")
        return Inode(kind, start, frag_offset, size, fragment, whole, (pos, offset))
    if kind in (SYMLINK, LSYMLINK):
        body, pos, offset = meta.read(pos, offset, 8)
        _nlink, length = struct.unpack("<II", body)
        target, _, _ = meta.read(pos, offset, min(length, 4096))
        return Inode(kind, target=target)
    return Inode(kind)


def block_list(meta: Metadata, inode: Inode) -> List[int]:
    """The size word of each full data block of file *inode*."""
    words, _, _ = meta.read(inode.block_list[0], inode.block_list[1], inode.blocks * 4)
    return list(struct.unpack(f"<{inode.blocks}I", words))


def read_directory(meta: Metadata, layout: Layout, inode: Inode, budget: Budget,
                   where: str) -> Dict[bytes, int]:
    """Name -> inode reference of the entries of directory *inode*."""
    entries: Dict[bytes, int] = {}
    left = inode.size - 3  # the size counts "." and ".." as 3 bytes
    pos, offset = layout.directory_table + inode.start, inode.offset
    while left > 0:
        header, pos, offset = meta.read(pos, offset, 12)
        count, inode_block, _base = struct.unpack("<III", header)
        left -= 12
        if count >= MAX_HEADER_ENTRIES:
            raise BootError(f"{where}: corrupt squashfs directory ({count + 1} entries)")
        for _ in range(count + 1):
            budget.charge("entries")
            raw, pos, offset = meta.read(pos, offset, 8)
            entry_offset, _delta, _kind, name_size = struct.unpack("<HhHH", raw)
            if name_size >= MAX_NAME:
                raise BootError(f"{where}: corrupt squashfs directory entry")
            name, pos, offset = meta.read(pos, offset, name_size + 1)
            entries.setdefault(name, inode_block << 16 | entry_offset)
            left -= 8 + name_size + 1
    return entries


def fragment_entry(meta: Metadata, view: ByteSource, layout: Layout, index: int,
                   where: str) -> Tuple[int, int]:
    """(start, size word) of fragment block *index*."""
    if index >= layout.fragments:
        raise BootError(f"{where}: corrupt squashfs fragment index {index}")
    block, offset = divmod(index * 16, METADATA_SIZE)
    pointer = view.pread(layout.fragment_table + block * 8, 8)
    if len(pointer) != 8:
        raise BootError(f"{where}: squashfs image is truncated")
    raw, _, _ = meta.read(int.from_bytes(pointer, "little"), offset, 16)
    start, size, _unused = struct.unpack("<QII", raw)
    return start, size


def parse_superblock(library: Any, data: bytes, where: str) -> Tuple[Layout, int, int, int]:
    """The layout, compression id, flags and root inode reference of an image."""
    if len(data) < 96:
        raise BootError(f"{where}: truncated squashfs superblock")
    sblk = library.structure.Superblock.from_bytes(data)
    if not library.util.check_super(sblk):
        raise BootError(f"{where}: not a squashfs 4.0 image")
    block_size = int(sblk.block_size)
    if block_size & (block_size - 1) or not 4096 <= block_size <= 1 << 20 \
            or 1 << int(sblk.block_log) != block_size:
        raise BootError(f"{where}: corrupt squashfs superblock (block size {block_size})")
    layout = Layout(block_size, int(sblk.inode_table_start), int(sblk.directory_table_start),
                    int(sblk.fragment_table_start), int(sblk.fragments), int(sblk.bytes_used))
    return layout, int(sblk.compression), int(sblk.flags), int(sblk.root_inode)
