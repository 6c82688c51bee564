"""What the worker does: open the location, choose the files, verify them, fetch them.

These run in the worker process (see :mod:`.worker`), as root or, in
restricted mode, as the dropped user; what they return is a small report
that the root parent checks (see :mod:`.bootloader`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import sys
from typing import TYPE_CHECKING, Any, Dict, Optional, Sequence, Tuple

from .boot import Target
from .check import BootChecker
from .cmdline import join_args
from .download import download
from .errors import BootError, Interrupted, TransientError, UsageError
from .layout import Selection, describe, select_files
from .layouts.arch import arches_to_try
from .layouts.installargs import merge as merge_install_args
from .location import open_location
from .request import Request
from .transports import TransportOptions, Tree
from .transports.memo import MemoTree
from .ui import UI

if TYPE_CHECKING:
    from .cache import Cache
    from .inject import AnswerFile
    from .verify import KeyringData, Report


def with_checksums(selection: Selection, request: Request) -> Selection:
    """Apply --kernel-sha256/--ramdisk-sha256 (they win over .treeinfo checksums)."""
    if request.kernel_sha256:
        selection = dataclasses.replace(
            selection, kernel=dataclasses.replace(selection.kernel, sha256=request.kernel_sha256)
        )
    if request.ramdisk_sha256:
        if selection.ramdisk is None:
            raise UsageError("--ramdisk-sha256 given, but there is no ramdisk to check")
        selection = dataclasses.replace(
            selection, ramdisk=dataclasses.replace(selection.ramdisk, sha256=request.ramdisk_sha256)
        )
    return selection


def choose(request: Request, options: TransportOptions, ui: UI, trees: contextlib.ExitStack,
           keyrings: Sequence["KeyringData"] = (), dry_run: bool = False,
           ) -> Tuple[Selection, Optional["Report"]]:
    """Open the location (into *trees*), decide which files to boot, saying why,
    and follow their signature chain (``--verify``).

    A verified file carries its signed SHA-256 on: the download checks it.
    """
    verifier = None
    plain = options
    if request.verify != "off":
        from .verify import Verifier

        verifier = Verifier(request.verify, keyrings, dry_run=dry_run)
        options = dataclasses.replace(options, image_hook=verifier.image_hook)
    location: Optional[Tree] = None
    if request.location is not None:
        location = trees.enter_context(open_location(request.location, options))
        ui.info(f"Location {location.url('')}")
        location = _remembering(location, request)
    selection = with_checksums(_selected(request, location, options, ui, trees), request)
    ui.info(f"Found {selection.reason}")
    if verifier is None:
        return selection, None
    from .verify import Origin

    def reopen(where):  # type: ignore[no-untyped-def]
        return open_location(where, plain)

    origins = [Origin(request.location, location, reopen)] if location is not None else []
    for spec, ref in ((request.kernel, selection.kernel), (request.ramdisk, selection.ramdisk)):
        if spec is not None and spec.own is not None and ref is not None:
            origins.append(Origin(spec.own, ref.tree, reopen))
    report = verifier.check(selection, origins)
    pinned = [role for role, digest in (("kernel", request.kernel_sha256),
                                         ("ramdisk", request.ramdisk_sha256)) if digest]
    report.enforce(request.verify, ui.warning, ui.info, pinned)
    return report.apply(selection), report


def _remembering(tree: Tree, request: Request) -> Tree:
    """The location, keeping every answer; the boot menu's likely files asked in
    one batch once the menu is looked at (see :mod:`.menuboot`)."""
    if not request.menu_args or request.kernel is not None:
        return MemoTree(tree)
    from .menuboot import remembering

    return remembering(tree, request.location, request.mac, request.ip,
                       arches_to_try(request.arch))


def _selected(request: Request, location: Optional[Tree], options: TransportOptions, ui: UI,
              trees: contextlib.ExitStack) -> Selection:
    """The layout's choice, then the medium's boot menu's say (see :mod:`.menuboot`)."""
    arches = arches_to_try(request.arch)
    failure: Optional[BootError] = None
    try:
        selection: Optional[Selection] = select_files(
            location, request.kernel, request.ramdisk, options, trees, arch=request.arch,
            no_ramdisk=request.no_ramdisk, warn=ui.warning)
    except (TransientError, Interrupted):
        raise
    except BootError as exc:  # nothing found: the menu may know better
        if not request.menu_args or request.kernel is not None or location is None:
            raise
        selection, failure = None, exc
    if not request.menu_args:
        assert selection is not None
        return selection
    from .menuboot import live_args, with_menu

    chosen = with_menu(selection, failure, location, request.location, entry=request.entry,
                       explicit_kernel=request.kernel is not None,
                       explicit_ramdisk=request.ramdisk is not None or request.no_ramdisk,
                       mac=request.mac, ip=request.ip, arches=arches, warn=ui.warning)
    if location is not None:
        live = live_args(chosen, location, request.location)
        if live:
            install = " ".join(part for part in (chosen.install_args, live) if part)
            chosen = dataclasses.replace(chosen, install_args=install)
    return chosen


def list_job(request: Request, options: TransportOptions, ui: UI) -> Dict[str, Any]:
    """In the worker: ``--list-entries``, the medium's menu as pygrub numbers it."""
    from .menuboot import list_entries

    if request.location is None:
        raise UsageError("--list-entries needs --location")
    with open_location(request.location, options) as tree:
        ui.info(f"Location {tree.url('')}")
        sys.stdout.write(list_entries(tree, request.location, request.mac, request.ip,
                                      arches_to_try(request.arch)))
        sys.stdout.flush()
    return {}


def open_cache(request: Request, ui: UI) -> Optional["Cache"]:
    """The shared cache, unless turned off, absent by default, or under --runas.

    A directory the administrator did not prepare is not used: the boot goes
    on without the cache, with a warning saying why.
    """
    if request.no_cache or request.runas is not None or request.insecure:
        return None
    from .cache import DEFAULT_CACHE_DIR, Cache
    from .cachedir import CacheDirError

    directory = request.cache_dir
    if directory is None:
        if not os.path.isdir(DEFAULT_CACHE_DIR):
            return None
        directory = DEFAULT_CACHE_DIR
    try:
        return Cache(directory, request.cache_size)
    except CacheDirError as exc:
        ui.warning(f"not using the cache: {exc}")
        return None


def kernel_args(request: Request, install_args: str, installer: Optional[str] = None,
                answers: Sequence["AnswerFile"] = (), menu_args: str = "") -> str:
    """The boot menu entry's arguments, then --args (which win, coming last),
    plus the installer's source and the arguments of the injected answer
    files, unless given already or --no-install-args."""
    cmdline = join_args(menu_args, request.args) if menu_args else request.args
    extra = [install_args] if install_args else []
    if answers:
        from .inject import answer_args

        legacy = install_args.split("=", 1)[0] in ("repo", "method")
        extra.append(answer_args([answer.name for answer in answers], installer, request.args,
                                 legacy_anaconda=legacy))
    words = " ".join(part for part in extra if part)
    if not request.install_args or not words:
        return cmdline
    return merge_install_args(cmdline, words)


def fetch_job(request: Request, options: TransportOptions, ui: UI, targets: Dict[str, Target],
              archive: bytes = b"", keyrings: Sequence["KeyringData"] = ()) -> Dict[str, Any]:
    """In the worker: choose the files, stream them into *targets*, report."""
    with contextlib.ExitStack() as trees:
        selection, verified = choose(request, options, ui, trees, keyrings)
        if archive and selection.ramdisk is None:
            raise UsageError(f"--initrd-inject needs a ramdisk to add the files to, and "
                             f"{selection.reason} has none")
        checker = BootChecker(request.check, request.guest_type, request.arch, ui)
        cache = open_cache(request, ui)
        try:
            fetched = download(selection, targets, options, ui, cache=cache, checker=checker,
                               inject=archive)
        finally:
            if cache is not None:
                cache.close()
    report: Dict[str, Any] = {"install_args": selection.install_args,
                              "installer": selection.installer,
                              "menu_args": selection.menu_args,
                              "verify": verified.to_wire() if verified is not None else None}
    for role, (name, size) in fetched.items():
        report[role] = {"name": name, "size": size, "linked": targets[role].linked,
                        "downloaded": targets[role].downloaded}
    return report


def dry_run_job(request: Request, options: TransportOptions, ui: UI,
                answers: Sequence["AnswerFile"] = (),
                keyrings: Sequence["KeyringData"] = ()) -> Dict[str, Any]:
    """In the worker: show what would be booted; fetch nothing, write no file."""
    with contextlib.ExitStack() as trees:
        selection, verified = choose(request, options, ui, trees, keyrings, dry_run=True)
        args = kernel_args(request, selection.install_args, selection.installer, answers,
                           selection.menu_args)
        sys.stdout.write(describe(selection, args))
        if verified is not None:
            sys.stdout.write("".join(line + "\n" for line in verified.lines()))
        if answers:
            from .inject import describe as describe_answers

            sys.stdout.write("".join(line + "\n" for line in describe_answers(answers)))
        sys.stdout.flush()
    return {}
