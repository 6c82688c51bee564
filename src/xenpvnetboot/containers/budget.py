"""How much work one image may cost, whatever its metadata claims.

An image's directories, inodes and tables are written by whoever made the
image: a crafted one can claim huge sizes, share one directory a million
times over, or point a block at itself.  Every reader charges what it does
to the image's :class:`Budget`; once a bound is passed the image is refused
with one line naming it.  The bounds are far above what real boot media
need (measured: ISO9660, squashfs and ext4 images of 100,000 files, whose
layout detection costs under 100 lookups and, for the ISO, 23 MB of
metadata) and far below what would keep a dom0 CPU busy for long.

What a file's *data* costs is not charged here: the boot streams at most
``--max-size`` bytes of each file, and that bound is the sink's.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Dict, Iterator

from ..errors import BootError
from ..transports.base import ByteSource, Sink

#: Path components looked up in one image (all paths, all partitions).  A
#: layout probes a few hundred paths a few components deep; 40 symbolic
#: links of 4096 bytes each could make one path cost 80,000.
MAX_LOOKUPS = 1 << 16
#: Directory entries parsed in one image.  Directories are parsed once and
#: remembered; a real directory of 100,000 entries is a large one.
MAX_DIRECTORY_ENTRIES = 1 << 20
#: Metadata blocks read in one image: squashfs metadata blocks (8 KiB once
#: decompressed), ext indirect and extent blocks.
MAX_METADATA_BLOCKS = 1 << 16
#: Bytes of the image read as metadata (directories, inodes, tables), not
#: as the data of a file being fetched.  pycdlib reads every directory of an
#: ISO when it opens it: 23 MB in 2,000 reads for an ISO of 100,000 files
#: with Rock Ridge and Joliet names (6 s of CPU), far less for boot media.
MAX_METADATA_BYTES = 64 << 20
#: Separate metadata reads of the image.  Each may be a range request when
#: the image is read in place over http.
MAX_METADATA_READS = 1 << 16

#: What is counted: the constant bounding it, and its words in messages.
_LIMITS = {
    "lookups": ("MAX_LOOKUPS", "path components looked up"),
    "entries": ("MAX_DIRECTORY_ENTRIES", "directory entries read"),
    "blocks": ("MAX_METADATA_BLOCKS", "metadata blocks read"),
    "bytes": ("MAX_METADATA_BYTES", "bytes of metadata read"),
    "reads": ("MAX_METADATA_READS", "metadata reads"),
}


class BudgetExceeded(BootError):
    """An image has cost more work than its bound: it is refused as a whole."""


class Budget:
    """The work one image (with all its partitions) has cost so far.

    The limits are looked up when the budget is made, so that a test can
    lower one for a single image.
    """

    def __init__(self, name: str) -> None:
        self.name = name
        self.used: Dict[str, int] = dict.fromkeys(_LIMITS, 0)
        self.limits: Dict[str, int] = {key: globals()[constant]
                                       for key, (constant, _) in _LIMITS.items()}
        #: False while a file's data is being read: that is not metadata.
        self.metering = True

    def charge(self, what: str, count: int = 1) -> None:
        """Count *count* units of *what*; BootError once past its bound."""
        used = self.used[what] + count
        self.used[what] = used
        if used > self.limits[what]:
            raise BudgetExceeded(
                f"{self.name}: more than {self.limits[what]} {_LIMITS[what][1]} "
                "(the bound per image; corrupt or crafted image?)"
            )

    @contextmanager
    def unmetered(self) -> Iterator[None]:
        """Reads of a file's data, which the sink bounds instead."""
        before, self.metering = self.metering, False
        try:
            yield
        finally:
            self.metering = before


class MeteredSource(ByteSource):
    """An image source whose reads are charged to a budget while metering.

    What the format libraries (pycdlib, TSK) and our own readers read goes
    through it; streaming a file's runs (:meth:`copy_range`) does not count.
    """

    def __init__(self, inner: ByteSource, budget: Budget) -> None:
        self._inner = inner
        self.budget = budget
        self.name = inner.name

    @property
    def size(self) -> int:
        return self._inner.size

    def pread(self, offset: int, length: int) -> bytes:
        if self.budget.metering:
            self.budget.charge("reads")
            self.budget.charge("bytes", max(0, min(length, self.size - offset)))
        return self._inner.pread(offset, length)

    def copy_range(self, offset: int, length: int, sink: Sink) -> None:
        self._inner.copy_range(offset, length, sink)
