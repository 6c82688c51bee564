"""The medium's own boot menu in a boot: which entry, its files and its arguments.

A live medium's kernel needs the arguments its menu gives it (``boot=casper``,
``archisobasedir=``, ``modules=``...), and PXE servers keep one menu per
machine.  After the layout search (see :mod:`.layout`):

* ``--kernel`` inside the location: the menu entry that boots that same
  kernel lends its arguments;
* no ``--kernel``: a pair built for Xen PV guests (Debian's ``xen/``,
  ``[images-xen]``) still wins, unless ``--entry`` names an entry; otherwise
  the menu's default entry (or ``--entry``'s) gives the kernel, its ramdisks
  and its arguments; when the layout search found nothing, the menu may;
* a menu that is hostile, an entry whose files are missing, or no menu at
  all: the layout's choice, as with ``--no-menu-args``, with a warning.

The parsers (:mod:`.menus`) never run anything of the menu's.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any, Callable, Dict, Optional, Tuple

from .errors import BootError, NotFound
from .layouts.model import FileRef, Selection
from .location import Kind, Location
from .transports import Tree
from .transports.memo import MemoTree

if TYPE_CHECKING:
    from .menus.select import Outcome

Say = Callable[[str], None]


def is_pxe_server(location: Optional[Location], tree: Tree) -> bool:
    """A tftp or http(s) tree (not an image): where ``pxelinux.cfg/`` is looked up."""
    if location is None or getattr(tree, "rooted", False):
        return False
    return location.kind == Kind.URL and location.scheme in ("tftp", "http", "https")


#: The menu files network trees carry most often, read in one batch when the
#: menu is looked at (the rest only when these are missing).
LIKELY_MENUS = ("boot/grub/grub.cfg", "EFI/BOOT/grub.cfg", "isolinux/isolinux.cfg",
                "boot/grub/loopback.cfg", "isolinux.cfg", "syslinux.cfg", "extlinux.conf")
#: The top-level directories of the other menu files: where the server says
#: one is missing, the menu files below it are not asked for.
MENU_DIRECTORIES = ("boot/", "EFI/", "grub/", "grub2/", "syslinux/", "extlinux/", "isolinux/",
                    "debian-installer/", "ubuntu-installer/", "pxelinux.cfg/")


def likely_menus(tree: Tree, location: Optional[Location], mac: Optional[str],
                 ip: Optional[object], arches: Tuple[str, ...]) -> Dict[str, int]:
    """Menu files worth asking for before the layout is known: path -> size limit."""
    from .menus import LIMITS, config_paths
    from .menus.find import NETBOOT_GRUB
    from .layouts.table import DEBIAN_ARCH

    paths = list(config_paths(mac, ip)) if is_pxe_server(location, tree) else []  # type: ignore[arg-type]
    paths += LIKELY_MENUS
    names = dict(DEBIAN_ARCH)
    paths += [NETBOOT_GRUB[0].format(arch=name) for arch in arches[:1] for name in names.get(arch, ())[:1]]
    return {path: LIMITS.file_size for path in paths}


def remembering(tree: Tree, location: Optional[Location], mac: Optional[str],
                ip: Optional[object], arches: Tuple[str, ...]) -> Tree:
    """*tree*, keeping its answers, with the likely menu files read (and the menus'
    directories asked) in one batch once the menu is looked at (:func:`_read_menu`)."""
    # The location itself too, unless the search asked it: its answer is what
    # lets a missing directory rule out the menu files below it.
    return MemoTree(tree, lambda: likely_menus(tree, location, mac, ip, arches),
                    ("",) + MENU_DIRECTORIES, early=False)


def _read_menu(tree: Tree, **query: Any) -> "Outcome":
    """The medium's menu and what it says for *query* (see ``menus.from_medium``).

    The likely menu files are asked first, all in one batch; the parsers are
    loaded only now, so a boot of the layout's Xen pair never loads them.
    """
    from .menus import from_medium

    if isinstance(tree, MemoTree):
        tree.ask_ahead()
    return from_medium(tree, **query)


def with_menu(selection: Optional[Selection], failure: Optional[BootError], tree: Optional[Tree],
              location: Optional[Location], *, entry: Optional[str], explicit_kernel: bool,
              explicit_ramdisk: bool, mac: Optional[str], ip: Optional[object],
              arches: Tuple[str, ...], warn: Say) -> Selection:
    """The selection once the medium's menu had its say (see the module doc).

    *selection* is the layout search's answer, or None when it failed with
    *failure* (raised again when the menu has nothing better).
    """
    if tree is None or (explicit_kernel and (selection is None or selection.kernel.tree is not tree)):
        return _or_fail(selection, failure)
    pxe = is_pxe_server(location, tree)
    if explicit_kernel:
        assert selection is not None
        outcome = _read_menu(tree, kernel=selection.kernel.path, pxe=pxe, mac=mac, ip=ip,
                              arches=arches)
        _say(outcome.warnings, warn)
        if outcome.boot is None:
            return selection
        return dataclasses.replace(selection, menu_args=outcome.boot.args,
                                   reason=f"{selection.reason}; arguments of {outcome.boot.reason}")
    if explicit_ramdisk or (selection is not None and selection.xen_specific and entry is None):
        return _or_fail(selection, failure)
    outcome = _read_menu(tree, wanted=entry, pxe=pxe, mac=mac, ip=ip, arches=arches)
    _say(outcome.warnings, warn)
    boot = outcome.boot
    if boot is None or boot.kernel is None:
        return _or_fail(selection, failure)
    try:
        kernel = _ref(tree, boot.kernel)
        ramdisks = [_ref(tree, path) for path in boot.initrds]
    except NotFound as exc:
        warn(f"{exc}: the menu's {boot.entry.describe()} cannot be booted; "
             + ("booting the layout's pair instead" if selection is not None else "nothing else found"))
        return _or_fail(selection, failure)
    return Selection(
        kernel, ramdisks[0] if ramdisks else None, boot.reason,
        install_args=selection.install_args if selection is not None else "",
        installer=selection.installer if selection is not None else None,
        ramdisks=tuple(ramdisks[1:]), menu_args=boot.args,
    )


def list_entries(tree: Tree, location: Optional[Location], mac: Optional[str],
                 ip: Optional[object], arches: Tuple[str, ...]) -> str:
    """``--list-entries``: the menu's entries as pygrub numbers them."""
    from .menus import config_paths, listing, load_menu

    pxe = is_pxe_server(location, tree)
    menu = load_menu(tree, config_paths(mac, ip) if pxe else (), arches)  # type: ignore[arg-type]
    if menu is None:
        raise BootError(f"{tree.url('')}: no boot menu found")
    return "\n".join(listing(menu)) + "\n"


def live_args(selection: Selection, tree: Tree, location: Optional[Location]) -> str:
    """What a live kernel fetched from a remote location needs to fetch the rest of itself."""
    if location is None or location.is_local or not selection.menu_args:
        return ""
    from .menus import live_network_args

    image = location.kind in (Kind.REMOTE_IMAGE, Kind.NFS_IMAGE)
    where = location.display()
    if "***" in where:  # a password is never handed on to the guest
        return ""
    return live_network_args(selection.kernel.path, selection.menu_args, where, image)


def _ref(tree: Tree, path: str) -> FileRef:
    return FileRef(tree, path, tree.stat(path))


def _or_fail(selection: Optional[Selection], failure: Optional[BootError]) -> Selection:
    if selection is not None:
        return selection
    assert failure is not None
    raise failure


def _say(warnings: Tuple[str, ...], warn: Say) -> None:
    for line in warnings:
        warn(line)
