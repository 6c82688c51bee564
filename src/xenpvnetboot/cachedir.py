"""The cache directory: used only as the administrator prepared it.

Every option of a boot arrives through ``bootloader_args``, which the guest's
owner writes, so ``--cache-dir`` cannot be trusted to name a sane place.  A
directory is used as the cache only if

* it and every directory above it is a real directory, not a symbolic link,
  owned by root (or by the user running the bootloader by hand);
* it is writable by its owner alone, and every directory above it is either
  writable by its owner alone or sticky (as ``/tmp``), so nobody else can
  swap it for another;
* it holds a ``CACHEDIR.TAG`` (the Cache Directory Tagging convention) of the
  same owner, which ``xenpvnetboot-cache init DIR`` writes, with the size limit
  the administrator chose.

A config naming ``/etc`` (no tag) or a directory a local user made (wrong
owner) therefore gets no cache, with a warning, and the boot goes on.
"""

from __future__ import annotations

import argparse
import os
import stat
import sys
from typing import Dict, Iterator, List, Optional, Tuple

from .errors import BootError, UsageError

TAG_NAME = "CACHEDIR.TAG"
SIGNATURE = b"Signature: 8a477f597d28d172789f06886806bc55"
LIMIT_LINE = b"# xenpvnetboot max-size: "
DEFAULT_LIMIT = 4 << 30
MAX_TAG = 4096
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


class CacheDirError(BootError):
    """The directory is not one the administrator prepared as a cache."""


def _owners() -> Tuple[int, ...]:
    return (0,) if os.geteuid() == 0 else (0, os.geteuid())


def check_path(path: str) -> os.stat_result:
    """Check *path* and its ancestors as the module docstring says; its lstat."""
    if not os.path.isabs(path):
        raise CacheDirError(f"{path}: the cache directory must be an absolute path")
    parts = [part for part in path.split("/") if part]
    current = "/"
    st = os.lstat(current)
    for index, part in enumerate([""] + parts):
        if part:
            current = os.path.join(current, part)
            try:
                st = os.lstat(current)
            except FileNotFoundError:
                raise CacheDirError(f"{path}: no such directory (prepare it with "
                                    f"xenpvnetboot-cache init {path})") from None
        last = index == len(parts)
        if stat.S_ISLNK(st.st_mode):
            raise CacheDirError(f"{path}: {current} is a symbolic link")
        if not stat.S_ISDIR(st.st_mode):
            raise CacheDirError(f"{path}: {current} is not a directory")
        if st.st_uid not in _owners():
            raise CacheDirError(f"{path}: {current} is owned by uid {st.st_uid}, not root")
        writable = st.st_mode & (stat.S_IWGRP | stat.S_IWOTH)
        if writable and (last or not st.st_mode & stat.S_ISVTX):
            raise CacheDirError(f"{path}: {current} is writable by group or others")
    return st


class CacheDir:
    """An open, checked cache directory; names are resolved relative to it."""

    def __init__(self, path: str, fd: int, max_size: int) -> None:
        self.path = path
        self.fd = fd
        self.max_size = max_size
        self._subs: Dict[str, int] = {}

    def trusted_stat(self, st: os.stat_result) -> bool:
        return (stat.S_ISREG(st.st_mode) and st.st_uid in _owners()
                and not st.st_mode & (stat.S_IWGRP | stat.S_IWOTH))

    def trusted_file(self, fd: int) -> bool:
        return self.trusted_stat(os.fstat(fd))

    def sub(self, name: str) -> int:
        """The descriptor of subdirectory *name* (made mode 0700 when missing)."""
        fd = self._subs.get(name)
        if fd is not None:
            return fd
        try:
            os.mkdir(name, 0o700, dir_fd=self.fd)
        except FileExistsError:
            pass
        fd = os.open(name, _DIR_FLAGS, dir_fd=self.fd)
        st = os.fstat(fd)
        if st.st_uid not in _owners() or st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
            os.close(fd)
            raise CacheDirError(f"{self.path}/{name}: not owned by root, or writable by others")
        self._subs[name] = fd
        return fd

    def write_new(self, directory: int, name: str, data: bytes) -> None:
        """Write *name* under a fresh random name, then rename it into place."""
        tmp = f"{name}.{os.urandom(6).hex()}.tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                     0o600, dir_fd=directory)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
        finally:
            os.close(fd)
        os.replace(tmp, name, src_dir_fd=directory, dst_dir_fd=directory)

    def files(self) -> Iterator[Tuple[int, str]]:
        """(subdirectory descriptor, name) of every file in the cache's subdirectories."""
        with os.scandir(self.fd) as top:
            subdirs = [entry.name for entry in top
                       if len(entry.name) == 2 and entry.is_dir(follow_symlinks=False)]
        for name in subdirs:
            try:
                sub = self.sub(name)
            except (OSError, CacheDirError):
                continue
            with os.scandir(sub) as entries:
                names = [entry.name for entry in entries if entry.is_file(follow_symlinks=False)]
            for file_name in names:
                yield sub, file_name

    def close(self) -> None:
        for fd in self._subs.values():
            os.close(fd)
        self._subs.clear()
        os.close(self.fd)


def read_limit(tag: bytes) -> int:
    for line in tag.splitlines():
        if line.startswith(LIMIT_LINE):
            value = line[len(LIMIT_LINE):].strip()
            if value.isdigit() and int(value) > 0:
                return int(value)
    return DEFAULT_LIMIT


def open_cache_dir(path: str) -> CacheDir:
    """Open *path* as the cache, or raise :class:`CacheDirError` saying why not."""
    path = os.path.normpath(path)
    try:
        checked = check_path(path)
        fd = os.open(path, _DIR_FLAGS)
    except OSError as exc:
        raise CacheDirError(f"{path}: {exc.strerror or exc}") from None
    try:
        st = os.fstat(fd)
        if (st.st_dev, st.st_ino) != (checked.st_dev, checked.st_ino):
            raise CacheDirError(f"{path}: changed while it was checked")
        try:
            tag_fd = os.open(TAG_NAME, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=fd)
        except OSError:
            raise CacheDirError(f"{path}: not marked as a cache by the administrator "
                                f"(no {TAG_NAME}; run xenpvnetboot-cache init {path})") from None
        try:
            tag_st = os.fstat(tag_fd)
            tag = os.read(tag_fd, MAX_TAG)
        finally:
            os.close(tag_fd)
        if (not stat.S_ISREG(tag_st.st_mode) or tag_st.st_uid not in _owners()
                or not tag.startswith(SIGNATURE)):
            raise CacheDirError(f"{path}: {TAG_NAME} is not a cache tag written by root")
        return CacheDir(path, fd, read_limit(tag))
    except BaseException:
        os.close(fd)
        raise


def tag_text(max_size: int) -> bytes:
    """The ``CACHEDIR.TAG`` of a cache of at most *max_size* bytes."""
    return (SIGNATURE + b"\n# This directory is the download cache of xenpvnetboot.\n"
            + LIMIT_LINE + str(max_size).encode() + b"\n")


def init_cache(path: str, max_size: int) -> None:
    """Create (or re-mark) *path* as the cache, mode 0700, with its size limit."""
    path = os.path.normpath(os.path.abspath(path))
    old = os.umask(0o077)
    try:
        os.makedirs(path, mode=0o700, exist_ok=True)
    finally:
        os.umask(old)
    check_path(path)
    text = tag_text(max_size)
    fd = os.open(path, _DIR_FLAGS)
    try:
        CacheDir(path, fd, max_size).write_new(fd, TAG_NAME, text)
        os.chmod(TAG_NAME, 0o644, dir_fd=fd, follow_symlinks=False)
    finally:
        os.close(fd)


def main(argv: Optional[List[str]] = None) -> int:
    """``xenpvnetboot-cache init DIR [--size SIZE]``: prepare a cache directory."""
    from .cli import parse_size
    from .reporting import report_error

    parser = argparse.ArgumentParser(prog="xenpvnetboot-cache",
                                     description="Prepare the shared download cache of xenpvnetboot.")
    sub = parser.add_subparsers(dest="command", required=True)
    init = sub.add_parser("init", help="create DIR (mode 0700) and mark it as the cache")
    init.add_argument("directory", metavar="DIR")
    init.add_argument("--size", type=parse_size, default=DEFAULT_LIMIT,
                      help="largest total size of the cache (default 4G)")
    args = parser.parse_args(argv)
    try:
        init_cache(args.directory, args.size)
    except (OSError, BootError, UsageError) as exc:
        report_error(exc if isinstance(exc, BootError) else BootError(str(exc)))
        return 1
    print(f"{os.path.abspath(args.directory)}: ready as the xenpvnetboot cache "
          f"(at most {args.size} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
