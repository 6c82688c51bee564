"""``--runas``: what an unprivileged worker can no longer do.

libxl passes ``--runas=<uid>`` (with ``--quiet``) in restricted mode.  The
worker process that does the network work and parses remote data and images
(see :mod:`.worker`) then drops to that uid and its group for good, and
before it touches any input closes what a compromised parser could still
use:

* no new privileges, no core dumps, bounded file size, address space and CPU;
* a seccomp filter, built by libseccomp (through ``pyseccomp``): no new
  processes or programs, no namespaces (so no private network stack with raw
  sockets), no ptrace or reading other processes' memory, signals only to
  itself, no io_uring (whose operations seccomp cannot see), no BPF or
  perf events, and sockets only of the families the transports need;
* Landlock, where the kernel has it: no write, creation, removal or execution
  through any path (the output files were opened before), no TCP bind but to
  an ephemeral port (ABI 4), and neither signals nor abstract unix sockets
  outside its own domain (ABI 6).

TCP connect is not restricted by Landlock: FTP data connections and
redirects go to ports known only at run time, so a port list could not be
exact.  Where a connection may go is checked per address instead (see
:mod:`.transports.peers`).
"""

from __future__ import annotations

import ctypes
import errno
import os
import pwd
import resource
import socket
from typing import Any, List, Tuple

from .errors import BootError

#: CPU time for the worker: a boot needs a few seconds; a parser stuck on a
#: hostile image is stopped by this even where a library cannot be interrupted.
CPU_SECONDS = 300
#: Address space for the worker: Python, libcurl and OpenSSL fit well inside.
ADDRESS_SPACE = 2 << 30
#: Socket families a transport may open: unix (the C library's name service),
#: IPv4, IPv6, and netlink (the C library asks it which address families the
#: host has, to order name-resolution answers).
SOCKET_FAMILIES = (socket.AF_UNIX, socket.AF_INET, socket.AF_INET6, socket.AF_NETLINK)
_NETLINK_ROUTE = 0
#: Above every address family Linux defines (AF_MAX is 46 in Linux 6.x).
_FAMILY_CEILING = 64

_PR_SET_NO_NEW_PRIVS = 38
_PR_SET_PDEATHSIG = 1
_CLONE_THREAD = 0x00010000
#: CLONE_NEWNS, NEWCGROUP, NEWUTS, NEWIPC, NEWUSER, NEWPID, NEWNET, NEWTIME.
_CLONE_NEW_FLAGS = (0x00020000, 0x02000000, 0x04000000, 0x08000000,
                    0x10000000, 0x20000000, 0x40000000, 0x00000080)
#: System calls refused outright: namespaces, other processes, kernel
#: interfaces a parser never needs and an exploit would.
DENIED_SYSCALLS = (
    "fork", "vfork", "execve", "execveat",
    "unshare", "setns",
    "ptrace", "process_vm_readv", "process_vm_writev",
    "pidfd_open", "pidfd_getfd", "pidfd_send_signal", "tkill",
    "io_uring_setup", "io_uring_enter", "io_uring_register",
    "bpf", "perf_event_open", "userfaultfd", "keyctl", "add_key", "request_key",
    "mount", "umount2", "pivot_root", "chroot", "move_mount", "open_tree", "fsopen",
    "fsmount", "fspick", "mount_setattr",
)
#: Signal system calls whose first argument is the target process.
_SIGNAL_SYSCALLS = ("kill", "tgkill", "rt_sigqueueinfo", "rt_tgsigqueueinfo")


def group_of(uid: int) -> int:
    """The primary group of *uid*, or the number itself when it has no passwd entry."""
    try:
        return pwd.getpwuid(uid).pw_gid
    except KeyError:
        return uid


def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(None, use_errno=True)


# -- seccomp ------------------------------------------------------------------------


def load_seccomp() -> Any:
    """libseccomp's Python binding: pyseccomp (pip) or seccomp (Debian's
    python3-seccomp, the same interface); None when neither is there.

    Imported before the drop: afterwards the worker may neither read the
    Python installation nor run ``ldconfig`` (pyseccomp finds the library
    with it at import).
    """
    import importlib

    for name in ("pyseccomp", "seccomp"):
        try:
            return importlib.import_module(name)
        except (ImportError, RuntimeError, OSError):
            continue
    return None


def seccomp_rules(pid: int) -> List[Tuple[str, int, Tuple[Tuple[int, str, int, int], ...]]]:
    """The filter as data: (syscall, errno, conditions) to refuse, for process *pid*.

    A condition is ``(argument, operator, value, mask)``, libseccomp's
    comparison (``MASKED_EQ``: ``argument & mask == value``); every rule's conditions must all hold for the call to be
    refused.  clone3 fails with ENOSYS so that the C library falls back to
    clone, whose flags a filter can see.
    """
    rules: List[Tuple[str, int, Tuple[Tuple[int, str, int, int], ...]]] = []
    rules += [(name, errno.EPERM, ()) for name in DENIED_SYSCALLS]
    rules.append(("clone3", errno.ENOSYS, ()))
    rules.append(("clone", errno.EPERM, ((0, "MASKED_EQ", 0, _CLONE_THREAD),)))
    rules += [("clone", errno.EPERM, ((0, "MASKED_EQ", flag, flag),)) for flag in _CLONE_NEW_FLAGS]
    rules += [(name, errno.EPERM, ((0, "NE", pid, 0),)) for name in _SIGNAL_SYSCALLS]
    for family in range(_FAMILY_CEILING):
        if family not in SOCKET_FAMILIES:
            for call in ("socket", "socketpair"):
                rules.append((call, errno.EAFNOSUPPORT, ((0, "EQ", family, 0),)))
    rules += [(call, errno.EAFNOSUPPORT, ((0, "GE", _FAMILY_CEILING, 0),))
              for call in ("socket", "socketpair")]
    # netlink only for the routing family (read-only for an unprivileged user)
    rules.append(("socket", errno.EPROTONOSUPPORT,
                  ((0, "EQ", socket.AF_NETLINK, 0), (2, "NE", _NETLINK_ROUTE, 0))))
    return rules


def install_seccomp(library: Any, pid: int) -> None:
    """Load the filter of :func:`seccomp_rules` into this process (and its threads)."""
    filt = library.SyscallFilter(library.ALLOW)
    for name, code, conditions in seccomp_rules(pid):
        if library.resolve_syscall(library.Arch.NATIVE, name) == _UNKNOWN_SYSCALL:
            continue  # a name this libseccomp does not know at all
        args = []
        for index, operator, value, mask in conditions:
            if operator == "MASKED_EQ":
                args.append(library.Arg(index, library.MASKED_EQ, mask, value))
            else:
                args.append(library.Arg(index, getattr(library, operator), value))
        filt.add_rule(library.ERRNO(code), name, *args)
    # Threads started later (libcurl's resolver) inherit the filter.
    filt.load()


#: What libseccomp answers for a system call name it does not know.
_UNKNOWN_SYSCALL = -1


# -- Landlock -------------------------------------------------------------------------

_SYS_LANDLOCK_CREATE_RULESET = 444
_SYS_LANDLOCK_ADD_RULE = 445
_SYS_LANDLOCK_RESTRICT_SELF = 446
_LANDLOCK_CREATE_RULESET_VERSION = 1
_LANDLOCK_RULE_NET_PORT = 2
# Filesystem rights that change something: execute, write, remove, make nodes.
_FS_WRITES_V1 = (
    (1 << 0) | (1 << 1) | (1 << 4) | (1 << 5) | (1 << 6) | (1 << 7)
    | (1 << 8) | (1 << 9) | (1 << 10) | (1 << 11) | (1 << 12)
)
_FS_REFER = 1 << 13  # ABI 2
_FS_TRUNCATE = 1 << 14  # ABI 3
_NET_BIND_TCP = 1 << 0  # ABI 4
_SCOPE_ABSTRACT_UNIX_SOCKET = 1 << 0  # ABI 6
_SCOPE_SIGNAL = 1 << 1  # ABI 6


class _RulesetAttr(ctypes.Structure):
    _fields_ = [("handled_access_fs", ctypes.c_uint64), ("handled_access_net", ctypes.c_uint64),
                ("scoped", ctypes.c_uint64)]


class _NetPortAttr(ctypes.Structure):
    _pack_ = 1
    _fields_ = [("allowed_access", ctypes.c_uint64), ("port", ctypes.c_uint64)]


def landlock_abi() -> int:
    """The kernel's Landlock ABI version, 0 where it has none."""
    abi = _libc().syscall(_SYS_LANDLOCK_CREATE_RULESET, None, 0, _LANDLOCK_CREATE_RULESET_VERSION)
    return max(abi, 0)


def landlock_ruleset(abi: int) -> Tuple[_RulesetAttr, int]:
    """The ruleset for *abi* and the size of the attribute that ABI knows."""
    attr = _RulesetAttr(_FS_WRITES_V1, 0, 0)
    size = 8
    if abi >= 2:
        attr.handled_access_fs |= _FS_REFER
    if abi >= 3:
        attr.handled_access_fs |= _FS_TRUNCATE
    if abi >= 4:
        attr.handled_access_net = _NET_BIND_TCP
        size = 16
    if abi >= 6:
        attr.scoped = _SCOPE_ABSTRACT_UNIX_SOCKET | _SCOPE_SIGNAL
        size = 24
    return attr, size


def forbid_writes() -> int:
    """Apply the Landlock ruleset; return the ABI enforced (0: the kernel has none).

    Files opened before (the output files) stay writable.  Without Landlock
    the uid drop alone keeps root's files safe.
    """
    libc = _libc()
    abi = landlock_abi()
    if abi < 1:
        return 0
    attr, size = landlock_ruleset(abi)
    fd = libc.syscall(_SYS_LANDLOCK_CREATE_RULESET, ctypes.byref(attr), size, 0)
    if fd < 0:
        raise BootError(f"cannot create the Landlock ruleset: {os.strerror(ctypes.get_errno())}")
    try:
        if abi >= 4:  # an ephemeral source port (port 0) is all a client binds
            port = _NetPortAttr(_NET_BIND_TCP, 0)
            if libc.syscall(_SYS_LANDLOCK_ADD_RULE, fd, _LANDLOCK_RULE_NET_PORT,
                            ctypes.byref(port), 0) != 0:
                raise BootError(f"cannot add a Landlock rule: {os.strerror(ctypes.get_errno())}")
        if libc.syscall(_SYS_LANDLOCK_RESTRICT_SELF, fd, 0) != 0:
            raise BootError(f"cannot enforce the write restriction: {os.strerror(ctypes.get_errno())}")
    finally:
        os.close(fd)
    return abi


# -- putting it together --------------------------------------------------------------


def die_with_parent(parent: int) -> None:
    """SIGKILL this process when *parent* dies (libxl may SIGKILL it).

    Set after the uid change (changing credentials clears it), then checked:
    a parent that died before the call would never deliver the signal.
    """
    import signal

    if _libc().prctl(_PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0) != 0:
        raise BootError("cannot ask to die with the parent process (PR_SET_PDEATHSIG)")
    if os.getppid() != parent:
        os._exit(1)


def drop_privileges(uid: int, max_file_size: int, seccomp: Any = None) -> None:
    """Become *uid* for good, with limits; raise BootError if any step fails.

    *seccomp* is the module :func:`load_seccomp` returned (loaded before the
    drop); without it the worker refuses to run, as it would not be contained.
    """
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
    if seccomp is None:
        raise BootError(f"--runas={uid}: cannot restrict system calls: libseccomp and the "
                        "Python package pyseccomp are needed (apt-get install libseccomp2; "
                        "pip install pyseccomp)")
    try:
        install_seccomp(seccomp, os.getpid())
    except OSError as exc:
        raise BootError(f"--runas={uid}: cannot install the seccomp filter: {exc}") from None
    forbid_writes()


__all__ = ["ADDRESS_SPACE", "CPU_SECONDS", "DENIED_SYSCALLS", "SOCKET_FAMILIES", "die_with_parent",
           "drop_privileges", "forbid_writes", "group_of", "landlock_abi", "landlock_ruleset",
           "load_seccomp", "seccomp_rules"]
