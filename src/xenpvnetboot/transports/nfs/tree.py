"""The tree of an NFS directory, random access to a file on it, and the entry point."""

from __future__ import annotations

import posixpath
from typing import Any, Tuple, Union

from ...errors import BootError, NotFound, UsageError
from ..base import ByteSource, FileInfo, Sink, TransportOptions, Tree, clean_path
from .client import Connection, Entry
from .connect import connect
from .spec import NfsSpec, parse_spec, split_path
from .walk import _check_file, resolve


#: Bytes asked for per read call.  The library splits a call into up to eight
#: concurrent RPCs of the negotiated size (1 MiB with NFSv4.1 sessions), so a
#: block of a few MiB keeps several requests in flight; see bench/bench_nfs.py.
BLOCK = 4 << 20


class NfsTree(Tree):
    """The files below one directory of an NFS export."""

    cacheable = True

    def __init__(self, connection: Connection, spec: NfsSpec, root: Tuple[str, ...]) -> None:
        self.connection = connection
        self.spec = spec
        self.root = root
        self._closed = False

    def url(self, path: str) -> str:
        base = self.spec.path.rstrip("/") + "/"
        return self.spec.location(base + path.lstrip("/"))

    def _find(self, path: str) -> Tuple[Tuple[str, ...], Entry, str]:
        """Resolve *path* to a regular file: (components, attributes, url)."""
        if self._closed:
            raise BootError(f"{self.spec.location()}: already closed")
        rel = clean_path(path)
        where = self.url(rel)
        if not rel:
            raise NotFound(f"{where}: is a directory")
        parts, entry = resolve(self.connection, self.root, split_path(rel), len(self.root), where)
        _check_file(entry, where)
        return parts, entry, where

    def stat(self, path: str) -> FileInfo:
        _, entry, _ = self._find(path)
        return FileInfo(size=entry.size, mtime=entry.mtime_ns / 1e9)

    def open_source(self, path: str) -> "NfsSource":
        parts, entry, where = self._find(path)
        return NfsSource(self.connection, parts, entry.size, where)

    def fetch(self, path: str, sink: Sink) -> None:
        """Stream *path* through one reusable buffer (no per-block allocation).

        The buffer is one byte larger than a small file, so that a single
        read both returns it and shows its end.
        """
        with self.open_source(path) as source:
            sink.expect(source.size)
            buffer = bytearray(min(BLOCK, source.size + 1))
            view = memoryview(buffer)
            offset = 0
            while True:
                count = source.readinto(offset, buffer)
                offset += count
                if count and sink.write(view[:count]) != count:
                    break
                if count < len(buffer):
                    break  # reads are short only at the end of the file
        sink.check_complete()

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self.connection.close()


class NfsSource(ByteSource):
    """Random access to one file on the server, by offset (pread over NFS)."""

    def __init__(
        self, connection: Connection, parts: Tuple[str, ...], size: int, name: str,
        owns_connection: bool = False,
    ) -> None:
        self.connection = connection
        self.name = name
        self._size = size
        self._owns_connection = owns_connection
        self._file: Any = connection.open(parts, name)

    @property
    def size(self) -> int:
        return self._size

    def _handle(self) -> Any:
        if self._file is None:
            raise BootError(f"{self.name}: already closed")
        return self._file

    def pread(self, offset: int, length: int) -> bytes:
        if length <= 0 or offset >= self._size:
            return b""
        return self.connection.call(self.name, self._handle().read_at, offset, length)

    def readinto(self, offset: int, buffer: bytearray) -> int:
        """Fill *buffer* from *offset*; the count is short only at the end."""
        return self.connection.call(self.name, self._handle().readinto_at, buffer, offset)

    def close(self) -> None:
        file, self._file = self._file, None
        try:
            if file is not None:
                try:
                    file.close()
                except self.connection.lib.NfsError:
                    pass
        finally:
            if self._owns_connection:
                self.connection.close()

    def __enter__(self) -> "NfsSource":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# -- entry point -----------------------------------------------------------------


def open_nfs(spec: Union[NfsSpec, str], options: TransportOptions, image: bool) -> Tree:
    """The tree an ``nfs:`` (directory) or ``nfs+iso:`` (image) location names."""
    parsed = parse_spec(spec) if isinstance(spec, str) else spec
    if image:
        return _open_image(parsed, options)
    connection, root = connect(parsed, parsed.path, options)
    return NfsTree(connection, parsed, root)


def _open_image(spec: NfsSpec, options: TransportOptions) -> Tree:
    """Open the image file on the export and read it in place as a tree.

    The image path is the location path, so a symlink in its name may lead
    anywhere on the server, as for a directory location.  The byte source
    owns the connection: closing the image tree closes both.
    """
    directory, name = posixpath.split(spec.path)
    where = spec.location(scheme="nfs+iso")
    if not name:
        raise UsageError(f"{where}: names no image file")
    connection, root = connect(spec, directory, options)
    try:
        parts, entry = resolve(connection, root, [name], 0, where, absolute_ok=connection.version != "3")
        _check_file(entry, where)
        source = NfsSource(connection, parts, entry.size, spec.location(), owns_connection=True)
    except BaseException:
        connection.close()
        raise
    if options.image_hook is not None:
        try:
            listing = NfsTree(connection, spec.with_path(directory or "/"), root)
            source = options.image_hook(listing, name, source, True)
        except BaseException:
            source.close()
            raise
    from ...containers import take_image

    return take_image(source, options)
