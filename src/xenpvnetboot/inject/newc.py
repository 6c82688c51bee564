"""Writing the answer files as a newc cpio archive at the end of a ramdisk.

Linux unpacks a ramdisk as a sequence of members, each a newc cpio archive,
plain or compressed, with any number of NUL bytes between them
(Documentation/driver-api/early-userspace/buffer-format.rst, and
unpack_to_rootfs() in init/initramfs.c); a later archive's files replace
earlier ones of the same name.  So adding files needs neither decompressing
nor recompressing the installer's ramdisk: an uncompressed archive is
appended after it.  Uncompressed because it is a few KiB (gzip would save
as much and need CONFIG_RD_GZIP in the guest kernel) and because it then
has no end that a decompressor must find.

Two rules of init/initramfs.c decide the bytes between the ramdisk and the
archive:

* an uncompressed archive is only recognised at an offset that is a
  multiple of 4 from the start of the ramdisk (``this_header & 3``);
  anything else is taken for compressed data ("invalid magic");
* an lz4 legacy member has no end marker: Linux since 5.14 (and the stable
  kernels of July 2021) ends it at a zero block size, older kernels read
  on into whatever follows.

Hence the archive is preceded by 4 to 7 NUL bytes, ending on a multiple of
4.  The archive itself is deterministic: entries in the order given, inode
numbers 1..n, one link each (so Linux never looks for hard links), owner
root, modification time 0, the TRAILER!!! entry, lengths padded to 4.

Appending goes through a descriptor, never a name: a ``--runas`` child holds
only descriptors.  A ramdisk that shares its inode with the download cache
(hard-linked from or into it) must never be appended to, since every later
boot would get the answer files too; :func:`private_descriptor` first puts
a private copy in its place.
"""

from __future__ import annotations

import fcntl
import os
import stat
from dataclasses import dataclass
from typing import Optional, Sequence

from ..cleanup import CLEANUP
from ..errors import BootError
from .files import MAX_FILES, MAX_NAME, MAX_TOTAL_SIZE, AnswerFile

MAGIC = b"070701"
TRAILER = b"TRAILER!!!"
HEADER_SIZE = 110
#: NUL bytes always written before the archive (see the module's docstring).
MIN_GAP = 4
#: The largest archive (with the gap before it) the limits of .files allow;
#: what a size limit on the ramdisk file must leave room for.
MAX_APPENDED = (MIN_GAP + 3 + MAX_TOTAL_SIZE
                + (MAX_FILES + 1) * (HEADER_SIZE + MAX_NAME + 1 + 3 + 3))
_COPY_CHUNK = 1 << 30


def _pad4(length: int) -> bytes:
    return bytes(-length % 4)


def _entry(ino: int, mode: int, name: bytes, data: bytes) -> bytes:
    """One header, name and body, each end padded to 4 (the entry starts aligned)."""
    namesize = len(name) + 1
    fields = (ino, mode, 0, 0, 1, 0, len(data), 0, 0, 0, 0, namesize, 0)
    head = MAGIC + b"".join(b"%08X" % value for value in fields) + name + b"\0"
    return head + _pad4(len(head)) + data + _pad4(len(data))


def newc_archive(files: Sequence[AnswerFile]) -> bytes:
    """The files as a newc archive with its trailer; its length is a multiple of 4."""
    entries = [_entry(ino, stat.S_IFREG | f.mode, os.fsencode(f.name), f.data)
               for ino, f in enumerate(files, 1)]
    entries.append(_entry(0, 0, TRAILER, b""))
    return b"".join(entries)


def gap_before(size: int) -> bytes:
    """The NUL bytes to write after a ramdisk of *size* bytes, before the archive."""
    return bytes(MIN_GAP + (-(size + MIN_GAP) % 4))


@dataclass(frozen=True)
class Appended:
    """Where the archive went, and what the caller should tell the administrator."""

    #: Offset of the archive in the ramdisk (a multiple of 4).
    offset: int
    #: The ramdisk's size now.
    size: int
    #: A warning to show (e.g. about old kernels), or None.
    note: Optional[str] = None


def _check_target(fd: int, where: str) -> os.stat_result:
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode):
        raise BootError(f"{where}: the ramdisk is not a regular file; cannot add files to it")
    if st.st_nlink != 1:
        raise BootError(f"{where}: the ramdisk file has {st.st_nlink} names (a cache entry?); "
                        "files are only added to a private copy")
    if fcntl.fcntl(fd, fcntl.F_GETFL) & os.O_ACCMODE == os.O_RDONLY:
        raise BootError(f"{where}: the ramdisk is open read-only; cannot add files to it")
    return st


def _inspect_start(fd: int, where: str) -> Optional[str]:
    """Refuse a ramdisk whose files cannot be added to; a note for a risky one."""
    from ..bootcheck import inspect_ramdisk
    from ..bootcheck._formats import HEAD_SIZE, filesystem_image

    # Read here too: an ext2 image starts with a zeroed boot block, which a
    # walk of the members skips like padding.
    image = filesystem_image(os.pread(fd, HEAD_SIZE, 0))
    report = inspect_ramdisk(fd, where, verify=False)
    if image is None and report.members and report.members[0].content.endswith(" image"):
        image = report.members[0].content[:-len(" image")]
    if image is not None:
        raise BootError(f"{where}: the ramdisk is a filesystem image ({image}, an old-style "
                        "initrd), not a cpio archive; --initrd-inject cannot add files to it")
    if any(member.compression == "lz4" for member in report.members):
        return (f"{where}: the ramdisk is lz4-compressed; kernels older than Linux 5.14 (or the "
                "stable updates of July 2021) stop unpacking before the injected files")
    return None


def append_archive(fd: int, archive: bytes, where: str) -> Appended:
    """Append *archive* (see :func:`newc_archive`) to the ramdisk open as *fd*.

    *fd* must be writable and the file's only name (see
    :func:`private_descriptor`); *where* names the ramdisk in messages (its
    URL).  Call after the download and its checksum, before ``--check``
    reads the file.  On a write error the file is cut back to its original
    size and BootError raised.
    """
    size = _check_target(fd, where).st_size
    note = _inspect_start(fd, where)
    data = gap_before(size) + archive
    written = 0
    try:
        while written < len(data):
            written += os.pwrite(fd, data[written:], size + written)
    except OSError as exc:
        try:
            os.ftruncate(fd, size)
        except OSError:
            pass
        raise BootError(f"{where}: cannot add the injected files to the ramdisk: "
                        f"{exc.strerror or exc}") from None
    return Appended(size + len(data) - len(archive), size + len(data), note)


def _copy(source: int, target: int, where: str) -> None:
    """All bytes of *source* into *target*, in the kernel where it can."""
    offset = 0
    in_kernel = True
    try:
        while True:
            count = -1
            if in_kernel:
                try:
                    count = os.copy_file_range(source, target, _COPY_CHUNK, offset, offset)
                except OSError:  # an old kernel, or files it cannot copy between
                    in_kernel = False
            if count < 0:
                chunk = os.pread(source, 1 << 20, offset)
                count = os.pwrite(target, chunk, offset) if chunk else 0
            if count == 0:
                return
            offset += count
    except OSError as exc:
        raise BootError(f"{where}: cannot copy the ramdisk to add files to it: "
                        f"{exc.strerror or exc}") from None


def private_descriptor(fd: int, path: str, where: str) -> int:
    """A writable descriptor to the ramdisk at *path* that no other name shares.

    *fd* itself when the file has a single name and *fd* is writable;
    otherwise (a cache hit or a file just stored in the cache: a hard link;
    a read-only descriptor) the bytes are copied to a new file that then
    replaces *path*, and a descriptor to it is returned: the caller closes
    *fd* and uses the new one.  The cache entry keeps its own inode.
    """
    st = os.fstat(fd)
    if st.st_nlink == 1 and fcntl.fcntl(fd, fcntl.F_GETFL) & os.O_ACCMODE != os.O_RDONLY:
        return fd
    copy = f"{path}.private"
    try:
        new = os.open(copy, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    except OSError as exc:
        raise BootError(f"{copy}: cannot create a file: {exc.strerror or exc}") from None
    CLEANUP.add_file(copy)
    try:
        _copy(fd, new, where)
        try:
            os.replace(copy, path)
        except OSError as exc:
            raise BootError(f"{path}: cannot replace it by a private copy: "
                            f"{exc.strerror or exc}") from None
    except BaseException:
        os.close(new)
        raise
    CLEANUP.forget(copy)
    return new
