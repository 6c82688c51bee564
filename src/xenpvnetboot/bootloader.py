"""One boot, start to finish: the root parent's side.

The parent creates the output files, starts the worker (see :mod:`.worker`)
that opens the location, picks the files and streams them in -- dropped to
``--runas``'s uid in restricted mode -- then checks the worker's report
against the files, names them and writes the result for libxl.  Nothing
remote is parsed in this process.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Dict, Optional, Sequence, Tuple

from .boot import Target, prepare_output_directory
from .cleanup import CLEANUP
from .errors import BootError, UsageError
from .jobs import dry_run_job, fetch_job, kernel_args, list_job
from .output import BootResult, format_result, write_result
from .request import Request
from .transports import TransportOptions
from .ui import UI
from .worker import check_report_file, max_boot_seconds, run_worker

if TYPE_CHECKING:
    from .inject import AnswerFile
    from .verify import KeyringData

#: Seconds before libxl's restrict-mode kill at which retries stop, so that the
#: failure is reported by us, naming the server, rather than by the kill.
DEADLINE_MARGIN = 10.0
#: Seconds before libxl's kill at which the parent stops the worker itself.
KILL_MARGIN = 3.0
LIBXL_DEFAULT_TIMEOUT = 120.0
ROLES = ("kernel", "ramdisk")


@dataclass(frozen=True)
class Deadlines:
    """``time.monotonic()`` values: no retry starts after ``retry``; the worker
    is killed at ``kill``."""

    retry: Optional[float]
    kill: float

    @classmethod
    def for_request(cls, request: Request, now: Optional[float] = None) -> "Deadlines":
        """With --runas, libxl kills the bootloader after LIBXL_BOOTLOADER_TIMEOUT s,
        counted from when it started the process: the seconds the interpreter
        took to start (several under emulation) are already gone."""
        now = (time.monotonic() if now is None else now) - process_age()
        limit = None
        if request.runas is not None:
            try:
                limit = float(os.environ.get("LIBXL_BOOTLOADER_TIMEOUT", LIBXL_DEFAULT_TIMEOUT))
            except ValueError:
                limit = LIBXL_DEFAULT_TIMEOUT
        if limit is None or limit <= 0:
            bound = max_boot_seconds()
            return cls(retry=None, kill=now + bound)
        return cls(retry=now + max(limit - DEADLINE_MARGIN, limit / 2),
                   kill=now + max(limit - KILL_MARGIN, limit * 0.9))


def process_age() -> float:
    """Seconds since this process was started (by libxl's fork and exec); 0 if unknown."""
    try:
        with open("/proc/self/stat", "rb") as handle:
            fields = handle.read().rsplit(b")", 1)[1].split()
        with open("/proc/uptime", "rb") as handle:
            uptime = float(handle.read().split()[0])
        started = int(fields[19]) / os.sysconf("SC_CLK_TCK")  # field 22: starttime
    except (OSError, ValueError, IndexError):
        return 0.0
    return max(0.0, uptime - started)


def transport_options(request: Request, ui: UI, deadline: Optional[float]) -> TransportOptions:
    """The transports' settings; a --ca-cert bundle is read here, by root, once."""
    return TransportOptions(
        log=ui.info,
        deadline=deadline,
        timeout=request.timeout,
        retries=request.retries,
        max_size=request.max_size,
        ca_cert=request.ca_cert,
        ca_cert_data=_read_ca(request.ca_cert) if request.ca_cert else None,
        insecure=request.insecure,
        tftp_blksize=request.tftp_blksize,
        tftp_windowsize=request.tftp_windowsize,
        verbose=request.verbose,
    )


#: Where restricted mode takes --initrd-inject files from, unless the
#: administrator's environment names others (XENPVNETBOOT_INJECT_DIRS).
INJECT_DIRS = ("/etc/xen/answers",)
ENV_INJECT_DIRS = "XENPVNETBOOT_INJECT_DIRS"


def load_answers(request: Request) -> Tuple["AnswerFile", ...]:
    """Read --initrd-inject's files, as root, before anything is fetched.

    Their bytes end up in the guest.  Outside restricted mode the
    configuration is trusted as far as ``kernel =`` is (libxl reads that as
    root too); in restricted mode only the administrator's directories are
    read, so a configuration cannot copy a root-only file into its guest.
    """
    if not request.initrd_inject:
        return ()
    from .inject import load_answer_files

    allowed: Optional[Sequence[str]] = None
    if request.runas is not None:
        configured = os.environ.get(ENV_INJECT_DIRS)
        allowed = [path for path in configured.split(":") if path] if configured else INJECT_DIRS
    return load_answer_files(request.initrd_inject, allowed=allowed)


# -- the parent -----------------------------------------------------------------------


def boot(request: Request) -> int:
    """Do the boot *request* describes; raise on any failure."""
    if request.location is None and request.kernel is None and request.ramdisk is None:
        raise UsageError("nothing to boot: give --location, or --kernel (and --ramdisk)")
    ui = UI(quiet=request.quiet, verbose=request.verbose)
    deadlines = Deadlines.for_request(request)
    options = transport_options(request, ui, deadlines.retry)
    if request.insecure:
        ui.warning("TLS certificate verification is disabled (--insecure)")
    answers = load_answers(request)
    file_limit = request.max_size
    archive = b""
    if answers:
        from .inject import MAX_APPENDED, newc_archive

        archive = newc_archive(answers)
        file_limit += MAX_APPENDED
    keyrings = _read_keyrings(request)
    if request.list_entries:
        options, seccomp = _prepare_worker(request, options)
        run_worker(lambda: list_job(request, options, ui), deadlines.kill, uid=request.runas,
                   max_file_size=file_limit, seccomp=seccomp)
        return 0
    if request.dry_run:
        options, seccomp = _prepare_worker(request, options, bool(answers))
        run_worker(lambda: dry_run_job(request, options, ui, answers, keyrings), deadlines.kill,
                   uid=request.runas, max_file_size=file_limit, seccomp=seccomp)
        return 0
    directory = prepare_output_directory(request.output_directory)
    # Refuse a result libxl could not parse before spending time on downloads.
    probe = os.path.join(directory, "xenpvboot.check")
    format_result(BootResult(probe, probe, request.args), request.output_format)
    targets = {role: Target.create(directory, role) for role in ROLES}
    options, seccomp = _prepare_worker(request, options, bool(answers))
    report = run_worker(lambda: fetch_job(request, options, ui, targets, archive, keyrings),
                        deadlines.kill, uid=request.runas, max_file_size=file_limit,
                        seccomp=seccomp)
    names = _checked_files(report, targets, restricted=request.runas is not None)
    if request.runas is not None and report.get("verify") is not None:
        _confirm_signed_hashes(report, targets)
    install_args = report.get("install_args", "")
    installer = report.get("installer")
    menu_args = report.get("menu_args", "")
    if (not isinstance(install_args, str) or not isinstance(installer, (str, type(None)))
            or not isinstance(menu_args, str)):
        raise BootError("the worker process sent a bad report")
    kernel = targets["kernel"].commit(names["kernel"])
    ramdisk: Optional[str] = None
    if "ramdisk" in names:
        ramdisk = targets["ramdisk"].commit(names["ramdisk"])
    args = kernel_args(request, install_args, installer, answers, menu_args)
    data = format_result(BootResult(kernel, ramdisk, args), request.output_format)
    write_result(data, request.output)
    CLEANUP.keep(kernel)
    if ramdisk:
        CLEANUP.keep(ramdisk)
    return 0


def _prepare_worker(request: Request, options: TransportOptions,  # type: ignore[no-untyped-def]
                    injecting: bool = False):
    """What a --runas worker needs from root before it drops: the disk libxl
    passed (opened as root), the --ca-cert bundle, every module it will run,
    and libseccomp.  Returns the options to use and the seccomp module."""
    if request.runas is None:
        return options, None
    import encodings.idna  # noqa: F401  (socket.getaddrinfo of a host name needs it)

    from . import menuboot, menus, sandbox  # noqa: F401  (the boot menu's parsers)
    from .layouts import report  # noqa: F401  (--dry-run's description)
    from .location import preload, preopen_disk

    if request.location is not None:
        preopen_disk(request.location, request.disk)
    preload(request.own_locations)
    if request.check != "off" or injecting:  # appending reads the ramdisk's start
        from .check import preload as preload_check

        preload_check()
    if request.verify != "off":
        from .verify import preload as preload_verify

        preload_verify()
    return options, sandbox.load_seccomp()


def _read_keyrings(request: Request) -> Sequence["KeyringData"]:
    """The --keyring files and the system's keyrings, read by root once.

    Keys are public: their bytes only ever decide what is trusted for this
    guest's own files, and are never shown.
    """
    if request.verify == "off":
        return ()
    from .verify import read_keyrings

    return read_keyrings(request.keyrings)


def _confirm_signed_hashes(report: Dict[str, Any], targets: Dict[str, Target]) -> None:
    """Under --runas, trust the worker's verdicts only with what root recomputes:
    each verified file's SHA-256, over the bytes that came from the location."""
    from .verify import Report
    from .verify.images import sha256_fd

    verdicts = Report.from_wire(report.get("verify"))
    for role, target in targets.items():
        entry = report.get(role)
        if not isinstance(entry, dict) or target.read_fd is None:
            continue
        length = entry.get("downloaded")
        if not isinstance(length, int) or isinstance(length, bool) or length < 0:
            raise BootError(f"the worker process sent a bad report for the {role}")
        verdicts.confirm(role, sha256_fd(target.read_fd, length))


def _checked_files(report: Dict[str, Any], targets: Dict[str, Target],
                   restricted: bool) -> Dict[str, str]:
    """role -> basename of each file the worker filled, checked against the file."""
    names: Dict[str, str] = {}
    for role, target in targets.items():
        entry = report.get(role)
        linked = isinstance(entry, dict) and entry.get("linked") is True
        if linked and restricted:
            raise BootError("the unprivileged worker reported a file it cannot have made")
        size = target.size_now(linked)
        checked = check_report_file(report, role, size)
        if checked is not None:
            names[role] = checked["name"]
    if "kernel" not in names:
        raise BootError("the worker process reported no kernel")
    if "ramdisk" not in names:
        targets["ramdisk"].remove()
    return names


def _read_ca(path: str) -> bytes:
    """Read --ca-cert while still root.

    Its bytes only ever become libcurl's trust anchors: nothing of it reaches
    the guest or the console, so a root-only bundle may be named.  Only a
    regular file is read (a FIFO or terminal would block), and at most 1 MiB.
    """
    import stat

    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:
        raise UsageError(f"--ca-cert {path}: {exc.strerror or exc}") from None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise UsageError(f"--ca-cert {path}: not a regular file")
        return os.read(fd, 1 << 20)
    except OSError as exc:
        raise UsageError(f"--ca-cert {path}: {exc.strerror or exc}") from None
    finally:
        os.close(fd)
