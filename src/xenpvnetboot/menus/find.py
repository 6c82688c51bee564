"""Which menu of a medium counts, and reading it.

A medium may carry several menus (an ISO has GRUB for UEFI and ISOLINUX
for BIOS); the order is pygrub's, with PXE first:

1. on a PXE server, ``pxelinux.cfg/`` in PXELINUX's per-machine order
   (see :mod:`.pxe`): when one of those files exists it is the menu, and no
   other file is looked at;
2. GRUB 2: ``boot/grub/grub.cfg``, ``boot/grub2/grub.cfg``,
   ``EFI/BOOT/grub.cfg`` (and ``EFI/boot/``), ``grub/grub.cfg``,
   ``grub2/grub.cfg``, ``boot/grub/loopback.cfg``, and the GRUB menu of a
   Debian/Ubuntu netboot tree (``debian-installer/<arch>/grub/grub.cfg``);
3. the SYSLINUX family: ``isolinux/isolinux.cfg``,
   ``boot/isolinux/isolinux.cfg``, ``isolinux.cfg``,
   ``boot/syslinux/syslinux.cfg``, ``syslinux/syslinux.cfg``,
   ``syslinux.cfg``, and the ``extlinux.conf`` files;
4. GRUB legacy: ``boot/grub/menu.lst``, ``boot/grub/grub.conf``,
   ``grub/menu.lst``, ``grub/grub.conf``.

Each candidate costs one request (a missing file is one "not found"); the
first that exists is the menu.  All reading goes through the tree, so this
works over every transport and inside every image format.
"""

from __future__ import annotations

from typing import Callable, Iterator, Optional, Sequence, Set, Tuple

from ..layouts.arch import X86_64
from ..errors import NotFound
from ..layouts.table import DEBIAN_ARCH
from ..transports import Tree
from . import grub2, grub_legacy, syslinux
from .model import GRUB2, GRUB_LEGACY, LIMITS, PXELINUX, SYSLINUX, Limits, Menu
from .reader import Reader

GRUB2_FILES: Tuple[str, ...] = (
    "boot/grub/grub.cfg", "boot/grub2/grub.cfg", "EFI/BOOT/grub.cfg", "EFI/boot/grub.cfg",
    "grub/grub.cfg", "grub2/grub.cfg", "boot/grub/loopback.cfg",
)
#: Netboot trees keep GRUB's menu next to the images, per architecture.
NETBOOT_GRUB = ("debian-installer/{arch}/grub/grub.cfg", "ubuntu-installer/{arch}/grub/grub.cfg")
SYSLINUX_FILES: Tuple[str, ...] = (
    "isolinux/isolinux.cfg", "boot/isolinux/isolinux.cfg", "isolinux.cfg",
    "boot/syslinux/syslinux.cfg", "syslinux/syslinux.cfg", "syslinux.cfg",
    "boot/extlinux/extlinux.conf", "boot/extlinux.conf", "extlinux/extlinux.conf",
    "extlinux.conf",
)
LEGACY_FILES: Tuple[str, ...] = (
    "boot/grub/menu.lst", "boot/grub/grub.conf", "grub/menu.lst", "grub/grub.conf",
)

Parser = Callable[[Reader, str], Optional[Menu]]


def _syslinux(reader: Reader, path: str) -> Optional[Menu]:
    return syslinux.parse(reader, path, fmt=SYSLINUX)


def _pxelinux(reader: Reader, path: str) -> Optional[Menu]:
    return syslinux.parse(reader, path, base="", fmt=PXELINUX)


#: Menu format -> the parser of one of its files.
PARSERS = {PXELINUX: _pxelinux, GRUB2: grub2.parse, SYSLINUX: _syslinux,
           GRUB_LEGACY: grub_legacy.parse}


def candidates(pxe_paths: Sequence[str] = (),
               arches: Sequence[str] = (X86_64,)) -> Iterator[Tuple[str, str]]:
    """(format, path) of every file that may be the menu, in the order they count."""
    for path in pxe_paths:
        yield PXELINUX, path
    for path in GRUB2_FILES:
        yield GRUB2, path
    names = dict(DEBIAN_ARCH)
    for template in NETBOOT_GRUB:
        for arch in arches:
            for name in names.get(arch, ()):
                yield GRUB2, template.format(arch=name)
    for path in SYSLINUX_FILES:
        yield SYSLINUX, path
    for path in LEGACY_FILES:
        yield GRUB_LEGACY, path


def load_menu(tree: Tree, pxe_paths: Sequence[str] = (), arches: Sequence[str] = (X86_64,),
              limits: Limits = LIMITS) -> Optional[Menu]:
    """The menu that counts on *tree* (see module doc), or None if it has none.

    *pxe_paths* are the ``pxelinux.cfg/`` files to try first (from
    :func:`.pxe.config_paths`; empty for a medium that is not a PXE server);
    *arches* are canonical guest architectures, for netboot GRUB menus.

    Raises :class:`.MenuError` for a menu that is refused (one line naming
    the file: the caller warns and boots as with ``--no-menu-args``), and
    passes on :class:`~xenpvnetboot.errors.TransientError` and
    :class:`~xenpvnetboot.errors.Interrupted` as every other read does.
    """
    reader = Reader(tree, limits)
    listed = list(candidates(pxe_paths, arches))
    present = _present(tree, [path for _, path in listed])
    for fmt, path in listed:
        if present is not None and path not in present:
            continue
        menu = PARSERS[fmt](reader, path)
        if menu is not None:
            return menu
    return None


def _present(tree: Tree, paths: Sequence[str]) -> Optional[Set[str]]:
    """On a tree that overlaps requests, which candidates may exist, asked in one
    round trip rather than one request after the other; None elsewhere."""
    if not getattr(tree, "parallel_stats", False):
        return None
    absent = getattr(tree, "absent", None)  # what a remembering tree knows is missing
    if absent is not None:
        paths = [path for path in paths if not absent(path)]
    answers = tree.stat_many(paths)
    return {path for path, answer in answers.items() if not isinstance(answer, NotFound)}


def load_file(tree: Tree, fmt: str, path: str, limits: Limits = LIMITS) -> Optional[Menu]:
    """The menu in one named file of format *fmt* (a key of :data:`PARSERS`)."""
    return PARSERS[fmt](Reader(tree, limits), path)
