"""squashfs 4.0 images (gzip, xz, lzma, lz4, lzo, zstd), opened lazily.

Opening an image reads its superblock and root inode only; a directory is
read when a path goes through it, once (see :mod:`.sqfsmeta` for why the
library's own reader, which walks the whole tree at open, is not used).
PySquashfsImage still parses the superblock.

A file's data is read by :class:`SquashfsFileSource`, which decompresses
only the blocks a read touches, so a file inside the image can be opened
for random access too (an image inside the image).  Each block inflates
to at most the image's block size.  The compressed blocks that follow each
other are fetched together, up to :data:`READ_SPAN` at a time: one range
request per MiB for an image read in place over http.
"""

from __future__ import annotations

from typing import Dict, List, Optional, Tuple

from ..errors import BootError
from ..transports.base import ByteSource
from . import sqfsmeta
from .budget import Budget
from .sqfsmeta import Inflate, Inode, Layout, Metadata
from .tree import DIR, FILE, LINK, OTHER, ImageTree, Node, import_optional

#: Most bytes of consecutive compressed data blocks fetched in one read.
READ_SPAN = 1 << 20
_SPAN_BLOCKS = 256  # and most blocks (sparse ones take no bytes)
_UNCOMPRESSED = 1 << 24  # flag in a data block's size word
_INVALID_BLOCK = 0xFFFFFFFF
_INVALID_FRAGMENT = 0xFFFFFFFF


class SquashfsTree(ImageTree):
    """Directory and file nodes carry their :class:`.sqfsmeta.Inode` as ``ref``."""

    kind = "squashfs"

    def __init__(self, source: ByteSource, budget: Optional[Budget] = None) -> None:
        super().__init__(source, budget)
        library = import_optional("PySquashfsImage", "PySquashfsImage", "squashfs")
        self._listings: Dict[Tuple[int, int, int], Dict[bytes, int]] = {}
        with self.guard():
            layout, compression, flags, self._root_ref = sqfsmeta.parse_superblock(
                library, self.view.pread(0, 96), source.name)
            if layout.size > self.view.size:
                raise BootError(f"{source.name}: squashfs image is truncated "
                                f"({self.view.size} of {layout.size} bytes)")
            try:
                self._inflate: Inflate = sqfsmeta.inflater(compression, source.name)
            except ImportError as exc:
                package = sqfsmeta.PACKAGES.get((exc.name or "").split(".")[0], exc.name)
                raise BootError(
                    f"{source.name}: this squashfs image needs the Python package "
                    f"{package} (pip install {package})"
                ) from None
            self._layout: Layout = layout
            self._meta = Metadata(self.view, self.budget, self._inflate, flags, source.name)
            self._root_node = self._node(self._root_ref, ())

    def _node(self, ref: int, path: Tuple[str, ...]) -> Node:
        inode = sqfsmeta.read_inode(self._meta, self._layout, ref, self.url("/".join(path)))
        if inode.is_dir:
            return Node(DIR, path, size=inode.size, ref=inode)
        if inode.kind in (sqfsmeta.SYMLINK, sqfsmeta.LSYMLINK):
            return Node(LINK, path, target=inode.target.decode("utf-8", "surrogateescape"))
        if inode.kind in (sqfsmeta.FILE, sqfsmeta.LFILE):
            return Node(FILE, path, size=inode.size, ref=inode)
        return Node(OTHER, path)

    def _root(self) -> Node:
        return self._root_node

    def _lookup(self, parent: Node, name: str) -> Optional[Node]:
        inode: Inode = parent.ref
        key = (inode.start, inode.offset, inode.size)
        listing = self._listings.get(key)
        if listing is None:
            listing = sqfsmeta.read_directory(self._meta, self._layout, inode, self.budget,
                                              self.url("/".join(parent.path)))
            self._listings[key] = listing
        ref = listing.get(name.encode("utf-8", "surrogateescape"))
        return None if ref is None else self._node(ref, parent.path + (name,))

    def _file_source(self, node: Node, name: str) -> ByteSource:
        inode: Inode = node.ref
        fragment = None
        if inode.fragment != _INVALID_FRAGMENT:
            fragment = sqfsmeta.fragment_entry(self._meta, self.view, self._layout,
                                               inode.fragment, name)
        return SquashfsFileSource(self.view, self._layout.block_size, self._inflate, inode,
                                  sqfsmeta.block_list(self._meta, inode), fragment, name)

    def _release(self) -> None:
        self._listings.clear()


class SquashfsFileSource(ByteSource):
    """Random access to one regular file: only the touched blocks are inflated."""

    def __init__(self, view: ByteSource, block_size: int, inflate: Inflate, inode: Inode,
                 words: List[int], fragment: Optional[Tuple[int, int]], name: str) -> None:
        self.name = name
        self._view = view
        self._size = inode.size
        self._block_size = block_size
        self._decompress = inflate
        #: (offset in the image, size word) of each full block, in file order.
        self._blocks: List[Tuple[int, int]] = []
        start = inode.start
        for word in words:
            if word == _INVALID_BLOCK:
                raise BootError(f"{name}: corrupt squashfs block list")
            self._blocks.append((start, word))
            start += word & ~_UNCOMPRESSED
        #: (offset, size word, slice start) of the tail fragment, if any.
        self._fragment: Optional[Tuple[int, int, int]] = None
        if fragment is not None:
            self._fragment = (fragment[0], fragment[1], inode.offset)
        self._cached: Tuple[int, bytes] = (-1, b"")
        #: Compressed bytes of the blocks fetched with the last read, by index.
        self._fetched: Dict[int, bytes] = {}

    @property
    def size(self) -> int:
        return self._size

    def _expected(self, index: int) -> int:
        return max(0, min(self._block_size, self._size - index * self._block_size))

    def _stored(self, word: int) -> int:
        stored = word & ~_UNCOMPRESSED
        if stored > self._block_size:
            raise BootError(f"{self.name}: corrupt squashfs data block of {stored} bytes")
        return stored

    def _read(self, offset: int, stored: int) -> bytes:
        data = self._view.pread(offset, stored)
        if len(data) != stored:
            raise BootError(f"{self.name}: squashfs image is truncated")
        return data

    def _compressed(self, index: int) -> bytes:
        """The stored bytes of full block *index*, fetched with those after it."""
        if index not in self._fetched:
            start, end, last = self._blocks[index][0], self._blocks[index][0], index
            while last < len(self._blocks) and self._blocks[last][0] == end \
                    and end - start < READ_SPAN and last - index < _SPAN_BLOCKS:
                end += self._stored(self._blocks[last][1])
                last += 1
            data = self._read(start, end - start)
            self._fetched = {}
            for number in range(index, last):
                offset, word = self._blocks[number]
                self._fetched[number] = data[offset - start:offset - start + self._stored(word)]
        return self._fetched[index]

    def _inflate(self, data: bytes, word: int) -> bytes:
        if word & _UNCOMPRESSED:
            return data
        return self._decompress(data, self._block_size)

    def _block(self, index: int) -> bytes:
        """The bytes of block *index* of the file (the fragment is the last)."""
        if self._cached[0] == index:
            return self._cached[1]
        expected = self._expected(index)
        if index < len(self._blocks):
            word = self._blocks[index][1]
            data = self._inflate(self._compressed(index), word) if word else bytes(expected)
            data = data[:expected]
        elif self._fragment is not None:
            offset, word, start = self._fragment
            data = self._inflate(self._read(offset, self._stored(word)), word)
            data = data[start:start + expected]
        else:
            data = b""
        if len(data) != expected:
            raise BootError(f"{self.name}: corrupt squashfs data block {index}")
        self._cached = (index, data)
        return data

    def pread(self, offset: int, length: int) -> bytes:
        end = min(offset + length, self._size)
        if offset < 0 or offset >= end:
            return b""
        parts = []
        pos = offset
        while pos < end:
            index, skip = divmod(pos, self._block_size)
            block = self._block(index)
            piece = block[skip:skip + end - pos]
            parts.append(piece)
            pos += len(piece)
        return parts[0] if len(parts) == 1 else b"".join(parts)
