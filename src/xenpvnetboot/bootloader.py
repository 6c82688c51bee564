"""One boot, start to finish: open the location, pick the files, fetch, report."""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import os

from .boot import fetch_selection, prepare_output_directory
from .cleanup import CLEANUP
from .errors import UsageError
from .layout import Selection, select_files
from .location import open_location
from .output import BootResult, format_result, write_result
from .transports import TransportOptions
from .ui import UI


def transport_options(args: argparse.Namespace, ui: UI) -> TransportOptions:
    return TransportOptions(
        log=ui.info,
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


def boot(args: argparse.Namespace) -> int:
    """Do the boot the parsed options describe; raise on any failure."""
    if not args.location and not args.kernel:
        raise UsageError("nothing to boot: give --location, or --kernel (and --ramdisk)")
    ui = UI(quiet=args.quiet, verbose=args.verbose)
    options = transport_options(args, ui)
    if args.insecure:
        ui.warning("TLS certificate verification is disabled (--insecure)")
    directory = prepare_output_directory(args.output_directory)
    # Refuse a result libxl could not parse before spending time on downloads.
    probe = os.path.join(directory, "xenpvboot.check")
    format_result(BootResult(probe, probe, args.args), args.output_format)

    with contextlib.ExitStack() as trees:
        location = None
        if args.location:
            location = trees.enter_context(open_location(args.location, options))
            ui.info(f"Location {location.url('')}")
        selection = select_files(location, args.kernel, args.ramdisk, options, trees)
        selection = with_checksums(selection, args)
        ui.debug(f"Chose {selection.reason}")
        kernel, ramdisk = fetch_selection(selection, directory, options, ui)

    data = format_result(BootResult(kernel, ramdisk, args.args), args.output_format)
    write_result(data, args.output)
    CLEANUP.keep(kernel)
    if ramdisk:
        CLEANUP.keep(ramdisk)
    return 0
