"""Restricted mode cannot be switched off from inside, reads only what its user
may read, and contains a worker that an exploit controls; the root parent
always answers, and no worker outlives it.

These run as root for real: the worker drops to a uid, and the tests show
what it can no longer do.
"""

from __future__ import annotations

import ctypes
import encodings.idna  # noqa: F401  (the dropped child resolves names; the worker preloads it too)
import errno
import os
import signal
import socket
import subprocess
import sys
import time

import pytest
from support.dropped import run_dropped
from support.env import need_root
from support.http_server import TestHTTPServer
from support.libxl import BOOTLOADER, build_argv, run_bootloader

from xenpvnetboot import sandbox

UID = 40123


@pytest.fixture(autouse=True)
def _root():
    need_root()


@pytest.fixture
def private_tree(tmp_path):
    """An install tree only root can read."""
    tree = tmp_path / "private"
    os.makedirs(tree / "images/pxeboot")
    (tree / "images/pxeboot/vmlinuz").write_bytes(b"kernel")
    (tree / "images/pxeboot/initrd.img").write_bytes(b"initrd")
    os.chmod(tree, 0o700)
    return tree


def test_dry_run_runs_unprivileged_under_runas(private_tree, workdir):
    run = run_bootloader([f"--location={private_tree}", "-n"], workdir, runas=UID)
    assert run.status == 1, run.console
    assert "Permission denied" in run.console
    as_root = subprocess.run(BOOTLOADER + [f"--location={private_tree}", "-n"],
                             capture_output=True, text=True, timeout=60)
    assert as_root.returncode == 0 and "images/pxeboot/vmlinuz" in as_root.stdout


def test_local_kernel_path_opened_with_the_users_rights(public_dir, workdir):
    secret = public_dir / "shadow"
    secret.write_bytes(b"root:$6$secret")
    os.chmod(secret, 0o600)
    public = public_dir / "public"
    public.mkdir()
    (public / "vmlinuz").write_bytes(b"kernel")
    os.chmod(public, 0o755)
    os.chmod(public / "vmlinuz", 0o644)
    run = run_bootloader([f"--location={public}", f"--ramdisk={secret}", "--check=off"],
                         workdir, runas=UID, kernel="vmlinuz")
    assert run.status == 1, run.console
    assert "Permission denied" in run.console and str(secret) in run.console
    assert run.leftovers == [] and run.output_unchanged


def _errno_of(action):
    try:
        action()
    except OSError as exc:
        return exc.errno
    return 0


def _libc_errno(name, *args):
    libc = ctypes.CDLL(None, use_errno=True)
    result = getattr(libc, name)(*args)
    return ctypes.get_errno() if result == -1 else 0


def test_worker_cannot_leave_its_box():
    """Namespaces, foreign signals, ptrace, io_uring, odd socket families: refused.
    Threads, name resolution and TCP to loopback still work."""
    victim = subprocess.Popen(["sleep", "30"], preexec_fn=lambda: os.setuid(UID))
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(b"\0xenpvnetboot-test-abstract")
    listener.listen(1)
    tcp = socket.socket()
    tcp.bind(("127.0.0.1", 0))
    tcp.listen(1)
    port = tcp.getsockname()[1]

    def check():
        import threading

        box = {}
        thread = threading.Thread(target=lambda: box.setdefault("ran", True))
        thread.start()
        thread.join()

        def abstract():
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
                sock.connect(b"\0xenpvnetboot-test-abstract")

        def connect_tcp():
            with socket.create_connection(("127.0.0.1", port), timeout=5):
                pass

        return {
            "unshare_user": _libc_errno("unshare", 0x10000000),
            "unshare_net": _libc_errno("unshare", 0x40000000),
            "setns": _libc_errno("setns", 0, 0),
            "kill_same_uid": _errno_of(lambda: os.kill(victim.pid, 0)),
            "kill_parent": _errno_of(lambda: os.kill(os.getppid(), 0)),
            "kill_self": _errno_of(lambda: os.kill(os.getpid(), 0)),
            "ptrace": _libc_errno("ptrace", 16, victim.pid, 0, 0),
            "io_uring": _libc_errno("syscall", 425, 8, None),
            "packet": _errno_of(lambda: socket.socket(socket.AF_PACKET, socket.SOCK_RAW)),
            "vsock": _errno_of(lambda: socket.socket(40, socket.SOCK_STREAM)),
            "netlink_audit": _errno_of(lambda: socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, 9)),
            "netlink_route": _errno_of(lambda: socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, 0).close()),
            "abstract": _errno_of(abstract),
            "fork": _errno_of(lambda: os.waitpid(os.fork(), 0)),
            "exec": _errno_of(lambda: os.execv("/bin/true", ["true"])),
            "thread": box.get("ran", False),
            "resolve": _errno_of(lambda: socket.getaddrinfo("localhost", 80)),
            "tcp": _errno_of(connect_tcp),
            "bind_tcp": _errno_of(lambda: socket.socket().bind(("127.0.0.1", 0))),
        }

    try:
        result = run_dropped(UID, check)
        assert "error" not in result, result
    finally:
        victim.kill()
        victim.wait()
        listener.close()
        tcp.close()
    assert result["unshare_user"] == errno.EPERM
    assert result["unshare_net"] == errno.EPERM
    assert result["setns"] == errno.EPERM
    assert result["kill_same_uid"] == errno.EPERM, "another process of the same uid"
    assert result["kill_parent"] == errno.EPERM
    assert result["kill_self"] == 0
    assert result["ptrace"] == errno.EPERM
    assert result["io_uring"] == errno.EPERM
    assert result["packet"] == errno.EAFNOSUPPORT
    assert result["vsock"] == errno.EAFNOSUPPORT
    assert result["netlink_audit"] == errno.EPROTONOSUPPORT
    assert result["netlink_route"] == 0
    assert result["fork"] == errno.EPERM and result["exec"] != 0
    assert result["thread"] is True
    assert result["resolve"] == 0 and result["tcp"] == 0
    if sandbox.landlock_abi() >= 6:
        assert result["abstract"] == errno.EPERM
    if sandbox.landlock_abi() >= 4:
        assert result["bind_tcp"] == 0  # an ephemeral port: what clients bind
    assert sandbox.landlock_abi() >= 6, "this machine's kernel should have Landlock ABI 6"


def test_landlock_refuses_a_fixed_tcp_port():
    if sandbox.landlock_abi() < 4:
        pytest.skip("the kernel has no Landlock network rules (ABI 4)")
    result = run_dropped(UID, lambda: {"bind": _errno_of(lambda: socket.socket().bind(("127.0.0.1", 48123)))})
    assert result["bind"] == errno.EACCES


def test_seccomp_rules_are_data():
    rules = sandbox.seccomp_rules(1234)
    names = {name for name, _, _ in rules}
    assert {"unshare", "setns", "ptrace", "io_uring_setup", "execve", "clone", "clone3",
            "kill", "socket"} <= names
    assert ("kill", errno.EPERM, ((0, "NE", 1234, 0),)) in rules


# -- the worker: killable, bounded, never outliving the parent -------------------------------


def _processes_with(marker):
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as handle:
                cmdline = handle.read()
        except OSError:
            continue
        if marker.encode() in cmdline:
            found.append(int(entry))
    return found


def _start(args, workdir, runas=None, env=None):
    out = os.path.join(workdir, "bootloader.9.out")
    outdir = os.path.join(workdir, "bootloader.9.d")
    os.makedirs(outdir, mode=0o700)
    open(out, "wb").close()
    argv = build_argv(args, out, outdir, runas=runas)
    child_env = dict(os.environ, **(env or {}))
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, env=child_env, start_new_session=True)
    return proc, out, outdir


@pytest.fixture
def stalling_server(tmp_path):
    root = tmp_path / "stall"
    os.makedirs(root / "images/pxeboot")
    (root / "images/pxeboot/vmlinuz").write_bytes(os.urandom(8192))
    (root / "images/pxeboot/initrd.img").write_bytes(os.urandom(1 << 20))
    server = TestHTTPServer(str(root)).start()
    server.faults["/images/pxeboot/initrd.img"] = "stall"
    yield server
    server.stop()


def _wait_for_worker(marker, parent):
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        others = [pid for pid in _processes_with(marker) if pid != parent]
        if others:
            return others
        time.sleep(0.05)
    raise AssertionError("no worker process appeared")


def _terminate_and_check_clean(proc, out, outdir):
    """SIGTERM *proc*: it must exit 1 within a second and leave nothing behind."""
    start = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=5)
    took = time.monotonic() - start
    output = proc.stdout.read().decode()
    assert took < 1.0, took
    assert proc.returncode == 1 and "interrupted by SIGTERM" in output
    time.sleep(0.2)
    assert _processes_with(outdir) == []
    assert os.listdir(outdir) == [] and os.path.getsize(out) == 0


@pytest.mark.parametrize("runas", [None, UID])
def test_sigkill_of_the_parent_takes_the_worker_along(stalling_server, workdir, runas):
    proc, out, outdir = _start([f"--location={stalling_server.url()}", "--timeout=60"],
                               workdir, runas=runas)
    try:
        workers = _wait_for_worker(outdir, proc.pid)
        time.sleep(0.5)  # well into the stalled transfer
        proc.kill()  # what libxl does on its timeout
        proc.wait()
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and any(os.path.exists(f"/proc/{pid}") and
                                                   _processes_with(outdir) for pid in workers):
            time.sleep(0.05)
        assert _processes_with(outdir) == [], "the worker outlived its parent"
    finally:
        if proc.poll() is None:
            proc.kill()


def test_sigterm_answered_at_once_whatever_the_worker_does(stalling_server, workdir):
    """A worker stuck for good (stopped, as a parser spinning in C would be) does
    not delay the parent: SIGTERM cleans up and exits within a second."""
    proc, out, outdir = _start([f"--location={stalling_server.url()}", "--timeout=60"], workdir)
    try:
        workers = _wait_for_worker(outdir, proc.pid)
        time.sleep(0.3)
        for pid in workers:
            os.kill(pid, signal.SIGSTOP)
        _terminate_and_check_clean(proc, out, outdir)
    finally:
        if proc.poll() is None:
            proc.kill()


def test_deadline_stops_a_worker_that_never_finishes(stalling_server, workdir):
    proc, out, outdir = _start([f"--location={stalling_server.url()}", "--timeout=600"], workdir,
                               env={"XENPVNETBOOT_MAX_SECONDS": "3"})
    try:
        workers = _wait_for_worker(outdir, proc.pid)
        for pid in workers:
            os.kill(pid, signal.SIGSTOP)
        proc.wait(timeout=20)
        output = proc.stdout.read().decode()
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 1
    assert "did not finish before its deadline" in output
    assert output.count("xenpvnetboot: error:") == 1
    assert _processes_with(outdir) == []
    assert os.listdir(outdir) == [] and os.path.getsize(out) == 0


def test_no_work_in_the_root_parent():
    """The parent imports no transport, image reader or checker: parsing is the worker's."""
    code = (
        "import sys, xenpvnetboot.bootloader as b, xenpvnetboot.worker as w\n"
        "bad = [m for m in sys.modules if m.startswith(('pycurl', 'pytsk3', 'pycdlib', "
        "'nfs_rs', 'PySquashfsImage', 'xenpvnetboot.containers', 'xenpvnetboot.bootcheck'))]\n"
        "print(bad)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout


def test_worker_report_cannot_lie_about_sizes(http_server, workdir, monkeypatch):
    """The parent checks the report against the files it created."""
    from xenpvnetboot.errors import BootError
    from xenpvnetboot.worker import check_report_file

    with pytest.raises(BootError, match="reported 99"):
        check_report_file({"kernel": {"name": "vmlinuz", "size": 99}}, "kernel", 5)
    with pytest.raises(BootError, match="bad report"):
        check_report_file({"kernel": {"name": 5, "size": 5}}, "kernel", 5)
    assert BOOTLOADER


@pytest.fixture(scope="module")
def crowded_iso(tmp_path_factory):
    """An ISO whose directories take pycdlib seconds to parse at open: a boot
    that is busy inside an image reader, as a hostile image would keep it."""
    from support.env import need_program
    from support.images import build_iso

    need_program("xorriso", "xorriso")
    root = tmp_path_factory.mktemp("crowded")
    tree = root / "tree"
    for index in range(40):
        directory = tree / f"d{index}"
        directory.mkdir(parents=True)
        for number in range(1000):
            (directory / f"f{number}").write_bytes(b"")
    return build_iso(str(tree), str(root / "crowded.iso"), "rockridge")


@pytest.mark.parametrize("after", [0.3, 0.8, 1.5])
def test_sigterm_while_parsing_an_image(crowded_iso, workdir, after):
    proc, out, outdir = _start([f"--location={crowded_iso}"], workdir)
    try:
        time.sleep(after)
        assert proc.poll() is None, "the boot ended before the signal: the image is too small"
        _terminate_and_check_clean(proc, out, outdir)
    finally:
        if proc.poll() is None:
            proc.kill()
