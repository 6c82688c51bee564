"""FAT12/16/32 images via The Sleuth Kit (pytsk3).

TSK reads FAT entirely in userspace from any object that can answer "bytes
at offset": here our ByteSource, so no mount, no loop device and no
privilege is needed.  It handles FAT long names (matched
case-insensitively, as on Windows) and its own path search is what FAT
needs.  Every byte it reads passes through the image's metered view, so
the budget bounds its work; a file's size is checked against the image
before its data is read.  (ext images used to be read through TSK too; see
:mod:`.ext` for why they no longer are.)
"""

from __future__ import annotations

from typing import Any, Optional

from ..errors import BootError
from ..transports.base import ByteSource
from .budget import Budget
from .tree import (DIR, FILE, LINK, MAX_DIRECTORY, MAX_LINK_TARGET, OTHER, ImageTree, Node,
                   import_optional)

EXT = "ext2/3/4"
FAT = "FAT"


def _image_class(pytsk3: Any) -> type:
    """An Img_Info that reads through a ByteSource (built once pytsk3 is loaded)."""

    class SourceImage(pytsk3.Img_Info):  # type: ignore[misc, name-defined]
        def __init__(self, source: ByteSource) -> None:
            self._source = source
            #: Our exception from the last failed read: pytsk3 would wrap it
            #: in a RuntimeError, so it is kept and raised again as it was.
            self.error: Optional[BaseException] = None
            super().__init__(url="", type=pytsk3.TSK_IMG_TYPE_EXTERNAL)

        def read(self, offset: int, size: int) -> bytes:
            try:
                return self._source.pread(offset, size)
            except BaseException as exc:
                self.error = exc
                raise

        def get_size(self) -> int:
            return self._source.size

    return SourceImage


class TskTree(ImageTree):
    def __init__(self, source: ByteSource, kind: str, budget: Optional[Budget] = None) -> None:
        super().__init__(source, budget)
        self.kind = kind
        pytsk3 = import_optional("pytsk3", "pytsk3", kind)
        self._tsk = pytsk3
        fs_type = pytsk3.TSK_FS_TYPE_EXT_DETECT if kind == EXT else pytsk3.TSK_FS_TYPE_FAT_DETECT
        self._img: Any = None
        self._fs: Any = None
        with self.guard():
            self._img = _image_class(pytsk3)(self.view)
            self._fs = pytsk3.FS_Info(self._img, offset=0, type=fs_type)

    def _pending_error(self) -> Optional[BaseException]:
        error = self._img.error if self._img is not None else None
        if error is not None:
            self._img.error = None
        return error

    def _root(self) -> Node:
        root = self._fs.open("/")
        return Node(DIR, size=int(root.info.meta.size) if root.info.meta is not None else 0)

    def _lookup(self, parent: Node, name: str) -> Optional[Node]:
        path = parent.path + (name,)
        if parent.size > MAX_DIRECTORY:
            raise BootError(
                f"{self.url('/'.join(parent.path))}: directory of {parent.size} bytes "
                "(corrupt image?)"
            )
        try:
            handle = self._fs.open("/" + "/".join(path))
        except OSError as exc:
            if self._img.error is None and "not found" in str(exc):
                return None
            raise
        tsk = self._tsk
        info = handle.info
        if info.name is not None and not int(info.name.flags) & int(tsk.TSK_FS_NAME_FLAG_ALLOC):
            return None  # a deleted entry TSK can still see
        meta = info.meta
        if meta is None:
            raise BootError(f"{self.url('/'.join(path))}: directory entry without inode")
        meta_type = int(meta.type)
        size = int(meta.size)
        if size < 0:
            raise BootError(f"{self.url('/'.join(path))}: corrupt inode (size {size})")
        if meta_type == int(tsk.TSK_FS_META_TYPE_DIR):
            return Node(DIR, path, size=size)
        if meta_type == int(tsk.TSK_FS_META_TYPE_LNK):
            return Node(LINK, path, target=self._link_target(handle, size))
        if meta_type == int(tsk.TSK_FS_META_TYPE_REG):
            return Node(FILE, path, size=size, ref=handle)
        return Node(OTHER, path)

    @staticmethod
    def _link_target(handle: Any, size: int) -> str:
        """Fast links keep their target in the inode (``meta.link``), slow ones
        in a data block; anything longer than PATH_MAX is corrupt."""
        raw = handle.info.meta.link
        if not raw:
            raw = handle.read_random(0, min(size, MAX_LINK_TARGET)) if size > 0 else b""
        if isinstance(raw, str):
            return raw
        return bytes(raw).split(b"\0", 1)[0].decode("utf-8", "surrogateescape")

    def _file_source(self, node: Node, name: str) -> ByteSource:
        return TskFileSource(node.ref, node.size, name)

    def _release(self) -> None:
        self._fs = None
        if self._img is not None:
            try:
                self._img.close()
            finally:
                self._img = None


class TskFileSource(ByteSource):
    """A regular file inside the filesystem, read with ``read_random``."""

    def __init__(self, handle: Any, size: int, name: str) -> None:
        self._handle = handle
        self._size = size
        self.name = name

    @property
    def size(self) -> int:
        return self._size

    def pread(self, offset: int, length: int) -> bytes:
        length = min(length, self._size - offset)
        if offset < 0 or length <= 0:
            return b""
        return self._handle.read_random(offset, length)
