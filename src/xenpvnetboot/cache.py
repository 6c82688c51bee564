"""A cache of fetched files, shared by every guest booted on this host.

Twenty guests installed from the same tree should cost one download.  Files
are stored by source URL and by how their bytes were trusted, and revalidated
on every boot against what the server says now (size, modification time and,
over http, the ETag).  A hit is hard-linked into the output directory, so
libxl can unlink its copy while the cache keeps the file.

The cache is root's, and only a directory the administrator prepared is used
(see :mod:`.cachedir`): every file in it is created and opened relative to the
directory's descriptor, without following symbolic links, under a fresh
random name that is then renamed into place.  So a file planted by someone
else, or a link to one, is never read or written.

What is stored: files fetched with TLS verification (or over a protocol
without TLS), complete, and matching any checksum that was asked for.  A
download under ``--insecure`` neither reads nor fills the cache; one with
``--ca-cert`` uses entries of its own CA only.

Locks are per file and held only while that file is fetched.  A boot that
finds a file locked waits only while the holder makes progress (the holder
touches the lock as data arrives); a stalled holder is left alone and the
file is fetched without the cache instead.
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import json
import os
import time
from typing import Dict, Iterator, List, Optional, Tuple

from .cachedir import CacheDir, open_cache_dir
from .layout import FileRef
from .transports import FileInfo

DEFAULT_CACHE_DIR = "/var/cache/xenpvnetboot"
DEFAULT_CACHE_SIZE = 4 << 30
#: A waiting boot gives up on a lock whose holder received nothing for this long.
STALL_SECONDS = 5.0
#: The holder shows progress after each this many bytes.
PROGRESS_BYTES = 64 << 10
#: Temporary files older than this were left by a boot that was killed.
STALE_TEMPORARY = 3600.0
#: Largest description file read (and largest record of check reports).
MAX_META = 64 << 10
#: Suffix of an entry's record of the ``--check`` reports of its bytes.
VERDICTS = ".check"
_POLL = 0.05
_OPEN = os.O_CLOEXEC | os.O_NOFOLLOW


def trust_of(scheme: str, insecure: bool, ca_data: Optional[bytes]) -> Optional[str]:
    """How a file fetched so was trusted, as part of its cache key; None: not cacheable."""
    if insecure:
        return None
    if scheme == "https" and ca_data is not None:
        return "ca:" + hashlib.sha256(ca_data).hexdigest()
    return "tls" if scheme == "https" else "plain"


class Entry:
    """One cached file: ``<key>.data``, its description ``<key>.json`` and the
    reports of the boot check on its bytes, ``<key>.check`` (see :meth:`verdict`)."""

    def __init__(self, cache: "Cache", url: str, trust: str) -> None:
        self.cache = cache
        self.url = url
        self.trust = trust
        self.key = hashlib.sha256(f"{trust}\0{url}".encode()).hexdigest()
        self.data = self.key + ".data"
        self.meta_name = self.key + ".json"
        self.verdicts_name = self.key + VERDICTS
        self._lock_fd: Optional[int] = None
        self._touched = 0

    @property
    def _dir(self) -> int:
        return self.cache.dir.sub(self.key[:2])

    # -- locking ---------------------------------------------------------------

    def try_lock(self) -> bool:
        """Take the lock if it is free, else wait while its holder makes progress.

        Returns False when the holder stalled: fetch without the cache then.
        """
        fd = os.open(self.key + ".lock", os.O_RDWR | os.O_CREAT | _OPEN, 0o600, dir_fd=self._dir)
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except OSError as exc:
                if exc.errno not in (errno.EAGAIN, errno.EACCES):
                    os.close(fd)
                    raise
            if time.time() - os.fstat(fd).st_mtime > STALL_SECONDS:
                os.close(fd)
                return False
            time.sleep(_POLL)
        self._lock_fd = fd
        self._touched = 0
        os.utime(fd)
        return True

    def progress(self, received: int) -> None:
        """Show waiting boots that this download moves (called as bytes arrive)."""
        if self._lock_fd is not None and received - self._touched >= PROGRESS_BYTES:
            self._touched = received
            os.utime(self._lock_fd)

    def unlock(self) -> None:
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    # -- reading ---------------------------------------------------------------

    def meta(self) -> Optional[dict]:
        return self._read_json(self.meta_name)

    def _read_json(self, name: str) -> Optional[dict]:
        """The JSON object in the cache's own file *name*, or None."""
        try:
            fd = os.open(name, os.O_RDONLY | _OPEN, dir_fd=self._dir)
        except OSError:
            return None
        try:
            if not self.cache.dir.trusted_file(fd):
                return None
            value = json.loads(os.read(fd, MAX_META).decode())
        except (OSError, ValueError, UnicodeDecodeError):
            return None
        finally:
            os.close(fd)
        return value if isinstance(value, dict) else None

    # -- the reports of the boot check -------------------------------------------
    #
    # The check's report on a file depends on its bytes alone, so it is kept
    # keyed by their SHA-256 (computed while they streamed in, and kept in the
    # description as ``content_sha256``) and by what the check read (*kind*:
    # "kernel", "ramdisk-head", "ramdisk-full").  A record for other bytes
    # than the entry's now is never used, whoever wrote it when; storing the
    # entry anew, or removing it, removes its record.

    def content_sha256(self, compute: bool = False) -> Optional[str]:
        """The SHA-256 of the stored bytes: computed as they arrived, or the
        checksum they were verified against.  An entry stored without either
        has it computed now with *compute*, and kept (the caller holds the lock)."""
        meta = self.meta()
        if meta is None:
            return None
        for field in ("content_sha256", "sha256"):
            if isinstance(meta.get(field), str):
                return meta[field]
        if not compute:
            return None
        return self._digest_once(meta)

    def verdict(self, kind: str, content_sha256: Optional[str]) -> Optional[object]:
        """The report of *kind* kept for bytes of digest *content_sha256* (the entry's), if any."""
        record = self._read_json(self.verdicts_name) if content_sha256 else None
        if record is None or record.get("content_sha256") != content_sha256:
            return None
        reports = record.get("reports")
        return reports.get(kind) if isinstance(reports, dict) else None

    def keep_verdict(self, kind: str, content_sha256: str, report: object) -> None:
        """Record *report* (a JSON value) of *kind* for the bytes of digest *content_sha256*."""
        record = self._read_json(self.verdicts_name)
        reports = {}
        if record is not None and record.get("content_sha256") == content_sha256 \
                and isinstance(record.get("reports"), dict):
            reports = record["reports"]
        reports[kind] = report
        data = json.dumps({"content_sha256": content_sha256, "reports": reports}).encode()
        if len(data) <= MAX_META:
            self.cache.dir.write_new(self._dir, self.verdicts_name, data)

    def valid_for(self, info: FileInfo, sha256: Optional[str]) -> bool:
        """True when the stored file is complete and still what the server has."""
        meta = self.meta()
        if meta is None or meta.get("url") != self.url or meta.get("trust") != self.trust:
            return False
        try:
            st = os.stat(self.data, dir_fd=self._dir, follow_symlinks=False)
        except OSError:
            return False
        if not self.cache.dir.trusted_stat(st):
            return False
        size = st.st_size
        if size != meta.get("size") or (info.size is not None and info.size != size):
            return False
        if info.etag and meta.get("etag"):
            if info.etag != meta["etag"]:
                return False
        elif info.mtime is None or info.mtime != meta.get("mtime"):
            return False
        if sha256 and sha256 not in (meta.get("sha256"), meta.get("content_sha256")):
            return self._digest_once(meta) == sha256
        return True

    def _digest_once(self, meta: dict) -> str:
        """The stored bytes' SHA-256: the one computed as they arrived, else computed
        now and kept (the caller holds the lock), so that the next boot asking for a
        checksum does not read the whole file again."""
        known = meta.get("content_sha256")
        if isinstance(known, str):
            return known
        meta["content_sha256"] = digest = self._data_sha256()
        self.cache.dir.write_new(self._dir, self.meta_name, json.dumps(meta).encode())
        return digest

    def _data_sha256(self) -> str:
        digest = hashlib.sha256()
        fd = os.open(self.data, os.O_RDONLY | _OPEN, dir_fd=self._dir)
        try:
            for block in iter(lambda: os.read(fd, 1 << 20), b""):
                digest.update(block)
        finally:
            os.close(fd)
        return digest.hexdigest()

    def link_to(self, path: str) -> None:
        """Put the cached bytes at *path* (replacing it): a hard link, else a copy."""
        os.utime(self.meta_name, dir_fd=self._dir, follow_symlinks=False)  # last use
        tmp = f"{path}.{os.urandom(6).hex()}.cache"
        try:
            os.link(self.data, tmp, src_dir_fd=self._dir, follow_symlinks=False)
        except OSError as exc:
            if exc.errno not in _NO_LINK:
                raise
            source = os.open(self.data, os.O_RDONLY | _OPEN, dir_fd=self._dir)
            try:
                _copy(source, tmp, None)
            finally:
                os.close(source)
        os.replace(tmp, path)

    # -- writing ---------------------------------------------------------------

    def store(self, path: str, info: FileInfo, sha256: Optional[str],
              content_sha256: Optional[str] = None) -> None:
        """Keep the complete downloaded file at *path* as this entry's data.

        *content_sha256* is the digest of its bytes when it was computed.
        """
        directory = self._dir
        for stale in (self.meta_name, self.verdicts_name, self.data):
            try:
                os.unlink(stale, dir_fd=directory)
            except FileNotFoundError:
                pass
        tmp = f"{self.data}.{os.urandom(6).hex()}.tmp"
        try:
            os.link(path, tmp, dst_dir_fd=directory, follow_symlinks=False)
        except OSError as exc:
            if exc.errno not in _NO_LINK:
                raise
            source = os.open(path, os.O_RDONLY | _OPEN)
            try:
                _copy(source, tmp, directory)
            finally:
                os.close(source)
        os.replace(tmp, self.data, src_dir_fd=directory, dst_dir_fd=directory)
        size = os.stat(self.data, dir_fd=directory, follow_symlinks=False).st_size
        meta = {"url": self.url, "trust": self.trust, "size": size, "mtime": info.mtime,
                "etag": info.etag, "sha256": sha256, "content_sha256": content_sha256,
                "stored": time.time()}
        self.cache.dir.write_new(directory, self.meta_name, json.dumps(meta).encode())


class Cache:
    """The cache directory the administrator prepared; see the module docstring."""

    def __init__(self, directory: str, max_size: int = DEFAULT_CACHE_SIZE) -> None:
        self.dir: CacheDir = open_cache_dir(directory)
        #: --cache-size can lower the administrator's limit, never raise it.
        self.max_size = min(max_size, self.dir.max_size)

    @property
    def directory(self) -> str:
        return self.dir.path

    @staticmethod
    def cacheable(ref: FileRef) -> bool:
        """Only files whose change the transport can see are worth caching."""
        info = ref.info
        return (getattr(ref.tree, "cacheable", False) and info.size is not None
                and (info.etag is not None or info.mtime is not None))

    def entry(self, ref: FileRef, trust: str) -> Entry:
        return Entry(self, ref.url, trust)

    def close(self) -> None:
        self.dir.close()

    def evict(self) -> None:
        """Drop least recently used entries until the cache fits its limit,
        and temporary files that a killed boot left behind."""
        found: List[Tuple[float, int, str, int]] = []
        total = 0
        now = time.time()
        for sub, name in self.dir.files():
            try:
                st = os.stat(name, dir_fd=sub, follow_symlinks=False)
            except OSError:
                continue
            if name.endswith(".tmp") and now - st.st_mtime > STALE_TEMPORARY:
                _unlink(sub, name)
            elif name.endswith(VERDICTS) and now - st.st_mtime > STALE_TEMPORARY \
                    and not _exists(sub, name[:-len(VERDICTS)] + ".json"):
                _unlink(sub, name)  # the record of an entry removed meanwhile
            elif name.endswith(".json"):
                try:
                    size = os.stat(name[:-5] + ".data", dir_fd=sub, follow_symlinks=False).st_size
                except OSError:
                    continue
                total += size
                found.append((st.st_mtime, sub, name[:-5], size))
        for _, sub, base, size in sorted(found):
            if total <= self.max_size:
                break
            if _remove_entry(sub, base):
                total -= size


#: Why a hard link may fail where a copy works (another filesystem, or none of links).
_NO_LINK = (errno.EXDEV, errno.EPERM, errno.EMLINK, errno.ENOTSUP)


def _copy(source: int, name: str, directory: Optional[int]) -> None:
    """Copy the open file *source* to a new file *name* (mode 0600)."""
    target = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _OPEN, 0o600, dir_fd=directory)
    try:
        offset = 0
        while True:
            count = os.sendfile(target, source, offset, 1 << 30)
            if not count:
                break
            offset += count
    finally:
        os.close(target)


def _exists(directory: int, name: str) -> bool:
    try:
        os.stat(name, dir_fd=directory, follow_symlinks=False)
    except OSError:
        return False
    return True


def _unlink(directory: int, name: str) -> None:
    try:
        os.unlink(name, dir_fd=directory)
    except FileNotFoundError:
        pass


def _remove_entry(directory: int, base: str) -> bool:
    """Remove an entry unless a boot holds its lock; True if it was removed."""
    fd = os.open(base + ".lock", os.O_RDWR | os.O_CREAT | _OPEN, 0o600, dir_fd=directory)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        return False
    try:
        for suffix in (".json", VERDICTS, ".data"):
            _unlink(directory, base + suffix)
    finally:
        os.close(fd)
    return True


def lock_entries(entries: Dict[str, Entry]) -> Tuple[Dict[str, Entry], List[str]]:
    """Lock *entries* in a fixed order.

    Returns the locked ones and, for each one left out, why: its holder
    stalled, or its lock file is not one of the cache's own.
    """
    locked: Dict[str, Entry] = {}
    skipped: List[str] = []
    try:
        for role, entry in sorted(entries.items(), key=lambda item: item[1].key):
            try:
                if entry.try_lock():
                    locked[role] = entry
                else:
                    skipped.append(f"the cached {role} is being fetched by a boot that makes "
                                   "no progress; fetching it without the cache")
            except OSError as exc:
                skipped.append(f"cannot lock the cache entry of the {role} "
                               f"({exc.strerror or exc}); fetching it without the cache")
    except BaseException:
        for entry in locked.values():
            entry.unlock()
        raise
    return locked, skipped


def iter_entries(cache: Cache) -> Iterator[str]:
    """The keys of the complete entries (for tools and tests)."""
    for _, name in cache.dir.files():
        if name.endswith(".json"):
            yield name[:-5]
