"""One boot, start to finish: open the location, pick the files, fetch, report.

With ``--runas`` the same steps run in a deprivileged child (see privsep.py);
the root parent only creates the output files beforehand and checks and names
them afterwards.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import os
import sys
import time
from typing import TYPE_CHECKING, Callable, Dict, Optional, Tuple

from .boot import Target, download, prepare_output_directory
from .check import BootChecker
from .cleanup import CLEANUP
from .errors import BootError, UsageError
from .layout import Selection, describe, select_files
from .layouts.installargs import merge as merge_install_args
from .location import open_location
from .output import BootResult, format_result, write_result
from .transports import TransportOptions
from .ui import UI

if TYPE_CHECKING:
    from .cache import Cache

#: role -> (basename, size) of each fetched file.
Fetched = Dict[str, Tuple[str, int]]


#: Seconds before libxl's restrict-mode kill at which retries stop, so that the
#: failure is reported by us, naming the server, rather than by the kill.
DEADLINE_MARGIN = 10.0
LIBXL_DEFAULT_TIMEOUT = 120.0


def restrict_deadline(args: argparse.Namespace) -> Optional[float]:
    """With --runas, libxl kills the bootloader after LIBXL_BOOTLOADER_TIMEOUT s."""
    if args.runas is None:
        return None
    try:
        limit = float(os.environ.get("LIBXL_BOOTLOADER_TIMEOUT", LIBXL_DEFAULT_TIMEOUT))
    except ValueError:
        limit = LIBXL_DEFAULT_TIMEOUT
    if limit <= 0:
        return None
    return time.monotonic() + max(limit - DEADLINE_MARGIN, limit / 2)


def transport_options(args: argparse.Namespace, ui: UI) -> TransportOptions:
    return TransportOptions(
        log=ui.info,
        deadline=restrict_deadline(args),
        timeout=args.timeout,
        retries=args.retries,
        max_size=args.max_size,
        ca_cert=args.ca_cert,
        insecure=args.insecure,
        tftp_blksize=args.tftp_blksize,
        tftp_windowsize=args.tftp_windowsize,
        verbose=args.verbose,
    )


def with_checksums(selection: Selection, args: argparse.Namespace) -> Selection:
    """Apply --kernel-sha256/--ramdisk-sha256 (they win over .treeinfo checksums)."""
    if args.kernel_sha256:
        selection = dataclasses.replace(
            selection, kernel=dataclasses.replace(selection.kernel, sha256=args.kernel_sha256)
        )
    if args.ramdisk_sha256:
        if selection.ramdisk is None:
            raise UsageError("--ramdisk-sha256 given, but there is no ramdisk to check")
        selection = dataclasses.replace(
            selection, ramdisk=dataclasses.replace(selection.ramdisk, sha256=args.ramdisk_sha256)
        )
    return selection


def find_and_fetch(
    args: argparse.Namespace,
    options: TransportOptions,
    ui: UI,
    targets_for: Callable[[Selection], Dict[str, Target]],
) -> Tuple[Fetched, str]:
    """Open the location, choose the files, stream them; return them and install args."""
    with contextlib.ExitStack() as trees:
        selection = choose(args, options, ui, trees)
        checker = BootChecker(args.check, args.guest_type, args.arch, ui)
        fetched = download(selection, targets_for(selection), options, ui,
                           cache=open_cache(args), checker=checker)
    return fetched, selection.install_args


def open_cache(args: argparse.Namespace) -> Optional["Cache"]:
    """The shared cache, unless turned off, absent by default, or under --runas."""
    if args.no_cache or args.runas is not None:
        return None
    from .cache import DEFAULT_CACHE_DIR, Cache

    directory = args.cache_dir
    if directory is None:
        if not os.path.isdir(DEFAULT_CACHE_DIR):
            return None
        directory = DEFAULT_CACHE_DIR
    return Cache(directory, args.cache_size)


def choose(
    args: argparse.Namespace, options: TransportOptions, ui: UI, trees: contextlib.ExitStack
) -> Selection:
    """Open the location (into *trees*) and decide which files to boot, saying why."""
    location = None
    if args.location:
        location = trees.enter_context(open_location(args.location, options))
        ui.info(f"Location {location.url('')}")
    selection = select_files(location, args.kernel, args.ramdisk, options, trees, arch=args.arch)
    selection = with_checksums(selection, args)
    ui.info(f"Found {selection.reason}")
    return selection


def kernel_args(args: argparse.Namespace, install_args: str) -> str:
    """--args, plus the installer's source unless given there or --no-install-args."""
    if args.no_install_args or not install_args:
        return args.args
    return merge_install_args(args.args, install_args)


def dry_run(args: argparse.Namespace, options: TransportOptions, ui: UI) -> int:
    """--dry-run: show what would be booted; fetch nothing, write no file."""
    with contextlib.ExitStack() as trees:
        selection = choose(args, options, ui, trees)
        sys.stdout.write(describe(selection, kernel_args(args, selection.install_args)))
        sys.stdout.flush()
    return 0


def boot(args: argparse.Namespace) -> int:
    """Do the boot the parsed options describe; raise on any failure."""
    if not args.location and not args.kernel:
        raise UsageError("nothing to boot: give --location, or --kernel (and --ramdisk)")
    ui = UI(quiet=args.quiet, verbose=args.verbose)
    options = transport_options(args, ui)
    if args.insecure:
        ui.warning("TLS certificate verification is disabled (--insecure)")
    if args.dry_run:
        return dry_run(args, options, ui)
    directory = prepare_output_directory(args.output_directory)
    # Refuse a result libxl could not parse before spending time on downloads.
    probe = os.path.join(directory, "xenpvboot.check")
    format_result(BootResult(probe, probe, args.args), args.output_format)

    if args.runas is None:
        targets: Dict[str, Target] = {}

        def create(selection: Selection) -> Dict[str, Target]:
            for role in ("kernel", "ramdisk") if selection.ramdisk else ("kernel",):
                targets[role] = Target.create(directory, role)
            return targets

        fetched, install_args = find_and_fetch(args, options, ui, create)
    else:
        targets, fetched, install_args = _fetch_deprivileged(args, options, ui, directory)

    kernel = targets["kernel"].commit(fetched["kernel"][0])
    ramdisk: Optional[str] = None
    if "ramdisk" in fetched:
        ramdisk = targets["ramdisk"].commit(fetched["ramdisk"][0])
    data = format_result(BootResult(kernel, ramdisk, kernel_args(args, install_args)),
                         args.output_format)
    write_result(data, args.output)
    CLEANUP.keep(kernel)
    if ramdisk:
        CLEANUP.keep(ramdisk)
    return 0


def _fetch_deprivileged(
    args: argparse.Namespace, options: TransportOptions, ui: UI, directory: str
) -> Tuple[Dict[str, Target], Fetched, str]:
    """Create the files as root, let an unprivileged child fill them, check its report."""
    from . import cli, privsep  # noqa: F401  (imported while the code is readable)
    from .location import is_remote_spec, preload, preopen_local

    targets = {role: Target.create(directory, role) for role in ("kernel", "ramdisk")}
    if args.ca_cert:
        options = dataclasses.replace(options, ca_cert_data=_read_ca(args.ca_cert))
    if args.location:
        preopen_local(args.location)
    # A relative kernel/ramdisk lives in the location, an absolute local one
    # in a plain directory: only full URLs or NFS forms bring modules of their own.
    preload([args.location] + [spec for spec in (args.kernel, args.ramdisk)
                               if spec and is_remote_spec(spec)])
    if args.check != "off":
        from .check import preload as preload_check

        preload_check()

    def work() -> Dict[str, object]:
        fetched, install_args = find_and_fetch(args, options, ui, lambda selection: targets)
        report: Dict[str, object] = {"install_args": install_args}
        for role, (name, size) in fetched.items():
            report[role] = {"name": name, "size": size}
        return report

    report = privsep.run_as(args.runas, args.max_size, work)
    fetched: Fetched = {}
    for role, target in targets.items():
        checked = privsep.check_report_file(report, role, target.fileobj.fileno())
        if checked is not None:
            fetched[role] = checked
    if "kernel" not in fetched:
        raise BootError("the unprivileged helper reported no kernel")
    if "ramdisk" not in fetched:
        targets["ramdisk"].discard()
        os.unlink(targets["ramdisk"].partial)
        CLEANUP.forget(targets["ramdisk"].partial)
    install_args = report.get("install_args", "")
    if not isinstance(install_args, str):
        raise BootError("the unprivileged helper sent a bad report")
    return targets, fetched, install_args


def _read_ca(path: str) -> bytes:
    """Read --ca-cert while still root: the file may be readable by root only."""
    try:
        with open(path, "rb") as handle:
            return handle.read(1 << 20)
    except OSError as exc:
        raise UsageError(f"--ca-cert {path}: {exc.strerror or exc}") from None
