"""A cache of fetched files, shared by every guest booted on this host.

Twenty guests installed from the same tree should cost one download.  Files
are stored by source URL and revalidated on every boot against what the
server says now (the existence check the layout step makes anyway: size,
modification time and, over http, the ETag).  A hit is hard-linked into the
output directory (copied when the cache is on another filesystem), so libxl
can unlink its copy while the cache keeps the file.

Entries are written under a temporary name and renamed, and described by a
small JSON file written last, so a partial entry is never taken for a
complete one.  A lock per entry makes concurrent boots of the same file wait
for the first download and reuse it.  The cache never grows past its size
limit: the least recently used entries go first.

It is off for transports that cannot tell whether a file changed (TFTP,
which gives no modification time) and under ``--runas``, where the shared
cache must not take files described by an unprivileged child.
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import json
import os
import shutil
import time
from typing import Dict, Iterator, List, Optional, Tuple

from .errors import BootError
from .layout import FileRef
from .transports import FileInfo

DEFAULT_CACHE_DIR = "/var/cache/xenpvnetboot"
DEFAULT_CACHE_SIZE = 4 << 30
#: How long a boot waits for another one downloading the same file.
LOCK_WAIT = 600.0


class Entry:
    """One cached file: ``<key>.data`` and its description ``<key>.json``."""

    def __init__(self, cache: "Cache", url: str) -> None:
        self.cache = cache
        self.url = url
        key = hashlib.sha256(url.encode()).hexdigest()
        self.base = os.path.join(cache.directory, key[:2], key)
        self.data = self.base + ".data"
        self.meta_path = self.base + ".json"
        self._lock_fd: Optional[int] = None

    # -- locking ---------------------------------------------------------------

    def lock(self) -> None:
        os.makedirs(os.path.dirname(self.base), mode=0o700, exist_ok=True)
        fd = os.open(self.base + ".lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        deadline = time.monotonic() + LOCK_WAIT
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except OSError as exc:
                if exc.errno not in (errno.EAGAIN, errno.EACCES) or time.monotonic() > deadline:
                    os.close(fd)
                    raise BootError(f"{self.base}.lock: cannot lock the cache entry: {exc}") from None
                time.sleep(0.05)
        self._lock_fd = fd

    def unlock(self) -> None:
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    # -- reading ---------------------------------------------------------------

    def meta(self) -> Optional[dict]:
        try:
            with open(self.meta_path, "rb") as handle:
                meta = json.loads(handle.read(65536).decode())
        except (OSError, ValueError, UnicodeDecodeError):
            return None
        return meta if isinstance(meta, dict) else None

    def valid_for(self, info: FileInfo, sha256: Optional[str]) -> bool:
        """True when the stored file is complete and still what the server has."""
        meta = self.meta()
        if meta is None or meta.get("url") != self.url:
            return False
        try:
            size = os.stat(self.data).st_size
        except OSError:
            return False
        if size != meta.get("size") or (info.size is not None and info.size != size):
            return False
        if info.etag and meta.get("etag"):
            if info.etag != meta["etag"]:
                return False
        elif info.mtime is None or info.mtime != meta.get("mtime"):
            return False
        if sha256 and meta.get("sha256") != sha256:
            return _file_sha256(self.data) == sha256
        return True

    def link_to(self, path: str) -> None:
        """Put the cached bytes at *path* (replacing it): a hard link, else a copy."""
        os.utime(self.meta_path)  # last use, for eviction
        tmp = path + ".cache"
        try:
            os.link(self.data, tmp)
        except OSError as exc:
            if exc.errno not in (errno.EXDEV, errno.EPERM, errno.EMLINK, errno.ENOTSUP):
                raise
            shutil.copyfile(self.data, tmp)
        os.replace(tmp, path)

    # -- writing ---------------------------------------------------------------

    def store(self, path: str, info: FileInfo, sha256: Optional[str]) -> None:
        """Keep a complete downloaded file (at *path*) as this entry's data."""
        for stale in (self.meta_path, self.data):
            try:
                os.unlink(stale)
            except FileNotFoundError:
                pass
        tmp = self.data + ".tmp"
        try:
            os.link(path, tmp)
        except OSError as exc:
            if exc.errno not in (errno.EXDEV, errno.EPERM, errno.EMLINK, errno.ENOTSUP):
                raise
            shutil.copyfile(path, tmp)
            os.chmod(tmp, 0o600)
        os.replace(tmp, self.data)
        meta = {"url": self.url, "size": os.stat(self.data).st_size, "mtime": info.mtime,
                "etag": info.etag, "sha256": sha256, "stored": time.time()}
        tmp_meta = self.meta_path + ".tmp"
        with open(tmp_meta, "w") as handle:
            json.dump(meta, handle)
        os.replace(tmp_meta, self.meta_path)


class Cache:
    """The cache directory, created mode 0700 on first use."""

    def __init__(self, directory: str, max_size: int = DEFAULT_CACHE_SIZE) -> None:
        self.directory = os.path.abspath(directory)
        self.max_size = max_size
        try:
            os.makedirs(self.directory, mode=0o700, exist_ok=True)
        except OSError as exc:
            raise BootError(f"{self.directory}: cannot create the cache: {exc.strerror or exc}") from None

    @staticmethod
    def cacheable(ref: FileRef) -> bool:
        """Only files whose change the transport can see are worth caching."""
        info = ref.info
        return getattr(ref.tree, "cacheable", False) and info.size is not None and (info.etag is not None or info.mtime is not None)

    def entries_for(self, refs: List[Tuple[str, FileRef]]) -> Dict[str, Entry]:
        """Lock the entries of the cacheable files (in a fixed order: no deadlock)."""
        entries = {
            role: Entry(self, _cache_key(ref)) for role, ref in refs if self.cacheable(ref)
        }
        locked: List[Entry] = []
        try:
            for entry in sorted(entries.values(), key=lambda e: e.base):
                entry.lock()
                locked.append(entry)
        except BaseException:
            for entry in locked:
                entry.unlock()
            raise
        return entries

    def evict(self) -> None:
        """Drop least recently used entries until the cache fits its limit."""
        found = []
        total = 0
        for meta_path in _iter_files(self.directory, ".json"):
            data = meta_path[: -len(".json")] + ".data"
            try:
                size = os.stat(data).st_size
                used = os.stat(meta_path).st_mtime
            except OSError:
                continue
            total += size
            found.append((used, meta_path, data, size))
        for used, meta_path, data, size in sorted(found):
            if total <= self.max_size:
                break
            lock_path = meta_path[: -len(".json")] + ".lock"
            fd = os.open(lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                os.close(fd)
                continue  # in use by another boot
            try:
                for path in (meta_path, data):
                    try:
                        os.unlink(path)
                    except FileNotFoundError:
                        pass
                total -= size
            finally:
                os.close(fd)


def _cache_key(ref: FileRef) -> str:
    """The source URL as shown (passwords are never part of a key or a file)."""
    return ref.url


def _iter_files(directory: str, suffix: str) -> Iterator[str]:
    for sub in os.scandir(directory):
        if not sub.is_dir(follow_symlinks=False):
            continue
        for entry in os.scandir(sub.path):
            if entry.name.endswith(suffix) and entry.is_file(follow_symlinks=False):
                yield entry.path


def _file_sha256(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
