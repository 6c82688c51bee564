"""Run the bootloader exactly the way libxl does, and read its result the same way.

libxl (tools/libs/light/libxl_bootloader.c; checked against Xen 4.17 in
tests/xen, whose probe compares this imitation with the real thing)
pre-creates the output directory (``mkdir(dir, 0600)``: no search bit, root
enters it anyway) and the output file (mode 0600), builds the argv in a fixed
order, and starts the bootloader with ``login_tty`` on a pty that it puts in
raw mode (``cfmakeraw``: no output processing, so a bare LF does not return
the carriage; 0 rows, 0 columns): a new session whose controlling terminal
is that pty, TERM=vt100 added to the environment, and the bootloader log
(``/var/log/xen/bootloader.<domid>.log``, opened for appending) leaked as one
more open file descriptor; everything read from the pty is appended to that
log.  In restricted mode it kills the bootloader with SIGKILL after
``LIBXL_BOOTLOADER_TIMEOUT`` seconds (120 by default, 0 for none).  On exit
status 0 it parses the simple0 result (NUL-separated ``word value`` items),
opens the kernel and ramdisk and unlinks them; in every case it then removes
the output file and the output directory with whatever is left in it.

Stricter than libxl on purpose: the result must end with the empty item and
have nothing after it (libxl reads up to the end of the file and only warns
about items it does not know).
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import os
import pty
import re
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import termios
import time
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence

BOOTLOADER = [sys.executable, "-m", "xenpvnetboot"]
#: libxl's restrict-mode limit when LIBXL_BOOTLOADER_TIMEOUT is not set.
LIBXL_DEFAULT_TIMEOUT = 120


@dataclass
class BootloaderRun:
    """What one run did, as libxl would see it."""

    argv: List[str]
    status: int
    console: str  # what the pty showed, CR LF turned into LF
    console_bytes: bytes = b""  # exactly what the pty showed (libxl's log holds the same)
    killed_by_timeout: bool = False  # libxl's restrict-mode SIGKILL
    items: Dict[str, str] = field(default_factory=dict)
    kernel: Optional[bytes] = None
    ramdisk: Optional[bytes] = None
    kernel_sha256: Optional[str] = None
    ramdisk_sha256: Optional[str] = None
    kernel_mode: Optional[int] = None
    leftovers: List[str] = field(default_factory=list)
    output_unchanged: bool = True

    @property
    def args(self) -> Optional[str]:
        return self.items.get("args")

    @property
    def error_lines(self) -> List[str]:
        return [line for line in self.console.splitlines() if "error" in line]


def build_argv(
    bootloader_args: Sequence[str],
    output: str,
    output_directory: str,
    kernel: Optional[str] = None,
    ramdisk: Optional[str] = None,
    cmdline: Optional[str] = None,
    runas: Optional[int] = None,
    disk: str = "/var/lib/xen/images/guest.img",
    output_format: str = "simple0",
    bootloader: Optional[Sequence[str]] = None,
) -> List[str]:
    """The argv libxl builds, in libxl's order."""
    argv = list(BOOTLOADER if bootloader is None else bootloader)
    if kernel is not None:
        argv.append(f"--kernel={kernel}")
    if ramdisk is not None:
        argv.append(f"--ramdisk={ramdisk}")
    if cmdline:
        argv.append(f"--args={cmdline}")
    if runas is not None:
        argv += [f"--runas={runas}", "--quiet"]
    argv += [f"--output={output}", f"--output-format={output_format}",
             f"--output-directory={output_directory}"]
    argv += list(bootloader_args)
    argv.append(disk)
    return argv


#: An item as libxl splits it: the word, at least one isspace() character, the value.
_ITEM = re.compile(r"([^\s]+)[ \t\n\v\f\r]+(.*)", re.DOTALL)


def parse_simple0(data: bytes) -> Dict[str, str]:
    """Items of a simple0 result, parsed like libxl: NUL-ended, then an empty one."""
    items: Dict[str, str] = {}
    pos = 0
    while True:
        end = data.index(b"\0", pos)  # a missing terminator is a ValueError
        item = data[pos:end].decode()
        pos = end + 1
        if not item:
            break
        match = _ITEM.fullmatch(item)
        if match is None:  # libxl: "unexpected output from bootloader"
            raise ValueError(f"item libxl would not understand: {item!r}")
        items[match.group(1)] = match.group(2)
    if pos != len(data):
        raise ValueError(f"trailing bytes after the end item: {data[pos:]!r}")
    return items


def make_raw(fd: int) -> None:
    """cfmakeraw(3), as libxl applies it to the bootloader's pty."""
    attrs = termios.tcgetattr(fd)
    attrs[0] &= ~(termios.IGNBRK | termios.BRKINT | termios.PARMRK | termios.ISTRIP
                  | termios.INLCR | termios.IGNCR | termios.ICRNL | termios.IXON)
    attrs[1] &= ~termios.OPOST
    attrs[3] &= ~(termios.ECHO | termios.ECHONL | termios.ICANON | termios.ISIG | termios.IEXTEN)
    attrs[2] &= ~(termios.CSIZE | termios.PARENB)
    attrs[2] |= termios.CS8
    attrs[6][termios.VMIN] = 1
    attrs[6][termios.VTIME] = 0
    termios.tcsetattr(fd, termios.TCSANOW, attrs)


def _take_terminal() -> None:
    """The rest of login_tty(3) in the child: the pty becomes the controlling terminal."""
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)


def restrict_timeout(runas: Optional[int], env: Dict[str, str]) -> Optional[float]:
    """When libxl kills a restricted bootloader (atoi of the variable; 0: never)."""
    if runas is None:
        return None
    match = re.match(r"\s*([+-]?\d+)", env.get("LIBXL_BOOTLOADER_TIMEOUT", ""))
    seconds = int(match.group(1)) if match else (
        0 if "LIBXL_BOOTLOADER_TIMEOUT" in env else LIBXL_DEFAULT_TIMEOUT)
    return float(seconds) if seconds else None


def _read_pty(master: int, proc: subprocess.Popen, timeout: float, log: int,
              kill_at: Optional[float] = None) -> bytes:
    """Everything the bootloader shows, copied to the log as libxl does."""
    chunks: List[bytes] = []
    deadline = time.monotonic() + timeout
    while True:
        if kill_at is not None and time.monotonic() > kill_at and proc.poll() is None:
            proc.send_signal(signal.SIGKILL)  # libxl: "killing bootloader because of timeout"
            proc.wait()
            break
        if time.monotonic() > deadline:
            proc.kill()
            raise TimeoutError(f"bootloader still running after {timeout} s")
        wait = 0.2 if kill_at is None else max(0.0, min(0.2, kill_at - time.monotonic()))
        ready, _, _ = select.select([master], [], [], wait)
        if ready:
            try:
                data = os.read(master, 65536)
            except OSError as exc:
                if exc.errno == errno.EIO:
                    break
                raise
            if not data:
                break
            chunks.append(data)
            os.write(log, data)
        elif proc.poll() is not None:
            # drain whatever is still buffered
            try:
                while select.select([master], [], [], 0)[0]:
                    data = os.read(master, 65536)
                    if not data:
                        break
                    chunks.append(data)
                    os.write(log, data)
            except OSError:
                pass
            break
    return b"".join(chunks)


def run_bootloader(
    bootloader_args: Sequence[str],
    workdir: str,
    kernel: Optional[str] = None,
    ramdisk: Optional[str] = None,
    cmdline: Optional[str] = None,
    runas: Optional[int] = None,
    output_format: str = "simple0",
    env: Optional[Dict[str, str]] = None,
    timeout: float = 120.0,
    keep_bytes: int = 1 << 20,
    kill_after: Optional[float] = None,
    disk: str = "/var/lib/xen/images/guest.img",
    bootloader: Optional[Sequence[str]] = None,
) -> BootloaderRun:
    """Run as libxl does; *kill_after* sends SIGTERM that many seconds in (libxl
    does when the domain dies)."""
    outdir = os.path.join(workdir, "bootloader.7.d")
    # libxl's mode 0600 has no search bit: only root can use the directory.
    os.mkdir(outdir, 0o600 if os.geteuid() == 0 else 0o700)
    output = os.path.join(workdir, "bootloader.7.out")
    fd = os.open(output, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.close(fd)
    argv = build_argv(bootloader_args, output, outdir, kernel, ramdisk, cmdline, runas,
                      disk=disk, output_format=output_format, bootloader=bootloader)
    child_env = dict(os.environ)
    child_env.update({"TERM": "vt100"})
    if env:
        child_env.update(env)
    limit = restrict_timeout(runas, child_env)
    # libxl's log lives apart from the output directory (/var/log/xen): a scratch file here.
    handle, log_path = tempfile.mkstemp(prefix="bootloader.7.", suffix=".log")
    os.close(handle)
    log = os.open(log_path, os.O_WRONLY | os.O_APPEND)
    master, slave = pty.openpty()  # 0 rows, 0 columns
    make_raw(master)
    start = time.monotonic()
    try:
        proc = subprocess.Popen(argv, stdin=slave, stdout=slave, stderr=slave, env=child_env,
                                start_new_session=True, close_fds=True, pass_fds=(log,),
                                preexec_fn=_take_terminal)
    finally:
        os.close(slave)
    try:
        if kill_after is not None:
            time.sleep(kill_after)
            proc.send_signal(signal.SIGTERM)
        kill_at = start + limit if limit is not None else None
        console_bytes = _read_pty(master, proc, timeout, log, kill_at)
        status = proc.wait(timeout=timeout)
    finally:
        os.close(master)
        os.close(log)
        os.unlink(log_path)
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    console = console_bytes.decode(errors="replace").replace("\r\n", "\n")
    run = BootloaderRun(argv=argv, status=status, console=console, console_bytes=console_bytes,
                        killed_by_timeout=status == -signal.SIGKILL and kill_at is not None
                        and time.monotonic() >= kill_at)
    with open(output, "rb") as handle:
        data = handle.read()
    run.output_unchanged = data == b""
    if status == 0 and output_format == "simple0":
        run.items = parse_simple0(data)
        for role in ("kernel", "ramdisk"):
            path = run.items.get(role)
            if path is None:
                continue
            assert os.path.isabs(path), f"{role} path {path!r} is not absolute"
            assert os.path.dirname(path) == outdir, f"{role} {path} not in {outdir}"
            with open(path, "rb") as handle:  # libxl opens, then unlinks
                content_hash = hashlib.sha256()
                head = b""
                while True:
                    block = handle.read(1 << 20)
                    if not block:
                        break
                    if len(head) < keep_bytes:
                        head += block[: keep_bytes - len(head)]
                    content_hash.update(block)
            setattr(run, f"{role}_sha256", content_hash.hexdigest())
            setattr(run, role, head)
            if role == "kernel":
                run.kernel_mode = os.stat(path).st_mode & 0o777
            os.unlink(path)
    run.leftovers = sorted(os.listdir(outdir))
    os.unlink(output)
    shutil.rmtree(outdir)
    return run


def sha256_file(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
