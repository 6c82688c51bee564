"""The answer of layout detection: which files to boot, and why.

These types are shared by the detection code, the boot step (which streams
and verifies the files) and the dry-run report, so they live apart from all
three.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import List, Optional, Tuple

from ..transports import FileInfo, Tree


@dataclass(frozen=True)
class Pair:
    """A kernel path, its ramdisk, relative to a tree root, and who ships them."""

    kernel: str
    ramdisk: str
    origin: str


@dataclass(frozen=True)
class FileRef:
    """One file to fetch: the tree it lives in and its path there."""

    tree: Tree
    path: str
    info: FileInfo = FileInfo()
    #: Expected SHA-256 (hex) from .treeinfo or --kernel-sha256; checked on arrival.
    sha256: Optional[str] = None

    @property
    def url(self) -> str:
        return self.tree.url(self.path)


@dataclass(frozen=True)
class Selection:
    """What will be booted, and why (shown to the administrator)."""

    kernel: FileRef
    ramdisk: Optional[FileRef]
    reason: str
    #: Kernel arguments the detected installer needs (e.g. ``inst.repo=<location>``).
    install_args: str = ""
    #: The tree's installer (``layouts.table.ANACONDA``, ``LINUXRC``), if recognised.
    installer: Optional[str] = None
    #: More ramdisks of a boot-menu entry, concatenated after :attr:`ramdisk`
    #: into one file, in this order (microcode first).
    ramdisks: Tuple[FileRef, ...] = ()
    #: The arguments of the medium's boot-menu entry, filtered.
    menu_args: str = ""

    def refs(self) -> List[Tuple[str, FileRef]]:
        """The files to fetch, named as the output directory names them."""
        refs = [("kernel", self.kernel)]
        if self.ramdisk is not None:
            refs.append(("ramdisk", self.ramdisk))
        return refs

    @property
    def xen_specific(self) -> bool:
        """A pair built for Xen PV guests (a ``xen/`` directory, ``vmlinuz-xen``,
        ``[images-xen]``): it wins over the medium's boot menu."""
        parts = self.kernel.path.split("/")
        return "xen" in parts[:-1] or parts[-1].endswith("-xen") or "[images-xen]" in self.reason
