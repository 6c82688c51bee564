"""The command line, parsed once into typed values that the boot passes down.

Built from argparse's namespace by :func:`from_args`, which parses the
location and file strings (raising their usage errors) so that nothing
below looks at the raw text again.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from typing import Optional, Tuple

from .errors import UsageError
from .location import FileSpec, Location, parse_file_spec, parse_location


@dataclass(frozen=True)
class Request:
    """One boot, as asked for."""

    location: Optional[Location]
    kernel: Optional[FileSpec]
    ramdisk: Optional[FileSpec]
    #: The kernel command line given (libxl's ``extra =``).
    args: str
    #: The last positional argument: the guest's first disk, which libxl passes.
    disk: Optional[str]
    output: Optional[str]
    output_directory: str
    output_format: str
    runas: Optional[int]
    arch: Optional[str] = None
    dry_run: bool = False
    install_args: bool = True
    quiet: bool = False
    verbose: bool = False
    ca_cert: Optional[str] = None
    insecure: bool = False
    timeout: float = 30.0
    retries: int = 3
    max_size: int = 1 << 30
    kernel_sha256: Optional[str] = None
    ramdisk_sha256: Optional[str] = None
    check: str = "warn"
    guest_type: str = "pv"
    cache_dir: Optional[str] = None
    cache_size: int = 4 << 30
    no_cache: bool = False
    tftp_blksize: Optional[int] = None
    tftp_windowsize: Optional[int] = None
    #: ``--no-ramdisk`` or an empty ``--ramdisk=``: the kernel boots alone.
    no_ramdisk: bool = False
    #: ``--initrd-inject`` paths, in the order given.
    initrd_inject: Tuple[str, ...] = ()
    #: ``--verify`` policy and the ``--keyring`` files.
    verify: str = "auto"
    keyrings: Tuple[str, ...] = ()
    #: The medium's boot menu: which entry, list them, use it at all; the
    #: guest's addresses for per-machine PXE menus.
    entry: Optional[str] = None
    list_entries: bool = False
    menu_args: bool = True
    mac: Optional[str] = None
    ip: Optional[object] = None

    @property
    def own_locations(self) -> Tuple[Location, ...]:
        """Every location the boot may open: ``--location`` and full-URL files."""
        found = [self.location] + [spec.own for spec in (self.kernel, self.ramdisk) if spec]
        return tuple(location for location in found if location is not None)


def from_args(ns: argparse.Namespace) -> Request:
    """The :class:`Request` the parsed options describe (UsageError if malformed)."""
    request = Request(
        location=parse_location(ns.location) if ns.location else None,
        kernel=parse_file_spec(ns.kernel) if ns.kernel else None,
        ramdisk=parse_file_spec(ns.ramdisk) if ns.ramdisk else None,
        no_ramdisk=ns.ramdisk == "",
        args=ns.args,
        disk=ns.disks[-1] if ns.disks else None,
        output=ns.output,
        output_directory=ns.output_directory,
        output_format=ns.output_format,
        runas=ns.runas,
        arch=ns.arch,
        dry_run=ns.dry_run,
        install_args=not ns.no_install_args,
        quiet=ns.quiet,
        verbose=ns.verbose,
        ca_cert=ns.ca_cert,
        insecure=ns.insecure,
        timeout=ns.timeout,
        retries=ns.retries,
        max_size=ns.max_size,
        kernel_sha256=ns.kernel_sha256,
        ramdisk_sha256=ns.ramdisk_sha256,
        check=ns.check,
        guest_type=ns.guest_type,
        cache_dir=ns.cache_dir,
        cache_size=ns.cache_size,
        no_cache=ns.no_cache,
        tftp_blksize=ns.tftp_blksize,
        tftp_windowsize=ns.tftp_windowsize,
        initrd_inject=tuple(ns.initrd_inject),
        verify=ns.verify,
        keyrings=tuple(ns.keyrings),
        entry=ns.entry,
        list_entries=ns.list_entries,
        menu_args=not ns.no_menu_args,
        mac=ns.mac,
        ip=ns.ip,
    )
    if not request.menu_args and (request.entry is not None or request.list_entries):
        raise UsageError("--entry and --list-entries need the menu that --no-menu-args ignores")
    return request
