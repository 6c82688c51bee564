"""One boot, start to finish: the root parent's side.

The parent creates the output files, starts the worker (see :mod:`.worker`)
that opens the location, picks the files and streams them in -- dropped to
``--runas``'s uid in restricted mode -- then checks the worker's report
against the files, names them and writes the result for libxl.  Nothing
remote is parsed in this process.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import sys
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Dict, Optional, Sequence, Tuple

from .boot import Target, prepare_output_directory
from .check import BootChecker
from .cleanup import CLEANUP
from .download import download
from .errors import BootError, UsageError
from .layout import Selection, describe, select_files
from .layouts.installargs import merge as merge_install_args
from .location import open_location
from .output import BootResult, format_result, write_result
from .request import Request
from .transports import TransportOptions
from .ui import UI
from .worker import check_report_file, max_boot_seconds, run_worker

if TYPE_CHECKING:
    from .cache import Cache
    from .inject import AnswerFile

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
        """With --runas, libxl kills the bootloader after LIBXL_BOOTLOADER_TIMEOUT s."""
        now = time.monotonic() if now is None else now
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


def choose(request: Request, options: TransportOptions, ui: UI,
           trees: contextlib.ExitStack) -> Selection:
    """Open the location (into *trees*) and decide which files to boot, saying why."""
    location = None
    if request.location is not None:
        location = trees.enter_context(open_location(request.location, options))
        ui.info(f"Location {location.url('')}")
    selection = select_files(location, request.kernel, request.ramdisk, options, trees,
                             arch=request.arch)
    selection = with_checksums(selection, request)
    ui.info(f"Found {selection.reason}")
    return selection


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
                answers: Sequence["AnswerFile"] = ()) -> str:
    """--args, plus the installer's source and the arguments of the injected
    answer files, unless given there already or --no-install-args."""
    extra = [install_args] if install_args else []
    if answers:
        from .inject import answer_args

        legacy = install_args.split("=", 1)[0] in ("repo", "method")
        extra.append(answer_args([answer.name for answer in answers], installer, request.args,
                                 legacy_anaconda=legacy))
    words = " ".join(part for part in extra if part)
    if not request.install_args or not words:
        return request.args
    return merge_install_args(request.args, words)


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


# -- what the worker does -------------------------------------------------------------


def fetch_job(request: Request, options: TransportOptions, ui: UI,
              targets: Dict[str, Target], archive: bytes = b"") -> Dict[str, Any]:
    """In the worker: choose the files, stream them into *targets*, report."""
    with contextlib.ExitStack() as trees:
        selection = choose(request, options, ui, trees)
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
                              "installer": selection.installer}
    for role, (name, size) in fetched.items():
        report[role] = {"name": name, "size": size, "linked": targets[role].linked}
    return report


def dry_run_job(request: Request, options: TransportOptions, ui: UI,
                answers: Sequence["AnswerFile"] = ()) -> Dict[str, Any]:
    """In the worker: show what would be booted; fetch nothing, write no file."""
    with contextlib.ExitStack() as trees:
        selection = choose(request, options, ui, trees)
        args = kernel_args(request, selection.install_args, selection.installer, answers)
        sys.stdout.write(describe(selection, args))
        if answers:
            from .inject import describe as describe_answers

            sys.stdout.write("".join(line + "\n" for line in describe_answers(answers)))
        sys.stdout.flush()
    return {}


# -- the parent -----------------------------------------------------------------------


def boot(request: Request) -> int:
    """Do the boot *request* describes; raise on any failure."""
    if request.location is None and request.kernel is None:
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
    if request.dry_run:
        options, seccomp = _prepare_worker(request, options, bool(answers))
        run_worker(lambda: dry_run_job(request, options, ui, answers), deadlines.kill,
                   uid=request.runas, max_file_size=file_limit, seccomp=seccomp)
        return 0
    directory = prepare_output_directory(request.output_directory)
    # Refuse a result libxl could not parse before spending time on downloads.
    probe = os.path.join(directory, "xenpvboot.check")
    format_result(BootResult(probe, probe, request.args), request.output_format)
    targets = {role: Target.create(directory, role) for role in ROLES}
    options, seccomp = _prepare_worker(request, options, bool(answers))
    report = run_worker(lambda: fetch_job(request, options, ui, targets, archive), deadlines.kill,
                        uid=request.runas, max_file_size=file_limit, seccomp=seccomp)
    names = _checked_files(report, targets, restricted=request.runas is not None)
    install_args = report.get("install_args", "")
    installer = report.get("installer")
    if not isinstance(install_args, str) or not isinstance(installer, (str, type(None))):
        raise BootError("the worker process sent a bad report")
    kernel = targets["kernel"].commit(names["kernel"])
    ramdisk: Optional[str] = None
    if "ramdisk" in names:
        ramdisk = targets["ramdisk"].commit(names["ramdisk"])
    args = kernel_args(request, install_args, installer, answers)
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

    from . import sandbox
    from .layouts import report  # noqa: F401  (--dry-run's description)
    from .location import preload, preopen_disk

    if request.location is not None:
        preopen_disk(request.location, request.disk)
    preload(request.own_locations)
    if request.check != "off" or injecting:  # appending reads the ramdisk's start
        from .check import preload as preload_check

        preload_check()
    return options, sandbox.load_seccomp()


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
