"""Files inside images, read in userspace: no mount, no loop device, no root.

:func:`open_image` turns any :class:`ByteSource` (a local file or block
device today; an ISO on NFS or behind HTTP Range requests just the same)
into a read-only :class:`Tree` of the filesystem it holds:

* ISO9660 with Rock Ridge, Joliet or plain names, hybrid ISOs too (pycdlib);
* ext2/ext3/ext4 (read here) and FAT12/16/32 (pytsk3);
* squashfs (read here, PySquashfsImage for the superblock);
* a whole disk with an MBR or GPT partition table holding any of these,
  searched partition by partition as pygrub does.

Whatever an image claims, reading it costs bounded work: see
:mod:`.budget` for the bounds per image, :mod:`.partitions` for those of a
partition table.

The format is recognised from the bytes alone.  Each library is imported
only when its format turns up, so start-up does not pay for them, and a
missing one is reported with the pip package to install.  Paths name files
from the image root (the tree is ``rooted``); symlinks are followed within
the image and never out of it.

The returned tree owns *source*: closing the tree closes it.  If
:func:`open_image` raises, the source stays the caller's to close (as
``location.open_local`` does).
"""

from __future__ import annotations

from typing import Optional

from ..errors import BootError
from ..transports.base import ByteSource, TransportOptions, Tree
from .budget import Budget, MeteredSource
from .detect import EXT, FAT, ISO9660, SQUASHFS, filesystem_kind, read_head

UNRECOGNISED = "not a recognised ISO9660, ext2/3/4, FAT or squashfs image, nor a partitioned disk"


def open_filesystem(source: ByteSource, kind: str, budget: Optional[Budget] = None) -> Tree:
    """The tree of a filesystem of known *kind* (see :mod:`.detect`) at offset 0.

    *budget* is the work the image may cost, shared by the partitions of a
    disk (a new one when None).
    """
    if kind == ISO9660:
        from .iso import IsoTree

        return IsoTree(source, budget)
    if kind == EXT:
        from .ext import ExtTree

        return ExtTree(source, budget)
    if kind == FAT:
        from . import tsk

        return tsk.TskTree(source, tsk.FAT, budget)
    if kind == SQUASHFS:
        from .squashfs import SquashfsTree

        return SquashfsTree(source, budget)
    raise BootError(f"{source.name}: unsupported filesystem {kind}")


#: Format modules and the libraries they import on demand.  A ``--runas``
#: child may be unable to read the Python installation, so :func:`preload`
#: loads them while it still can (missing optional ones are skipped).
_PRELOAD = (
    "xenpvnetboot.containers.iso", "xenpvnetboot.containers.ext",
    "xenpvnetboot.containers.extmap", "xenpvnetboot.containers.tsk",
    "xenpvnetboot.containers.squashfs", "xenpvnetboot.containers.sqfsmeta",
    "xenpvnetboot.containers.partitions",
    "pycdlib", "pytsk3", "PySquashfsImage", "zstandard", "lz4.block", "lzma", "isal.isal_zlib",
    # what they load lazily themselves: ISO dates (time.strptime), Joliet names
    "_strptime", "encodings.utf_16_be",
)


def preload() -> None:
    """Import the readers and the decompressors now (see :mod:`xenpvnetboot.preloading`)."""
    from ..preloading import import_optional

    import_optional(_PRELOAD)


def take_image(source: ByteSource, options: TransportOptions) -> Tree:
    """:func:`open_image` that owns *source* whatever happens: closed on failure."""
    try:
        return open_image(source, options)
    except BaseException:
        source.close()
        raise


def open_image(source: ByteSource, options: TransportOptions) -> Tree:
    """The files inside the image *source* holds; see the module docstring.

    *options* is accepted for symmetry with the transports (and for limits a
    remote source may need); reading an image has no settings of its own.
    """
    budget = Budget(source.name)
    head = read_head(source)
    kind = filesystem_kind(head)
    if kind is not None:
        return open_filesystem(source, kind, budget)
    from .partitions import find_partitions, open_partitioned

    partitions = find_partitions(MeteredSource(source, budget))
    if partitions is None:
        raise BootError(f"{source.name}: {UNRECOGNISED}")
    return open_partitioned(source, partitions, open_filesystem, budget)


__all__ = ["open_filesystem", "open_image"]
