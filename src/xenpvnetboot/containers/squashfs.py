"""squashfs 4.0 images via PySquashfsImage (gzip, xz, lz4, lzo, zstd).

PySquashfsImage reads from any file object, so it is handed the image
through :meth:`ByteSource.as_file`.  It parses the whole directory tree when
the image is opened (about 0.6 s for 30,000 files), which is fine for the
boot images this tool meets.

File data is not read with its ``iter_file``: that only streams from the
start, so a file inside the image could not be opened for random access (an
image inside the image), and its block cache is shared by every instance.
Instead :class:`SquashfsFileSource` indexes the file's blocks from the block
list and fragment table the library parsed (its ``_read_block_list`` and
``_read_fragment``; present since 0.9.0) and decompresses only the blocks a
read touches, with the library's decompressor.
"""

from __future__ import annotations

from typing import Any, List, Optional, Tuple

from ..errors import BootError
from ..transports.base import ByteSource
from .tree import DIR, FILE, LINK, OTHER, ImageTree, Node, import_optional

#: pip packages of the decompressors PySquashfsImage imports on demand.
_COMPRESSOR_PACKAGES = {"zstandard": "zstandard", "lzo": "python-lzo", "lz4": "lz4"}
_UNCOMPRESSED = 1 << 24  # flag in a block's size word
_INVALID_BLOCK = 0xFFFFFFFF


class SquashfsTree(ImageTree):
    kind = "squashfs"

    def __init__(self, source: ByteSource) -> None:
        super().__init__(source)
        library = import_optional("PySquashfsImage", "PySquashfsImage", "squashfs")
        self._image: Any = None
        with self.guard():
            try:
                self._image = library.SquashFsImage(self.view.as_file())
            except ImportError as exc:
                package = _COMPRESSOR_PACKAGES.get(exc.name or "", exc.name)
                raise BootError(
                    f"{source.name}: this squashfs image needs the Python package "
                    f"{package} (pip install {package})"
                ) from None

    def _root(self) -> Node:
        return Node(DIR, ref=self._image.root)

    def _lookup(self, parent: Node, name: str) -> Optional[Node]:
        entry = parent.ref.children.get(name)
        if entry is None:
            return None
        path = parent.path + (name,)
        if entry.is_dir:
            return Node(DIR, path, ref=entry)
        if entry.is_symlink:
            target = entry.readlink()
            if isinstance(target, bytes):
                target = target.decode("utf-8", "surrogateescape")
            return Node(LINK, path, target=target)
        if entry.is_file:
            return Node(FILE, path, size=int(entry.size), ref=entry)
        return Node(OTHER, path)

    def _file_source(self, node: Node, name: str) -> ByteSource:
        return SquashfsFileSource(self._image, self.view, node.ref.inode, node.size, name)

    def _release(self) -> None:
        self._image = None


class SquashfsFileSource(ByteSource):
    """Random access to one regular file: only the touched blocks are inflated."""

    def __init__(self, image: Any, view: ByteSource, inode: Any, size: int, name: str) -> None:
        self.name = name
        self._view = view
        self._size = size
        self._block_size = int(image.sblk.block_size)
        self._decompress = image._comp.uncompress
        #: (offset in the image, size word) of each full block, in file order.
        self._blocks: List[Tuple[int, int]] = []
        start = int(inode.start)
        if int(inode.blocks) * 4 > view.size:  # its block list could not fit in the image
            raise BootError(f"{name}: corrupt squashfs inode (size {size})")
        words = image._read_block_list(inode.block_start, inode.block_offset, inode.blocks)
        for word in words:
            if word == _INVALID_BLOCK:
                raise BootError(f"{name}: corrupt squashfs block list")
            self._blocks.append((start, word))
            start += word & ~_UNCOMPRESSED
        #: (offset, size word, slice start) of the tail fragment, if any.
        self._fragment: Optional[Tuple[int, int, int]] = None
        if inode.frag_bytes:
            frag_start, frag_word = image._read_fragment(inode.fragment)
            self._fragment = (frag_start, frag_word, int(inode.offset))
        self._cached: Tuple[int, bytes] = (-1, b"")

    @property
    def size(self) -> int:
        return self._size

    def _expected(self, index: int) -> int:
        return max(0, min(self._block_size, self._size - index * self._block_size))

    def _inflate(self, offset: int, word: int) -> bytes:
        stored = word & ~_UNCOMPRESSED
        data = self._view.pread(offset, stored)
        if len(data) != stored:
            raise BootError(f"{self.name}: squashfs image is truncated")
        if word & _UNCOMPRESSED:
            return data
        return self._decompress(data, stored, self._block_size)

    def _block(self, index: int) -> bytes:
        """The bytes of block *index* of the file (the fragment is the last)."""
        if self._cached[0] == index:
            return self._cached[1]
        expected = self._expected(index)
        if index < len(self._blocks):
            offset, word = self._blocks[index]
            data = self._inflate(offset, word) if word else bytes(expected)
            data = data[:expected]
        elif self._fragment is not None:
            offset, word, start = self._fragment
            data = self._inflate(offset, word)[start:start + expected]
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
