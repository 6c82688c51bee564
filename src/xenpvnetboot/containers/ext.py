"""ext2/ext3/ext4 images, read by us from the on-disk format.

A C library that maps a file's blocks when it opens the file cannot be
stopped once it starts: TSK walks a block map up to the size an inode
claims, and an indirect block that points at itself kept it busy for
minutes (hours for larger claims), deaf to SIGTERM.  So nothing here calls
into C: directories are parsed with the plain ext2 format (which also
serves htree and inline directories), each inode is read and its claimed
size checked against the filesystem's real size, and a file's blocks are
found run by run as it is read (:mod:`.extmap`), for block maps, extent
trees and inline data alike.  The work is charged to the image's budget.
"""

from __future__ import annotations

import stat
import struct
from dataclasses import dataclass
from typing import Dict, Iterator, Optional, Tuple

from ..errors import BootError
from ..transports.base import ByteSource
from .budget import Budget
from .extmap import BlockMap, ExtentMap, xattr_value
from .tree import (DIR, FILE, LINK, MAX_DIRECTORY, MAX_LINK_TARGET, OTHER, ImageTree,
                   MappedSource, Node)

_ROOT_INODE = 2
_INCOMPAT_META_BG = 0x10
_INCOMPAT_64BIT = 0x80
_RO_COMPAT_SPARSE_SUPER = 0x1
_COMPAT_SPARSE_SUPER2 = 0x200
_EXTENTS_FL = 0x80000
_INLINE_DATA_FL = 0x10000000
_I_BLOCK = slice(40, 100)  # 60 bytes: block pointers, extent root, fast link, inline data
_XATTR_SYSTEM = 7  # the "system." name index of system.data


class InodeTable:
    """Where each inode is, from the superblock and group descriptors."""

    def __init__(self, view: ByteSource, where: str) -> None:
        self._view = view
        self._where = where
        sb = view.pread(1024, 1024)
        if len(sb) < 1024:
            raise BootError(f"{where}: truncated ext superblock")
        self.count, blocks_lo = struct.unpack_from("<II", sb, 0)
        self.first_data_block, log_block = struct.unpack_from("<II", sb, 20)
        self._blocks_per_group, = struct.unpack_from("<I", sb, 32)
        self._per_group, = struct.unpack_from("<I", sb, 40)
        rev_level, = struct.unpack_from("<I", sb, 76)
        inode_size, = struct.unpack_from("<H", sb, 88)
        compat, incompat, ro_compat = struct.unpack_from("<III", sb, 92)
        desc_size, = struct.unpack_from("<H", sb, 254)
        self._first_meta_bg, = struct.unpack_from("<I", sb, 260)
        blocks_hi, = struct.unpack_from("<I", sb, 0x150)
        self._backup_groups = struct.unpack_from("<II", sb, 0x24C)
        self.block_size = 1024 << min(log_block, 16)
        wide = bool(incompat & _INCOMPAT_64BIT)
        #: Blocks the superblock says the filesystem has.
        self.blocks = blocks_lo | (blocks_hi << 32 if wide else 0)
        self.inode_size = inode_size if rev_level else 128
        self._desc_size = desc_size if wide and desc_size >= 64 else 32
        self._meta_bg = bool(incompat & _INCOMPAT_META_BG)
        self._sparse_super = bool(ro_compat & _RO_COMPAT_SPARSE_SUPER)
        self._sparse_super2 = bool(compat & _COMPAT_SPARSE_SUPER2)
        if (not 128 <= self.inode_size <= self.block_size or not self._per_group
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
            block = (self.first_data_block + first * self._blocks_per_group
                     + self._has_superblock(first))
            return block * self.block_size + (group % per_block) * self._desc_size
        return (self.first_data_block + 1) * self.block_size + group * self._desc_size

    def record(self, number: int) -> bytes:
        """The on-disk bytes of inode *number* (at least the 128 of ext2)."""
        if not 1 <= number <= self.count:
            raise BootError(f"{self._where}: directory entry names inode {number}")
        group, index = divmod(number - 1, self._per_group)
        desc = self._view.pread(self._descriptor_offset(group), self._desc_size)
        if len(desc) < self._desc_size:
            raise BootError(f"{self._where}: group descriptor {group} beyond the image")
        table, = struct.unpack_from("<I", desc, 8)
        if self._desc_size >= 64:
            table |= struct.unpack_from("<I", desc, 0x28)[0] << 32
        raw = self._view.pread(table * self.block_size + index * self.inode_size,
                               self.inode_size)
        if len(raw) < 128:
            raise BootError(f"{self._where}: inode {number} beyond the image")
        return raw

    def inode(self, number: int) -> Tuple[int, int, int]:
        """(mode, size, flags) of inode *number*."""
        found = Inode.parse(number, self.record(number))
        return found.mode, found.size, found.flags


@dataclass(frozen=True)
class Inode:
    """The fields of an inode this reader uses."""

    number: int
    mode: int
    size: int
    flags: int
    #: i_block: block pointers, the extent tree root, or inline data.
    i_block: bytes
    #: Blocks of 512 bytes it takes (including an extended attribute block).
    sectors: int
    xattr_block: int
    raw: bytes

    @classmethod
    def parse(cls, number: int, raw: bytes) -> "Inode":
        mode, size_lo = struct.unpack_from("<HxxI", raw, 0)
        sectors, flags = struct.unpack_from("<II", raw, 28)
        acl_lo, size_hi = struct.unpack_from("<II", raw, 0x68)
        sectors_hi, acl_hi = struct.unpack_from("<HH", raw, 0x74)
        return cls(number, mode, size_lo | size_hi << 32, flags, raw[_I_BLOCK],
                   sectors | sectors_hi << 32, acl_lo | acl_hi << 32, raw)

    def inline_data(self) -> bytes:
        """i_block, then the rest from the ``system.data`` attribute."""
        extra = 0
        if len(self.raw) > 130:
            extra, = struct.unpack_from("<H", self.raw, 128)
        rest = xattr_value(self.raw, 128 + extra, _XATTR_SYSTEM, b"data") if extra else None
        return self.i_block + (rest or b"")


class _Bytes(ByteSource):
    """A file held in its inode (inline data)."""

    def __init__(self, data: bytes, name: str) -> None:
        self._data = data
        self.name = name

    @property
    def size(self) -> int:
        return len(self._data)

    def pread(self, offset: int, length: int) -> bytes:
        return self._data[max(offset, 0):max(offset, 0) + max(length, 0)]


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


class ExtTree(ImageTree):
    """Directory and file nodes carry their :class:`Inode` as ``ref``."""

    kind = "ext2/3/4"

    def __init__(self, source: ByteSource, budget: Optional[Budget] = None) -> None:
        super().__init__(source, budget)
        with self.guard():
            self._inodes = InodeTable(self.view, source.name)
        block = self._inodes.block_size
        #: Blocks that really exist: what the superblock says, if the image has them.
        self._blocks = min(self._inodes.blocks, -(-self.view.size // block))
        self._listings: Dict[int, Dict[bytes, int]] = {}

    def _open_inode(self, number: int, path: Tuple[str, ...]) -> Node:
        """Read inode *number* and check what it claims before anything reads its data."""
        inode = Inode.parse(number, self._inodes.record(number))
        kind = _KINDS.get(stat.S_IFMT(inode.mode), OTHER)
        if kind == OTHER:
            return Node(OTHER, path)
        limit = MAX_DIRECTORY if kind == DIR else self._blocks * self._inodes.block_size
        if inode.size > limit:
            raise BootError(
                f"{self.url('/'.join(path))}: inode {number} claims {inode.size} bytes, "
                f"more than the {limit} its filesystem can hold (corrupt image?)"
            )
        if kind == LINK:
            return Node(LINK, path, target=self._link_target(inode, path))
        return Node(kind, path, size=inode.size, ref=inode)

    def _content(self, inode: Inode, name: str) -> ByteSource:
        """The bytes of *inode*, wherever the inode keeps them."""
        if inode.flags & _INLINE_DATA_FL:
            data = inode.inline_data()
            if len(data) < inode.size:
                raise BootError(f"{name}: inline data shorter than the file (corrupt image?)")
            return _Bytes(data[:inode.size], name)
        block = self._inodes.block_size
        mapping = ExtentMap if inode.flags & _EXTENTS_FL else BlockMap
        blocks = mapping(inode.i_block, block, self._blocks, self._read_block,
                         self.budget, f"{name} (inode {inode.number})")
        return MappedSource(self.view, block, inode.size, blocks.run, name)

    def _read_block(self, number: int) -> bytes:
        block = self._inodes.block_size
        return self.view.pread(number * block, block)

    def _link_target(self, inode: Inode, path: Tuple[str, ...]) -> str:
        """Fast links keep their target in i_block, others in data like a file's."""
        ea_sectors = self._inodes.block_size // 512 if inode.xattr_block else 0
        fast = not inode.flags & _INLINE_DATA_FL and inode.size < len(inode.i_block) and (
            inode.sectors <= ea_sectors or not inode.flags & _EXTENTS_FL)
        if fast:
            raw = inode.i_block[:inode.size]
        else:
            size = min(inode.size, MAX_LINK_TARGET)
            raw = self._content(inode, self.url("/".join(path))).pread(0, size)
        return raw.split(b"\0", 1)[0].decode("utf-8", "surrogateescape")

    def _root(self) -> Node:
        return self._open_inode(_ROOT_INODE, ())

    def _lookup(self, parent: Node, name: str) -> Optional[Node]:
        number = self._listing(parent).get(name.encode("utf-8", "surrogateescape"))
        if number is None:
            return None
        return self._open_inode(number, parent.path + (name,))

    def _listing(self, directory: Node) -> Dict[bytes, int]:
        """Name -> inode of a directory, parsed once."""
        inode: Inode = directory.ref
        cached = self._listings.get(inode.number)
        if cached is None:
            where = self.url("/".join(directory.path))
            data = self._content(inode, where).pread(0, inode.size) if inode.size else b""
            inline = bool(inode.flags & _INLINE_DATA_FL)
            cached = {}
            for name, number in directory_entries(data, self._inodes.block_size, inline):
                self.budget.charge("entries")
                cached.setdefault(name, number)
            self._listings[inode.number] = cached
        return cached

    def _file_source(self, node: Node, name: str) -> ByteSource:
        return self._content(node.ref, name)

    def _release(self) -> None:
        self._listings.clear()


_KINDS = {stat.S_IFDIR: DIR, stat.S_IFREG: FILE, stat.S_IFLNK: LINK}
