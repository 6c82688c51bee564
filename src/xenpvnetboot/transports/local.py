"""Local directories and files: the ``/path`` and ``file:///path`` locations."""

from __future__ import annotations

import errno
import os
import stat as stat_mod
from typing import Optional

from ..errors import BootError, NotFound
from .base import COPY_CHUNK, ByteSource, FileInfo, Sink, Tree

CHUNK = 1 << 20


def _describe(exc: OSError) -> str:
    return exc.strerror or str(exc)


class LocalTree(Tree):
    """A directory on this host.

    Every path is resolved with symlinks followed and must stay below the
    root: an install tree may link inside itself (Debian's ``current``), but
    never make us read ``/etc/shadow``.
    """

    def __init__(self, root: str) -> None:
        self.root = os.path.realpath(root)

    def url(self, path: str) -> str:
        return os.path.join(self.root, path) if path else self.root

    def _resolve(self, path: str) -> str:
        full = os.path.realpath(os.path.join(self.root, path))
        if full != self.root and not full.startswith(self.root.rstrip("/") + "/"):
            raise BootError(f"{self.url(path)}: resolves to {full}, outside {self.root}")
        return full

    def stat(self, path: str) -> FileInfo:
        full = self._resolve(path)
        try:
            st = os.stat(full)
        except FileNotFoundError:
            raise NotFound(f"{self.url(path)}: no such file") from None
        except OSError as exc:
            raise BootError(f"{self.url(path)}: {_describe(exc)}") from None
        if stat_mod.S_ISDIR(st.st_mode):
            raise NotFound(f"{self.url(path)}: is a directory")
        return FileInfo(size=st.st_size, mtime=st.st_mtime)

    def fetch(self, path: str, sink: Sink) -> None:
        with self.open_source(path) as source:
            sink.expect(source.size)
            offset = 0
            while True:
                data = source.pread(offset, CHUNK)
                if not data:
                    break
                offset += len(data)
                if sink.write(data) != len(data):
                    break
        sink.check_complete()

    def open_source(self, path: str) -> "LocalSource":
        full = self._resolve(path)
        if os.path.isdir(full):
            raise NotFound(f"{self.url(path)}: is a directory")
        return LocalSource(full)


class LocalSource(ByteSource):
    """A regular file or block device, opened read-only, read by offset."""

    def __init__(self, path: str) -> None:
        self.name = path
        try:
            self._fd: Optional[int] = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            raise NotFound(f"{path}: no such file") from None
        except OSError as exc:
            raise BootError(f"{path}: {_describe(exc)}") from None
        st = os.fstat(self._fd)
        if stat_mod.S_ISBLK(st.st_mode):
            self._size = os.lseek(self._fd, 0, os.SEEK_END)
        else:
            self._size = st.st_size

    @property
    def size(self) -> int:
        return self._size

    @property
    def fileno(self) -> int:
        if self._fd is None:
            raise BootError(f"{self.name}: already closed")
        return self._fd

    def pread(self, offset: int, length: int) -> bytes:
        # os.pread allocates *length* bytes first: never more than the file holds.
        length = max(0, min(length, self._size - offset))
        try:
            return os.pread(self.fileno, length, offset)
        except OSError as exc:
            if exc.errno == errno.EISDIR:
                raise NotFound(f"{self.name}: is a directory") from None
            raise BootError(f"{self.name}: read failed: {_describe(exc)}") from None

    def copy_range(self, offset: int, length: int, sink: Sink) -> None:
        """Stream a range through one reused buffer: no allocation (and page
        faults) per megabyte, which a file inside a local image would cost."""
        buffer = bytearray(min(COPY_CHUNK, max(length, 1)))
        view = memoryview(buffer)
        end = offset + length
        while offset < end:
            try:
                count = os.preadv(self.fileno, [view[:min(len(buffer), end - offset)]], offset)
            except OSError as exc:
                raise BootError(f"{self.name}: read failed: {_describe(exc)}") from None
            if count <= 0:
                raise BootError(f"{self.name}: ends at byte {offset}, before the {end} needed "
                                "(truncated image?)")
            offset += count
            if sink.write(view[:count]) != count:
                raise sink.error or BootError(f"{sink.name}: write refused")

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> "LocalSource":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
