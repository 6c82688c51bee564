"""Command line: the options of the original xenpvnetboot and what libxl passes.

libxl runs ``xenpvnetboot [--kernel=K] [--ramdisk=R] [--args=A] [--runas=UID
--quiet] --output=F --output-format=simple0 --output-directory=D
<bootloader_args...> <disk>``; options come as ``--opt=value`` or ``--opt
value``, and the trailing disk path is accepted.

The guest's owner writes ``bootloader_args``, which libxl places after its
own options.  The options that decide where root writes, what libxl reads
back and which user does the work (:data:`LIBXL_OPTIONS`) therefore keep
their first value, libxl's, and a repeat is a usage error; for every other
option a later repeat wins, as ``kernel =`` repeated as ``--kernel`` in
``bootloader_args`` always has.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import sys
from typing import List, NoReturn, Optional, Sequence

from . import __version__
from .errors import UsageError, XenPVNetBootError
from .reporting import report_error

DEFAULT_OUTPUT_DIRECTORY = "/var/run/libxl"
_SIZE = re.compile(r"^\s*(\d+)\s*([KMGT]?)(i?B)?\s*$", re.IGNORECASE)
_UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}


def parse_size(text: str) -> int:
    """``1G``, ``512M``, ``64K`` or a byte count."""
    match = _SIZE.match(text)
    if not match:
        raise argparse.ArgumentTypeError(f"invalid size {text!r} (use e.g. 512M or 1G)")
    value = int(match.group(1)) * _UNITS[match.group(2).upper()]
    if value <= 0:
        raise argparse.ArgumentTypeError(f"size must be positive: {text!r}")
    return value


def parse_seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid number of seconds {text!r}") from None
    if not 0 < value <= 86400:
        raise argparse.ArgumentTypeError(f"seconds must be between 0 and 86400: {text!r}")
    return value


def parse_count(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid number {text!r}") from None
    if not 0 <= value <= 100:
        raise argparse.ArgumentTypeError(f"must be between 0 and 100: {text!r}")
    return value


def parse_sha256(text: str) -> str:
    value = text.strip().lower()
    if value.startswith("sha256:"):
        value = value[7:]
    if not re.fullmatch(r"[0-9a-f]{64}", value):
        raise argparse.ArgumentTypeError(f"not a SHA-256 digest (64 hex digits): {text!r}")
    return value


def parse_uid(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"--runas needs a numeric uid, not {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError("--runas needs a non-root uid")
    return value


def parse_arch(text: str) -> str:
    """A guest architecture under any common spelling -> its canonical name."""
    from .layouts.arch import ALIASES, canonical_arch

    value = canonical_arch(text)
    if value is None:
        raise argparse.ArgumentTypeError(
            f"unknown architecture {text!r} (use one of {', '.join(sorted(ALIASES))})"
        )
    return value


#: Options libxl sets before bootloader_args: given once, never overridden.
LIBXL_OPTIONS = ("--output", "--output-format", "--output-directory", "--runas")


class _Once(argparse.Action):
    """Store the first value; refuse any repeat, whatever spelling it uses."""

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace,
                 values: object, option_string: Optional[str] = None) -> None:
        seen = getattr(namespace, "_given", set())
        if self.dest in seen:
            raise UsageError(
                f"{self.option_strings[0]} given twice; it is set once, by libxl "
                "(a second value in bootloader_args is refused)"
            )
        seen.add(self.dest)
        namespace._given = seen
        setattr(namespace, self.dest, values)


def parse_mac(text: str) -> str:
    """``--mac``: a guest MAC address, for pxelinux.cfg/01-<mac> and BOOTIF=."""
    from .menus.pxe import parse_mac as parse

    return parse(text)


def parse_ip(text: str) -> object:
    """``--ip``: the guest's IPv4 address, for pxelinux.cfg/<hex> files."""
    from .menus.pxe import parse_ipv4

    return parse_ipv4(text)


class _Parser(argparse.ArgumentParser):
    """argparse that reports a usage error as one line (exit 2) without usage spam."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{message} (see --help)")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="xenpvnetboot",
        description="Fetch a kernel and ramdisk for a Xen PV/PVH guest from a "
        "network install tree, image or directory, and hand them to libxl.",
    )
    add = parser.add_argument
    add("--location", metavar="LOCATION",
        help="install tree: http://, https://, ftp://, tftp://, file:///path, "
        "nfs:host:/path, nfs+iso:host:/path/file.iso, a directory, an ISO or "
        "filesystem image, or a block device")
    add("--kernel", metavar="PATH", help="kernel, relative to --location, or a full URL or path")
    add("--ramdisk", metavar="PATH",
        help="ramdisk, relative to --location, or a full URL or path; empty: none")
    add("--no-ramdisk", dest="ramdisk", action="store_const", const="",
        help="boot the kernel without a ramdisk (as an empty --ramdisk= does)")
    add("--args", metavar="CMDLINE", default="", help="kernel command line to pass through")
    add("--arch", metavar="ARCH", type=parse_arch,
        help="guest architecture whose files to pick: x86_64 (amd64), i686 (i386, i586) or "
        "aarch64 (arm64); default: this host's")
    add("--entry", metavar="N|TITLE",
        help="boot this entry of the medium's own boot menu: an index from 0 as -l numbers "
        "them, a title, or part of one (default: the menu's default entry)")
    add("-l", "--list-entries", dest="list_entries", action="store_true",
        help="list the entries of the medium's boot menu and exit")
    add("--no-menu-args", action="store_true",
        help="ignore the medium's boot menu (its entries and their kernel arguments)")
    add("--mac", metavar="MAC", type=parse_mac,
        help="the guest's MAC address: selects pxelinux.cfg/01-MAC and adds BOOTIF=")
    add("--ip", metavar="IPV4", type=parse_ip,
        help="the guest's IPv4 address: selects pxelinux.cfg/ files named by its hex form")
    add("-n", "--dry-run", "--not-really", dest="dry_run", action="store_true",
        help="print the distribution, files, sizes and kernel arguments found; "
        "download and write nothing")
    add("--no-install-args", action="store_true",
        help="do not add the installer's source (inst.repo=, install=) to the kernel arguments")
    add("--output", metavar="FILE", action=_Once,
        help="where to write the result (default or '-': stdout)")
    add("--output-directory", metavar="DIR", default=DEFAULT_OUTPUT_DIRECTORY, action=_Once,
        help=f"where to put the kernel and ramdisk (default {DEFAULT_OUTPUT_DIRECTORY})")
    add("--output-format", choices=("sxp", "simple", "simple0"), default="sxp", action=_Once,
        help="result format (default sxp; libxl uses simple0)")
    add("-q", "--quiet", action="store_true", help="print errors only")
    add("-v", "--verbose", "--debug", action="store_true",
        help="print more detail: redirects, retries, negotiated protocol options, what the check found")
    add("--version", action="version", version=f"xenpvnetboot {__version__}")
    add("--ca-cert", metavar="FILE", help="trust this CA bundle for https instead of the system CAs")
    add("--insecure", action="store_true", help="do not verify TLS certificates (unsafe)")
    add("--timeout", metavar="SECONDS", type=parse_seconds, default=30.0,
        help="give up on a connection or transfer without progress after this long (default 30)")
    add("--retries", metavar="N", type=parse_count, default=3,
        help="retries of a failed transfer (default 3)")
    add("--max-size", metavar="SIZE", type=parse_size, default=1 << 30,
        help="largest file accepted, e.g. 512M (default 1G)")
    add("--kernel-sha256", metavar="HEX", type=parse_sha256,
        help="refuse the kernel unless its SHA-256 is this")
    add("--ramdisk-sha256", metavar="HEX", type=parse_sha256,
        help="refuse the ramdisk unless its SHA-256 is this")
    add("--check", choices=("strict", "warn", "off"), default="warn",
        help="inspect the kernel and ramdisk before handing them over: warn about "
        "problems (default), refuse to boot on any, or skip it")
    add("--guest-type", choices=("pv", "pvh"), default="pv",
        help="the guest's type= in xl.cfg, for the kernel check (default pv)")
    add("--cache-dir", metavar="DIR", default=None,
        help="keep fetched files here and reuse them while the server's copy is "
        "unchanged (default: /var/cache/xenpvnetboot when that directory exists)")
    add("--cache-size", metavar="SIZE", type=parse_size, default=4 << 30,
        help="largest total size of the cache, least recently used files go first (default 4G)")
    add("--no-cache", action="store_true", help="neither use nor fill the cache")
    add("--tftp-blksize", metavar="BYTES", type=int,
        help="TFTP block size to ask for (default: the largest that fits the path MTU "
        "unfragmented: 1468 on Ethernet)")
    add("--tftp-windowsize", metavar="BLOCKS", type=int, help="TFTP window size to ask for (default 16)")
    add("--verify", choices=("auto", "require", "off"), default="auto",
        help="follow the distribution's signature chain down to the files: where a chain and "
        "an installed key exist (default auto), for every file (require), or not at all (off)")
    add("--keyring", metavar="FILE", action="append", default=[], dest="keyrings",
        help="also trust the OpenPGP keys in FILE for --verify (repeatable)")
    add("--initrd-inject", metavar="PATH", action="append", default=[], dest="initrd_inject",
        help="add this local file (kickstart, preseed, AutoYaST profile) at the root of the "
        "installer's ramdisk; repeatable")
    add("--runas", metavar="UID", type=parse_uid, action=_Once,
        help="do the network work and parsing as this unprivileged uid (libxl's bootloader_restrict)")
    add("disks", nargs="*", metavar="DISK", help=argparse.SUPPRESS)
    return parser


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    args = build_parser().parse_args(argv)
    if hasattr(args, "_given"):
        del args._given
    return args


def run(argv: Optional[Sequence[str]] = None) -> int:
    """Parse, boot, write the result; return the exit status."""
    from .cleanup import CLEANUP

    try:
        args = parse_args(argv)
        from .request import from_args

        request = from_args(args)
        from .bootloader import boot

        with contextlib.ExitStack() as stack:
            stack.callback(CLEANUP.run)
            return boot(request)
    except XenPVNetBootError as exc:
        report_error(exc)
        return exc.exit_status
    except KeyboardInterrupt:
        report_error(XenPVNetBootError("interrupted"))
        return 1


def main(argv: Optional[List[str]] = None) -> int:
    from .cleanup import install_signal_handlers

    install_signal_handlers()
    status = run(argv)
    if argv is None:
        # The whole process is done: the result is written and closed, the
        # clean-up ran, the worker is gone.  Tearing the interpreter down
        # (hundreds of modules, pycurl, the check's buffers) would only add
        # some 20 ms between the last byte and libxl's turn.
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(Exception):
                stream.flush()
        os._exit(status)
    return status
