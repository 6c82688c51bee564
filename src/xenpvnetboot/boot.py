"""The output files: created by the root parent, filled by the worker, named at the end.

Each file is written under a hidden ``.part`` name and linked to its final
``xenpvboot.<name>.<random>`` name only once complete, so libxl can never be
handed a truncated kernel; every path is registered for cleanup until the
result has been written.  The streaming itself is :mod:`.download`'s.
"""

from __future__ import annotations

import os
import re
from typing import TYPE_CHECKING, BinaryIO, List, Optional, Tuple

from .cleanup import CLEANUP
from .errors import BootError
from .layout import FileRef
from .ui import human_size

if TYPE_CHECKING:
    from .cache import Entry
    from .inject import Appended

PREFIX = "xenpvboot."
WRITE_BUFFER = 1 << 20


def safe_basename(path: str, fallback: str) -> str:
    """A short, harmless file name derived from a remote path."""
    name = path.rstrip("/").rsplit("/", 1)[-1]
    name = re.sub(r"[^A-Za-z0-9._+-]", "_", name).lstrip(".")[:64]
    return name or fallback


def prepare_output_directory(directory: str) -> str:
    """Create the output directory (mode 0700) if it does not exist yet."""
    directory = os.path.abspath(directory)
    try:
        os.makedirs(directory, mode=0o700, exist_ok=True)
    except OSError as exc:
        raise BootError(f"{directory}: cannot create output directory: {exc.strerror or exc}") from None
    if not os.path.isdir(directory):
        raise BootError(f"{directory}: output directory is not a directory")
    if not os.access(directory, os.W_OK | os.X_OK):
        raise BootError(f"{directory}: output directory is not writable")
    return directory


def check_free_space(target: "Target", refs: List[FileRef]) -> None:
    """Fail before downloading when the known sizes cannot fit (a small /run).

    Asked through the open file, which also works for a --runas child that
    may not look up the output directory by name.
    """
    need = sum(ref.info.size or 0 for ref in refs)
    try:
        st = os.fstatvfs(target.fileobj.fileno())
    except (OSError, ValueError):
        return
    free = st.f_bavail * st.f_frsize
    if need > free:
        raise BootError(
            f"{target.directory}: the kernel and ramdisk need {human_size(need)} but only "
            f"{human_size(free)} are free; choose another place with --output-directory"
        )


def make_unique(directory: str, prefix: str, suffix: str) -> Tuple[int, str]:
    """Create a new file (mode 0600) with a random name; what tempfile.mkstemp
    does, without the import cost of tempfile and random at every boot."""
    for _ in range(100):
        path = os.path.join(directory, f"{prefix}{os.urandom(6).hex()}{suffix}")
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        except FileExistsError:
            continue
        return fd, path
    raise FileExistsError(f"{directory}: no unused file name found")


class Target:
    """A partial output file: written under a hidden name, renamed once complete.

    The final name (``xenpvboot.<basename>.<random>``) is only chosen at
    :meth:`commit`, because the basename comes from the remote path, which a
    deprivileged child learns after the parent created the file for it.
    """

    def __init__(self, directory: str, partial: str, fileobj: BinaryIO) -> None:
        self.directory = directory
        self.partial = partial
        self.fileobj = fileobj
        #: A second descriptor to read the file back through (the check; a
        #: deprivileged child cannot open it by name).
        self.read_fd: Optional[int] = os.dup(fileobj.fileno())
        #: The file at :attr:`partial` was replaced by a link to a cache entry.
        self.linked = False
        #: Bytes that came from the location (before --initrd-inject's archive).
        self.downloaded: Optional[int] = None

    @classmethod
    def create(cls, directory: str, role: str) -> "Target":
        try:
            fd, partial = make_unique(directory, f".{PREFIX}{role}.", ".part")
        except OSError as exc:
            raise BootError(f"{directory}: cannot create a file: {exc.strerror or exc}") from None
        CLEANUP.add_file(partial)
        CLEANUP.add_file(partial + ".private")  # a copy to inject into (see append)
        return cls(directory, partial, os.fdopen(fd, "wb", buffering=WRITE_BUFFER))

    def discard(self) -> None:
        """Close without caring about unflushed data (the file is being removed)."""
        try:
            self.fileobj.close()
        except OSError:
            pass
        if self.read_fd is not None:
            os.close(self.read_fd)
            self.read_fd = None

    def fill_from(self, entry: "Entry") -> int:
        """Take the bytes of a cache entry instead of downloading them; return the size."""
        entry.link_to(self.partial)  # first: if it fails, the file stays usable
        self.discard()
        self.linked = True
        self.read_fd = os.open(self.partial, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW)
        return os.fstat(self.read_fd).st_size

    def append(self, data: bytes, where: str) -> "Appended":
        """Add *data* at the end of this file alone, never of a cache entry linked with it."""
        from .inject import append_archive, private_descriptor

        assert self.read_fd is not None
        fd = private_descriptor(self.read_fd, self.partial, where)
        if fd != self.read_fd:
            os.close(self.read_fd)
            self.read_fd = fd
            self.linked = True  # a new file is at self.partial: the parent must lstat it
        return append_archive(fd, data, where)

    def size_now(self, linked: bool) -> int:
        """The file's size as the parent sees it after the worker is done.

        A file the worker filled from the cache was replaced at its name (in
        the root-only output directory); any other is the one the parent
        created and still holds open.
        """
        import stat

        if not linked:
            return os.fstat(self.fileobj.fileno()).st_size
        st = os.lstat(self.partial)
        if not stat.S_ISREG(st.st_mode):
            raise BootError(f"{self.partial}: not a regular file")
        return st.st_size

    def remove(self) -> None:
        """Drop a file that is not needed after all (no ramdisk)."""
        self.discard()
        try:
            os.unlink(self.partial)
        except FileNotFoundError:
            pass
        CLEANUP.forget(self.partial)

    def finish(self) -> None:
        """Flush and close; a late write error (disk full) fails the boot."""
        try:
            self.fileobj.close()
        except OSError as exc:
            raise BootError(f"{self.partial}: cannot write: {exc.strerror or exc}") from None

    def commit(self, basename: str) -> str:
        """Give the complete file its final, unique name; return that path.

        A hard link to a fresh name, not a rename over a reserved one: ext4
        flushes a file renamed over another (a quarter of a second per GiB).
        """
        self.discard()
        for _ in range(100):
            final = os.path.join(self.directory, f"{PREFIX}{basename}.{os.urandom(6).hex()}")
            try:
                os.link(self.partial, final)
            except FileExistsError:
                continue
            except OSError:  # a filesystem without hard links
                fd, final = make_unique(self.directory, f"{PREFIX}{basename}.", "")
                os.close(fd)
                CLEANUP.add_file(final)
                os.replace(self.partial, final)
                CLEANUP.forget(self.partial)
                return final
            CLEANUP.add_file(final)
            os.unlink(self.partial)
            CLEANUP.forget(self.partial)
            return final
        raise BootError(f"{self.directory}: no unused file name found")
