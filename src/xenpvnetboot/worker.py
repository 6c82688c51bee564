"""The worker: all network work and all parsing of remote data and images
happen in a child process, with or without ``--runas``.

The root parent never runs a parser or a C library on hostile bytes, so it
always answers SIGTERM at once: it kills the worker, removes what the run
created and exits, even when the worker is stuck inside a library that
cannot be interrupted.  The parent also enforces a wall-clock deadline (libxl
kills a restricted bootloader after ``LIBXL_BOOTLOADER_TIMEOUT`` seconds;
other boots get :data:`MAX_BOOT_SECONDS`), and the worker dies with its
parent (``PR_SET_PDEATHSIG``), so a SIGKILL from libxl leaves nothing running.

The worker writes only into files the parent created for it and sends back
a small JSON report, which the parent checks against those files.
"""

from __future__ import annotations

import json
import os
import select
import signal
import sys
import time
import traceback
from typing import Any, Callable, Dict, Optional

from .cleanup import CLEANUP, HANDLED_SIGNALS
from .errors import BootError, UsageError, XenPVNetBootError
from .reporting import report_error

#: The largest report a worker may send (two names and an argument string).
MAX_REPORT = 64 * 1024
#: Wall-clock bound of a boot outside restricted mode (libxl sets none), unless
#: the administrator's environment says otherwise (XENPVNETBOOT_MAX_SECONDS).
MAX_BOOT_SECONDS = 3600.0
ENV_MAX_SECONDS = "XENPVNETBOOT_MAX_SECONDS"

Report = Dict[str, Any]
Job = Callable[[], Report]


def max_boot_seconds(environ: Optional[Dict[str, str]] = None) -> float:
    """:data:`MAX_BOOT_SECONDS`, or the administrator's value from the environment."""
    environ = os.environ if environ is None else environ
    try:
        value = float(environ.get(ENV_MAX_SECONDS, MAX_BOOT_SECONDS))
    except ValueError:
        return MAX_BOOT_SECONDS
    return value if value > 0 else MAX_BOOT_SECONDS


def run_worker(job: Job, deadline: float, uid: Optional[int] = None,
               max_file_size: int = 1 << 30, seccomp: Any = None) -> Report:
    """Run *job* in a child (dropped to *uid* if given); return its report.

    *deadline* is a ``time.monotonic()`` value: the worker is killed then.
    The worker prints its own errors (one line, as always); the parent then
    exits with the worker's status without printing more.
    """
    if uid is not None and os.geteuid() != 0 and os.geteuid() != uid:
        raise UsageError(f"--runas={uid} needs to be started as root")
    read_fd, write_fd = os.pipe()
    sys.stdout.flush()
    sys.stderr.flush()
    parent = os.getpid()
    pid = os.fork()
    if pid == 0:  # the worker: never returns
        os.close(read_fd)
        _worker(job, write_fd, parent, uid, max_file_size, seccomp)
    CLEANUP.add_child(pid)
    os.close(write_fd)
    try:
        data = _read_report(read_fd, deadline, pid)
    finally:
        os.close(read_fd)
    _, status = os.waitpid(pid, 0)
    CLEANUP.forget_child(pid)
    code = os.waitstatus_to_exitcode(status)
    if code != 0:
        if code < 0:
            raise BootError(f"the worker process was killed by signal {-code}")
        raise WorkerFailed(code)
    try:
        report = json.loads(data.decode())
    except (UnicodeDecodeError, ValueError):
        raise BootError("the worker process sent an unreadable report") from None
    if not isinstance(report, dict):
        raise BootError("the worker process sent an unreadable report")
    return report


def _read_report(fd: int, deadline: float, pid: int) -> bytes:
    """The worker's report, read until it closes the pipe or the deadline passes."""
    chunks = []
    total = 0
    poller = select.poll()
    poller.register(fd, select.POLLIN)
    while True:
        left = deadline - time.monotonic()
        if left <= 0 or not poller.poll(min(left, 1.0) * 1000):
            if time.monotonic() < deadline:
                continue
            _kill(pid)
            raise BootError("gave up: the boot did not finish before its deadline "
                            "(libxl's LIBXL_BOOTLOADER_TIMEOUT, or "
                            f"{ENV_MAX_SECONDS} outside restricted mode)")
        data = os.read(fd, 65536)
        if not data:
            return b"".join(chunks)
        total += len(data)
        if total > MAX_REPORT:
            _kill(pid)
            raise BootError("the worker process sent an oversized report")
        chunks.append(data)


def _kill(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


class WorkerFailed(XenPVNetBootError):
    """The worker already reported its error; exit with its status, silently."""

    def __init__(self, status: int) -> None:
        super().__init__("")
        self.exit_status = status
        self.silent = True


def _worker(job: Job, fd: int, parent: int, uid: Optional[int], max_file_size: int,
            seccomp: Any) -> None:
    status = 1
    try:
        CLEANUP.files.clear()  # the parent owns and removes the files
        CLEANUP.dirs.clear()
        CLEANUP.children.clear()
        for signum in HANDLED_SIGNALS:  # the parent cleans up; the worker just dies
            signal.signal(signum, signal.SIG_DFL)
        if uid is not None and os.geteuid() == 0:
            from .sandbox import drop_privileges

            drop_privileges(uid, max_file_size, seccomp)
        from .sandbox import die_with_parent

        die_with_parent(parent)
        report = job()
        data = json.dumps(report).encode()
        while data:
            data = data[os.write(fd, data):]
        status = 0
    except XenPVNetBootError as exc:
        report_error(exc)
        status = exc.exit_status
    except KeyboardInterrupt:
        status = 1
    except BaseException as exc:  # a bug: show it, never let the worker return
        traceback.print_exception(type(exc), exc, exc.__traceback__)
        status = 1
    finally:
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            os._exit(status)


def check_report_file(report: Report, role: str, size_now: int) -> Optional[Dict[str, Any]]:
    """Validate the worker's word on one file against the file's real size."""
    entry = report.get(role)
    if entry is None:
        return None
    if not isinstance(entry, dict):
        raise BootError(f"the worker process sent a bad report for the {role}")
    name, size = entry.get("name"), entry.get("size")
    if not isinstance(name, str) or not isinstance(size, int) or isinstance(size, bool):
        raise BootError(f"the worker process sent a bad report for the {role}")
    if size_now != size:
        raise BootError(f"the {role} is {size_now} bytes, but the worker reported {size}")
    return entry


__all__ = ["MAX_BOOT_SECONDS", "WorkerFailed", "check_report_file", "max_boot_seconds",
           "run_worker"]
