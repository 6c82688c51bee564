"""ext2/ext3/ext4: names looked up by us, inodes checked before TSK opens them.

pytsk3 maps the blocks of every file it opens at once.  For a file with
block pointers (ext2/ext3, no extents) it walks them up to the size the
inode claims, and a corrupt or hostile inode claiming petabytes behind a
self-referencing indirect block keeps it busy for hours, allocating all the
while.  So the directory walk is done here: each directory's bytes are read
through TSK (which knows extents, htree leaves and inline data), the entries
are parsed with the plain ext2 directory format, and the inode an entry
names is read and checked (type, and a size no larger than the image)
before TSK is asked to open it by number.  Reading file data stays TSK's.
"""

from __future__ import annotations

import stat
import struct
from typing import Dict, Iterator, Optional, Tuple

from ..errors import BootError
from ..transports.base import ByteSource
from .tree import DIR, FILE, LINK, OTHER, Node
from .tsk import EXT, MAX_DIRECTORY, TskTree

_ROOT_INODE = 2
_INCOMPAT_META_BG = 0x10
_INCOMPAT_64BIT = 0x80
_RO_COMPAT_SPARSE_SUPER = 0x1
_COMPAT_SPARSE_SUPER2 = 0x200
_INLINE_DATA_FL = 0x10000000


class InodeTable:
    """Where each inode is, from the superblock and group descriptors."""

    def __init__(self, view: ByteSource, where: str) -> None:
        self._view = view
        self._where = where
        sb = view.pread(1024, 1024)
        if len(sb) < 1024:
            raise BootError(f"{where}: truncated ext superblock")
        self.count, = struct.unpack_from("<I", sb, 0)
        self._first_data_block, log_block = struct.unpack_from("<II", sb, 20)
        self._blocks_per_group, = struct.unpack_from("<I", sb, 32)
        self._per_group, = struct.unpack_from("<I", sb, 40)
        rev_level, = struct.unpack_from("<I", sb, 76)
        inode_size, = struct.unpack_from("<H", sb, 88)
        compat, incompat, ro_compat = struct.unpack_from("<III", sb, 92)
        desc_size, = struct.unpack_from("<H", sb, 254)
        self._first_meta_bg, = struct.unpack_from("<I", sb, 260)
        self._backup_groups = struct.unpack_from("<II", sb, 0x24C)
        self.block_size = 1024 << min(log_block, 16)
        self._inode_size = inode_size if rev_level else 128
        self._desc_size = desc_size if incompat & _INCOMPAT_64BIT and desc_size >= 64 else 32
        self._meta_bg = bool(incompat & _INCOMPAT_META_BG)
        self._sparse_super = bool(ro_compat & _RO_COMPAT_SPARSE_SUPER)
        self._sparse_super2 = bool(compat & _COMPAT_SPARSE_SUPER2)
        if (not 128 <= self._inode_size <= self.block_size or not self._per_group
                or not self._blocks_per_group or log_block > 6):
            raise BootError(f"{where}: corrupt ext superblock")

    def _has_superblock(self, group: int) -> bool:
        if group == 0:
            return True
        if self._sparse_super2:
            return group in self._backup_groups
        if group == 1 or not self._sparse_super:
            return True
        for base in (3, 5, 7):
            power = base
            while power < group:
                power *= base
            if power == group:
                return True
        return False

    def _descriptor_offset(self, group: int) -> int:
        per_block = self.block_size // self._desc_size
        meta_group = group // per_block
        if self._meta_bg and meta_group >= self._first_meta_bg:
            first = meta_group * per_block
            block = (self._first_data_block + first * self._blocks_per_group
                     + self._has_superblock(first))
            return block * self.block_size + (group % per_block) * self._desc_size
        return (self._first_data_block + 1) * self.block_size + group * self._desc_size

    def inode(self, number: int) -> Tuple[int, int, int]:
        """(mode, size, flags) of inode *number*."""
        if not 1 <= number <= self.count:
            raise BootError(f"{self._where}: directory entry names inode {number}")
        group, index = divmod(number - 1, self._per_group)
        desc = self._view.pread(self._descriptor_offset(group), self._desc_size)
        if len(desc) < self._desc_size:
            raise BootError(f"{self._where}: group descriptor {group} beyond the image")
        table, = struct.unpack_from("<I", desc, 8)
        if self._desc_size >= 64:
            table |= struct.unpack_from("<I", desc, 0x28)[0] << 32
        raw = self._view.pread(table * self.block_size + index * self._inode_size, 0x70)
        if len(raw) < 0x70:
            raise BootError(f"{self._where}: inode {number} beyond the image")
        mode, size_lo = struct.unpack_from("<HxxI", raw, 0)
        flags, = struct.unpack_from("<I", raw, 0x20)
        size_hi, = struct.unpack_from("<I", raw, 0x6C)
        return mode, size_lo | size_hi << 32, flags


def directory_entries(data: bytes, block_size: int, inline: bool) -> Iterator[Tuple[bytes, int]]:
    """(name, inode) of the live entries of an ext directory's bytes.

    The same linear format serves htree directories (index blocks look like
    one empty entry) and inline ones (after the 4-byte parent inode).
    """
    start = 4 if inline else 0
    while start < len(data):
        end = len(data) if inline else min(start + block_size, len(data))
        pos = start
        while pos + 8 <= end:
            inode, rec_len, name_len = struct.unpack_from("<IHB", data, pos)
            if rec_len in (0, 65535) and block_size == 65536:
                rec_len = 65536
            if rec_len < 8 or pos + rec_len > end:
                raise ValueError(f"corrupt directory entry at byte {pos}")
            if inode and 8 + name_len <= rec_len:
                yield data[pos + 8:pos + 8 + name_len], inode
            pos += rec_len
        start = end


class ExtTree(TskTree):
    """Directory nodes carry ``ref = (TSK file, inode number, inline?)``."""

    def __init__(self, source: ByteSource) -> None:
        super().__init__(source, EXT)
        self._inodes = InodeTable(self.view, source.name)
        self._listings: Dict[int, Dict[bytes, int]] = {}

    def _open_inode(self, number: int, path: Tuple[str, ...]) -> Node:
        """Check inode *number* from its bytes, then let TSK open it."""
        mode, size, flags = self._inodes.inode(number)
        kind = _KINDS.get(stat.S_IFMT(mode), OTHER)
        if kind == OTHER:
            return Node(OTHER, path)
        if size > (MAX_DIRECTORY if kind == DIR else self.view.size):
            raise BootError(
                f"{self.url('/'.join(path))}: inode {number} claims {size} bytes (corrupt image?)"
            )
        handle = self._fs.open_meta(inode=number)
        if kind == LINK:
            return Node(LINK, path, target=self._link_target(handle, size))
        if kind == DIR:
            return Node(DIR, path, size=size, ref=(handle, number, bool(flags & _INLINE_DATA_FL)))
        return Node(FILE, path, size=size, ref=handle)

    def _root(self) -> Node:
        return self._open_inode(_ROOT_INODE, ())

    def _lookup(self, parent: Node, name: str) -> Optional[Node]:
        number = self._listing(parent).get(name.encode("utf-8", "surrogateescape"))
        if number is None:
            return None
        return self._open_inode(number, parent.path + (name,))

    def _listing(self, directory: Node) -> Dict[bytes, int]:
        """Name -> inode of a directory, parsed once."""
        handle, number, inline = directory.ref
        cached = self._listings.get(number)
        if cached is None:
            data = handle.read_random(0, directory.size) if directory.size else b""
            cached = {}
            for name, inode in directory_entries(data, self._inodes.block_size, inline):
                cached.setdefault(name, inode)
            self._listings[number] = cached
        return cached

    def _release(self) -> None:
        self._listings.clear()
        super()._release()


_KINDS = {stat.S_IFDIR: DIR, stat.S_IFREG: FILE, stat.S_IFLNK: LINK}
