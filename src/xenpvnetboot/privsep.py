"""``--runas``: do the network work and the parsing of remote data unprivileged.

libxl passes ``--runas=<uid>`` (with ``--quiet``) when a guest has
``bootloader_restrict = 1``.  The root parent creates the output files, then
forks a child that drops to that uid and its group, forbids itself new
privileges, new processes, core dumps and large files, and -- where the kernel
has Landlock -- any write or file creation through a path.  The child writes
only into the files the parent opened for it and reports back a small JSON
document; the parent checks that report against the files before it names
them and writes the result for libxl.
"""

from __future__ import annotations

import ctypes
import json
import os
import pwd
import resource
import sys
import traceback
from typing import Callable, Dict, List, Optional, Tuple

from .cleanup import CLEANUP
from .errors import BootError, UsageError, XenPVNetBootError

#: The largest report a child may send (two names and an argument string).
MAX_REPORT = 64 * 1024
#: CPU time for the child: a boot needs a few seconds; a parser stuck on a
#: hostile image is stopped by this even where a library cannot be interrupted.
CPU_SECONDS = 300
#: Address space for the child: Python, libcurl and OpenSSL fit well inside.
ADDRESS_SPACE = 2 << 30

_PR_SET_NO_NEW_PRIVS = 38
_SYS_LANDLOCK_CREATE_RULESET = 444
_SYS_LANDLOCK_RESTRICT_SELF = 446
_LANDLOCK_CREATE_RULESET_VERSION = 1
# Filesystem rights that change something: execute, write, remove, make nodes.
_LANDLOCK_WRITES_V1 = (
    (1 << 0) | (1 << 1) | (1 << 4) | (1 << 5) | (1 << 6) | (1 << 7)
    | (1 << 8) | (1 << 9) | (1 << 10) | (1 << 11) | (1 << 12)
)
_LANDLOCK_REFER = 1 << 13  # ABI 2
_LANDLOCK_TRUNCATE = 1 << 14  # ABI 3


def group_of(uid: int) -> int:
    """The primary group of *uid*, or the number itself when it has no passwd entry."""
    try:
        return pwd.getpwuid(uid).pw_gid
    except KeyError:
        return uid


def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(None, use_errno=True)


# -- no new processes: a seccomp filter --------------------------------------
# RLIMIT_NPROC cannot tell a thread from a process, and libcurl resolves host
# names in a thread, so new processes are refused by system call instead:
# fork, vfork, exec and clone without CLONE_THREAD fail with EPERM; clone3
# fails with ENOSYS so that the C library falls back to clone for threads.

_AUDIT_ARCH = {"x86_64": 0xC000003E, "aarch64": 0xC00000B7}
_NR = {
    "x86_64": {"clone": 56, "fork": 57, "vfork": 58, "execve": 59, "execveat": 322, "clone3": 435},
    "aarch64": {"clone": 220, "execve": 221, "execveat": 281, "clone3": 435},
}
_CLONE_THREAD = 0x00010000
_X32_BIT = 0x40000000
_BPF_LD_ABS = 0x20
_BPF_JEQ = 0x15
_BPF_JGE = 0x35
_BPF_JSET = 0x45
_BPF_RET = 0x06
_RET_ALLOW = 0x7FFF0000
_RET_ERRNO = 0x00050000
_PR_SET_SECCOMP = 22
_SECCOMP_MODE_FILTER = 2


class _SockFilter(ctypes.Structure):
    _fields_ = [("code", ctypes.c_uint16), ("jt", ctypes.c_uint8),
                ("jf", ctypes.c_uint8), ("k", ctypes.c_uint32)]


class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_uint16), ("filter", ctypes.POINTER(_SockFilter))]


def seccomp_program(machine: str) -> List[Tuple[int, int, int, int]]:
    """The BPF filter for *machine*, as (code, jt, jf, k) tuples.

    Written with labels and resolved here, so that no jump offset is counted
    by hand.
    """
    import errno as errno_mod

    nr = _NR[machine]
    deny = ("ret", _RET_ERRNO | errno_mod.EPERM)
    prog: List[tuple] = [
        ("ld", 4), ("jeq", _AUDIT_ARCH[machine], None, "deny"),
        ("ld", 0), ("jge", _X32_BIT, "deny", None),
    ]
    for name in ("fork", "vfork", "execve", "execveat"):
        if name in nr:
            prog.append(("jeq", nr[name], "deny", None))
    prog += [
        ("jeq", nr["clone3"], "nosys", None),
        ("jeq", nr["clone"], None, "allow"),
        ("ld", 16), ("jset", _CLONE_THREAD, "allow", "deny"),
        ("label", "allow"), ("ret", _RET_ALLOW),
        ("label", "deny"), deny,
        ("label", "nosys"), ("ret", _RET_ERRNO | errno_mod.ENOSYS),
    ]
    labels: Dict[str, int] = {}
    code: List[tuple] = []
    for item in prog:
        if item[0] == "label":
            labels[item[1]] = len(code)
        else:
            code.append(item)

    def offset(target: Optional[str], index: int) -> int:
        return 0 if target is None else labels[target] - index - 1

    out = []
    for index, item in enumerate(code):
        op = item[0]
        if op == "ld":
            out.append((_BPF_LD_ABS, 0, 0, item[1]))
        elif op == "ret":
            out.append((_BPF_RET, 0, 0, item[1]))
        else:
            opcode = {"jeq": _BPF_JEQ, "jge": _BPF_JGE, "jset": _BPF_JSET}[op]
            out.append((opcode, offset(item[2], index), offset(item[3], index), item[1]))
    return out


def forbid_new_processes() -> bool:
    """Install the seccomp filter (needs no_new_privs first); False if unsupported here."""
    machine = os.uname().machine
    if machine not in _NR:
        return False
    program = seccomp_program(machine)
    filters = (_SockFilter * len(program))(*[_SockFilter(*insn) for insn in program])
    fprog = _SockFprog(len(program), filters)
    return _libc().prctl(_PR_SET_SECCOMP, _SECCOMP_MODE_FILTER, ctypes.byref(fprog), 0, 0) == 0


def landlock_abi() -> int:
    """The kernel's Landlock ABI version, 0 where it has none."""
    abi = _libc().syscall(_SYS_LANDLOCK_CREATE_RULESET, None, 0, _LANDLOCK_CREATE_RULESET_VERSION)
    return max(abi, 0)


def forbid_writes() -> bool:
    """Deny every write, creation, removal and exec through a path (Landlock).

    Files opened before (the output files) stay writable.  Returns False when
    the kernel has no Landlock; the uid drop alone then keeps root's files safe.
    """
    libc = _libc()
    abi = landlock_abi()
    if abi < 1:
        return False
    handled = _LANDLOCK_WRITES_V1
    if abi >= 2:
        handled |= _LANDLOCK_REFER
    if abi >= 3:
        handled |= _LANDLOCK_TRUNCATE
    attr = ctypes.c_uint64(handled)
    fd = libc.syscall(_SYS_LANDLOCK_CREATE_RULESET, ctypes.byref(attr), ctypes.sizeof(attr), 0)
    if fd < 0:
        return False
    try:
        if libc.syscall(_SYS_LANDLOCK_RESTRICT_SELF, fd, 0) != 0:
            raise BootError(f"cannot enforce the write restriction: {os.strerror(ctypes.get_errno())}")
    finally:
        os.close(fd)
    return True


def drop_privileges(uid: int, max_file_size: int) -> None:
    """Become *uid* for good, with limits; raise BootError if any step fails."""
    gid = group_of(uid)
    try:
        os.chdir("/")
        os.setgroups([gid])
        os.setresgid(gid, gid, gid)
        os.setresuid(uid, uid, uid)
    except OSError as exc:
        raise BootError(f"--runas={uid}: cannot drop privileges: {exc.strerror or exc}") from None
    if os.getuid() != uid or os.geteuid() != uid or 0 in os.getgroups():
        raise BootError(f"--runas={uid}: privileges were not dropped")
    if _libc().prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
        raise BootError(f"--runas={uid}: cannot set no_new_privs")
    limits = (
        (resource.RLIMIT_CORE, 0),
        (resource.RLIMIT_FSIZE, max_file_size),
        (resource.RLIMIT_AS, ADDRESS_SPACE),
        (resource.RLIMIT_CPU, CPU_SECONDS),
    )
    for which, value in limits:
        resource.setrlimit(which, (value, value))
    if not forbid_new_processes():
        raise BootError(f"--runas={uid}: cannot forbid new processes (seccomp)")
    forbid_writes()


def _read_report(fd: int) -> bytes:
    chunks = []
    total = 0
    while True:
        data = os.read(fd, 65536)
        if not data:
            return b"".join(chunks)
        total += len(data)
        if total > MAX_REPORT:
            raise BootError("the unprivileged helper sent an oversized report")
        chunks.append(data)


def run_as(uid: int, max_file_size: int, work: Callable[[], Dict[str, object]]) -> Dict[str, object]:
    """Run *work* in a child dropped to *uid*; return its JSON-able report.

    The child's own errors are printed by the child (one line, as always) and
    its exit status is passed on; the parent then only cleans up.
    """
    if os.geteuid() != 0:
        if os.geteuid() == uid:
            return work()
        raise UsageError(f"--runas={uid} needs to be started as root")
    read_fd, write_fd = os.pipe()
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:  # the child: never returns
        os.close(read_fd)
        CLEANUP.files.clear()  # the parent owns and removes the files
        CLEANUP.dirs.clear()
        _child(uid, max_file_size, work, write_fd)
    CLEANUP.add_child(pid)
    os.close(write_fd)
    try:
        data = _read_report(read_fd)
    finally:
        os.close(read_fd)
    _, status = os.waitpid(pid, 0)
    CLEANUP.forget_child(pid)
    code = os.waitstatus_to_exitcode(status)
    if code != 0:
        raise _ChildFailed(code if code > 0 else 1)
    try:
        report = json.loads(data.decode())
    except (UnicodeDecodeError, ValueError):
        raise BootError("the unprivileged helper sent an unreadable report") from None
    if not isinstance(report, dict):
        raise BootError("the unprivileged helper sent an unreadable report")
    return report


class _ChildFailed(XenPVNetBootError):
    """The child already reported its error; exit with its status, silently."""

    def __init__(self, status: int) -> None:
        super().__init__("")
        self.exit_status = status
        self.silent = True


def report_error(exc: BaseException) -> None:
    from .cli import report_error as report

    report(exc)


def _child(uid: int, max_file_size: int, work: Callable[[], Dict[str, object]], fd: int) -> None:
    status = 1
    try:
        drop_privileges(uid, max_file_size)
        report = work()
        data = json.dumps(report).encode()
        while data:
            data = data[os.write(fd, data):]
        status = 0
    except XenPVNetBootError as exc:
        report_error(exc)
        status = exc.exit_status
    except BaseException as exc:  # a bug: show it, never let the child return
        traceback.print_exception(type(exc), exc, exc.__traceback__)
        status = 1
    finally:
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            os._exit(status)


def check_report_file(report: Dict[str, object], role: str, fd: int) -> Optional[Tuple[str, int]]:
    """Validate the child's word on one file against the file itself."""
    entry = report.get(role)
    if entry is None:
        return None
    if not isinstance(entry, dict):
        raise BootError(f"the unprivileged helper sent a bad report for the {role}")
    name, size = entry.get("name"), entry.get("size")
    if not isinstance(name, str) or not isinstance(size, int) or isinstance(size, bool):
        raise BootError(f"the unprivileged helper sent a bad report for the {role}")
    actual = os.fstat(fd).st_size
    if actual != size:
        raise BootError(f"the {role} is {actual} bytes, but the helper reported {size}")
    return name, size
