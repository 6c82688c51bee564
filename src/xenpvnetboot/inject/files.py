"""Reading the answer files of ``--initrd-inject``, as root, once.

The files are the dom0 administrator's and may be readable by root alone (a
kickstart with a password hash), so they are read before any ``--runas``
drop and carried in memory from then on; the unprivileged child never opens
them.  Because root reads them on the word of a configuration file, each is
held to what an answer file is: a small regular file, named by the last
component of its path, which becomes its name at the root of the guest's
initramfs.

* A symbolic link is refused (``O_NOFOLLOW``): a link planted in a shared
  directory must not make root copy some other file into a guest.  Links in
  the directories above the file are followed, as for any path.
* Anything but a regular file (directory, FIFO, device, socket) is refused
  before it is opened: opening a FIFO would block, opening a device may act.
* Sizes are capped per file and in total, whatever the file grows to while
  it is read, and so is the number of files.
* The name must be one harmless path component: not empty, not ``.`` or
  ``..``, no ``/``, NUL or other unprintable character, at most 255 bytes,
  and not ``TRAILER!!!`` (the name that ends a cpio archive: Linux would
  drop every entry after it).  Two files with the same name are refused:
  the second would silently replace the first.

Root reads them whatever the configuration says, so in restricted mode,
where the configuration is not trusted, the administrator should confine
them (``allowed``): otherwise whoever writes ``bootloader_args`` can copy
any file root may read (``/etc/shadow``) into a guest.  The directory is
opened first and its real path checked, then the file is opened relative
to it, so no symbolic link swapped in between can lead elsewhere.

Each file keeps its own permission bits less set-id, sticky and group/other
write (``mode & 0o755``): a root-only file stays root-only in the guest
(whose installer runs as root) and a script stays executable.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Tuple

from ..errors import UsageError
from ..ui import human_size

OPTION = "--initrd-inject"
#: Largest answer file accepted (kickstarts and preseeds are a few KiB).
MAX_FILE_SIZE = 1 << 20
#: Largest total of all the files' contents.
MAX_TOTAL_SIZE = 4 << 20
#: Most files one boot may inject.
MAX_FILES = 32
#: Longest name, in bytes (NAME_MAX).
MAX_NAME = 255
#: Permission bits kept from the file.
MODE_MASK = 0o755
_TRAILER = "TRAILER!!!"
_READ_CHUNK = 1 << 16


@dataclass(frozen=True)
class AnswerFile:
    """One file to add at the root of the guest's initramfs."""

    #: Its name there (one path component).
    name: str
    #: Permission bits written in the archive (regular file type added there).
    mode: int
    data: bytes
    #: The path it was read from, for messages (empty when built in memory).
    source: str = ""

    def __post_init__(self) -> None:
        problem = name_problem(self.name)
        if problem:
            raise ValueError(f"{self.name!r}: {problem}")
        if self.mode & ~MODE_MASK:
            raise ValueError(f"mode {self.mode:o} has bits outside {MODE_MASK:o}")
        if len(self.data) > MAX_FILE_SIZE:
            raise ValueError(f"{self.name}: {len(self.data)} bytes is over {MAX_FILE_SIZE}")


def name_problem(name: str) -> str:
    """Why *name* cannot be a file at the root of the initramfs; '' when it can."""
    if not name:
        return "names no file (the path ends in /)"
    if name in (".", ".."):
        return f'"{name}" is not a file name'
    if "/" in name:
        return "the name must be a single path component"
    if not name.isprintable():
        return "the file name has a control or unprintable character"
    if len(os.fsencode(name)) > MAX_NAME:
        return f"the file name is longer than {MAX_NAME} bytes"
    if name == _TRAILER:
        return f"{_TRAILER} would end the cpio archive; rename the file"
    return ""


def shown(path: str) -> str:
    """*path* as it can be printed on one line (escaped when it has odd characters)."""
    return path if path.isprintable() else ascii(path)


def _refuse(path: str, why: str) -> UsageError:
    return UsageError(f"{OPTION} {shown(path)}: {why}")


def _kind(mode: int) -> str:
    for test, what in ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO"),
                       (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
                       (stat.S_ISSOCK, "a socket"), (stat.S_ISLNK, "a symbolic link")):
        if test(mode):
            return what
    return "not a regular file"


def _too_big(path: str, size: str, per_file: bool) -> UsageError:
    if not per_file:
        return _refuse(path, f"is {size}, past the total of {human_size(MAX_TOTAL_SIZE)} "
                             "the injected files may have together")
    return _refuse(path, f"is {size}; an injected file may have at most "
                         f"{human_size(MAX_FILE_SIZE)}")


def _read_limited(fd: int, limit: int) -> bytes:
    """At most *limit* + 1 bytes: one more than allowed shows the file is too big."""
    chunks: List[bytes] = []
    total = 0
    while total <= limit:
        chunk = os.read(fd, min(_READ_CHUNK, limit + 1 - total))
        if not chunk:
            break
        chunks.append(chunk)
        total += len(chunk)
    return b"".join(chunks)


def _open_directory(path: str) -> int:
    """The directory *path* is in, opened (O_PATH) so that it cannot change under us."""
    try:
        return os.open(os.path.dirname(path) or ".", os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError as exc:
        raise _refuse(path, exc.strerror or str(exc)) from None


def _check_place(path: str, directory: int, allowed: Sequence[str]) -> None:
    """Refuse a file whose (real) directory is not one of *allowed* or below one."""
    try:
        real = os.readlink(f"/proc/self/fd/{directory}")
    except OSError as exc:
        raise _refuse(path, f"cannot tell which directory it is in ({exc.strerror or exc})") from None
    if not any(real == top or real.startswith(top.rstrip("/") + "/") for top in allowed):
        raise _refuse(path, f"is not in {' or '.join(map(shown, allowed))}, where files to "
                            "inject must be")


def _stat_entry(path: str, name: str, directory: int, limit: int) -> os.stat_result:
    try:
        st = os.stat(name, dir_fd=directory, follow_symlinks=False)
    except OSError as exc:
        raise _refuse(path, exc.strerror or str(exc)) from None
    if stat.S_ISLNK(st.st_mode):
        raise _refuse(path, "is a symbolic link; give the file itself")
    if not stat.S_ISREG(st.st_mode):
        raise _refuse(path, f"is {_kind(st.st_mode)}, not a regular file")
    if st.st_size > limit:
        raise _too_big(path, human_size(st.st_size), st.st_size > MAX_FILE_SIZE)
    return st


def read_answer_file(path: str, budget: int = MAX_TOTAL_SIZE,
                     allowed: Optional[Sequence[str]] = None) -> AnswerFile:
    """Read one answer file; UsageError naming *path* for anything refused.

    *budget* is what is left of the total size cap; *allowed*, if given,
    the real paths of the directories the file must be in or below.
    """
    name = os.path.basename(path)
    problem = name_problem(name)
    if problem:
        raise _refuse(path, problem)
    limit = min(MAX_FILE_SIZE, budget)
    directory = _open_directory(path)
    try:
        if allowed is not None:
            _check_place(path, directory, allowed)
        before = _stat_entry(path, name, directory, limit)
        flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC
        try:
            fd = os.open(name, flags, dir_fd=directory)
        except OSError as exc:
            raise _refuse(path, exc.strerror or str(exc)) from None
    finally:
        os.close(directory)
    try:
        st = os.fstat(fd)
        if (st.st_dev, st.st_ino) != (before.st_dev, before.st_ino) or not stat.S_ISREG(st.st_mode):
            raise _refuse(path, "was replaced while being opened")
        try:
            data = _read_limited(fd, limit)
        except OSError as exc:
            raise _refuse(path, exc.strerror or str(exc)) from None
    finally:
        os.close(fd)
    if len(data) > limit:
        raise _too_big(path, f"larger than {human_size(limit)}", limit == MAX_FILE_SIZE)
    return AnswerFile(name, stat.S_IMODE(st.st_mode) & MODE_MASK, data, path)


def load_answer_files(paths: Sequence[str],
                      allowed: Optional[Sequence[str]] = None) -> Tuple[AnswerFile, ...]:
    """All of ``--initrd-inject``'s files, in the order given; UsageError on the first refused.

    Call while still root and before anything is downloaded: a bad path is
    a usage error that should cost nothing.  *allowed* (directories, e.g.
    the administrator's for restricted mode) confines where files may be
    read from; None: anywhere.
    """
    if len(paths) > MAX_FILES:
        raise UsageError(f"{OPTION} given {len(paths)} times; at most {MAX_FILES} files "
                         "can be injected")
    tops = None if allowed is None else [os.path.realpath(top) for top in allowed]
    files: List[AnswerFile] = []
    seen: Dict[str, str] = {}
    total = 0
    for path in paths:
        name = os.path.basename(path)
        if name in seen:
            raise _refuse(path, f"a second file named {shown(name)} (the first is "
                                f"{shown(seen[name])}); each lands at the ramdisk's root "
                                "under its own name")
        answer = read_answer_file(path, MAX_TOTAL_SIZE - total, tops)
        seen[name] = path
        total += len(answer.data)
        files.append(answer)
    return tuple(files)


def describe(files: Sequence[AnswerFile]) -> List[str]:
    """Lines for ``--dry-run`` and ``-v``: what goes into the ramdisk, from where."""
    return [f"Inject: /{shown(f.name)} from {shown(f.source) if f.source else '(memory)'} "
            f"({len(f.data)} bytes, mode {f.mode:04o})" for f in files]
