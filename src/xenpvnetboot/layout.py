"""Which kernel and ramdisk to boot: explicit paths, or known install-tree paths.

The known pairs are data: a layout is a kernel path and the ramdisk that goes
with it, tried in order, and a pair is only taken when both of its files exist,
so the kernel of one distribution is never booted with the ramdisk of another.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import List, Optional, Sequence, Tuple

from .errors import BootError, NotFound, UsageError
from .location import resolve_spec
from .transports import FileInfo, TransportOptions, Tree


@dataclass(frozen=True)
class Pair:
    """A kernel path, its ramdisk, relative to a tree root, and who ships them."""

    kernel: str
    ramdisk: str
    origin: str


#: The six pairs of the original xenpvnetboot, in its order.
ORIGINAL_PAIRS: Tuple[Pair, ...] = (
    Pair("images/xen/vmlinuz", "images/xen/initrd.img", "Fedora <= 10, Oracle Linux 5"),
    Pair("boot/i386/vmlinuz-xen", "boot/i386/initrd-xen", "openSUSE >= 10.2, SLES >= 10 (i386)"),
    Pair("boot/x86_64/vmlinuz-xen", "boot/x86_64/initrd-xen", "openSUSE >= 10.2, SLES >= 10 (x86_64)"),
    Pair("current/images/netboot/xen/vmlinuz", "current/images/netboot/xen/initrd.gz", "Debian"),
    Pair("images/pxeboot/vmlinuz", "images/pxeboot/initrd.img", "Fedora >= 10, Oracle Linux >= 6"),
    Pair("isolinux/vmlinuz", "isolinux/initrd.img", "Fedora >= 10, Oracle Linux >= 6"),
)


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


def _exists(tree: Tree, path: str) -> Optional[FileInfo]:
    try:
        return tree.stat(path)
    except NotFound:
        return None


def search_pairs(tree: Tree, pairs: Sequence[Pair]) -> Selection:
    """The first pair whose kernel and ramdisk both exist in *tree*."""
    tried: List[str] = []
    for pair in pairs:
        tried.append(pair.kernel)
        kernel_info = _exists(tree, pair.kernel)
        if kernel_info is None:
            continue
        ramdisk_info = _exists(tree, pair.ramdisk)
        if ramdisk_info is None:
            tried[-1] += f" (found, but not {pair.ramdisk})"
            continue
        return Selection(
            FileRef(tree, pair.kernel, kernel_info),
            FileRef(tree, pair.ramdisk, ramdisk_info),
            f"known layout: {pair.origin}",
        )
    raise BootError(
        f"{tree.url('')}: no kernel found; tried " + ", ".join(tried)
        + " (name the files with --kernel and --ramdisk)"
    )


def ramdisk_for_kernel(spec: str, pairs: Sequence[Pair]) -> Optional[str]:
    """The ramdisk spec that goes with a kernel spec ending in a known pair's kernel."""
    for pair in pairs:
        if spec == pair.kernel or spec.endswith("/" + pair.kernel):
            return spec[: len(spec) - len(pair.kernel)] + pair.ramdisk
    return None


def select_files(
    location: Optional[Tree],
    kernel: Optional[str],
    ramdisk: Optional[str],
    options: TransportOptions,
    trees: contextlib.ExitStack,
    pairs: Sequence[Pair] = ORIGINAL_PAIRS,
) -> Selection:
    """Decide the kernel/ramdisk from the options, searching known pairs if needed.

    Trees opened for full-URL specs are entered into *trees* so the caller
    closes them.
    """

    def resolve(spec: str) -> FileRef:
        tree, path, owned = resolve_spec(spec, location, options)
        if owned:
            trees.enter_context(tree)
        return FileRef(tree, path, tree.stat(path))

    if kernel is None:
        if location is None:
            raise UsageError("nothing to boot: give --location, or --kernel (and --ramdisk)")
        found = search_pairs(location, pairs)
        if ramdisk is None:
            return found
        return Selection(found.kernel, resolve(ramdisk), found.reason + ", explicit ramdisk")
    kernel_ref = resolve(kernel)
    if ramdisk is not None:
        return Selection(kernel_ref, resolve(ramdisk), "explicit kernel and ramdisk")
    partner = ramdisk_for_kernel(kernel, pairs)
    if partner is not None:
        try:
            return Selection(kernel_ref, resolve(partner), "explicit kernel, ramdisk of its known pair")
        except NotFound:
            pass
    return Selection(kernel_ref, None, "explicit kernel, no ramdisk")
