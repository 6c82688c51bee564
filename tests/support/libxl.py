"""Run the bootloader exactly the way libxl does, and read its result the same way.

libxl (tools/libs/light/libxl_bootloader.c) pre-creates the output file (mode
0600) and the output directory, builds the argv in a fixed order, gives the
bootloader a pty as stdin/stdout/stderr with TERM=vt100, parses the simple0
result (NUL-separated ``word value`` items ended by an empty item), opens the
kernel and ramdisk, unlinks them, then removes the output file and directory.
"""

from __future__ import annotations

import errno
import hashlib
import os
import pty
import select
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence

BOOTLOADER = [sys.executable, "-m", "xenpvnetboot"]


@dataclass
class BootloaderRun:
    """What one run did, as libxl would see it."""

    argv: List[str]
    status: int
    console: str
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
) -> List[str]:
    """The argv libxl builds, in libxl's order."""
    argv = list(BOOTLOADER)
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
        word, _, value = item.partition(" ")
        items[word] = value.lstrip(" \t")
    if pos != len(data):
        raise ValueError(f"trailing bytes after the end item: {data[pos:]!r}")
    return items


def _read_pty(master: int, proc: subprocess.Popen, timeout: float) -> str:
    chunks: List[bytes] = []
    deadline = time.monotonic() + timeout
    while True:
        if time.monotonic() > deadline:
            proc.kill()
            raise TimeoutError(f"bootloader still running after {timeout} s")
        ready, _, _ = select.select([master], [], [], 0.2)
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
        elif proc.poll() is not None:
            # drain whatever is still buffered
            try:
                while select.select([master], [], [], 0)[0]:
                    data = os.read(master, 65536)
                    if not data:
                        break
                    chunks.append(data)
            except OSError:
                pass
            break
    return b"".join(chunks).decode(errors="replace").replace("\r\n", "\n")


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
) -> BootloaderRun:
    """Run as libxl does; *kill_after* sends SIGTERM that many seconds in."""
    outdir = os.path.join(workdir, "bootloader.7.d")
    os.makedirs(outdir, mode=0o700)
    output = os.path.join(workdir, "bootloader.7.out")
    fd = os.open(output, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    os.close(fd)
    argv = build_argv(bootloader_args, output, outdir, kernel, ramdisk, cmdline, runas,
                      disk=disk, output_format=output_format)
    child_env = dict(os.environ)
    child_env.update({"TERM": "vt100"})
    if env:
        child_env.update(env)
    master, slave = pty.openpty()
    try:
        proc = subprocess.Popen(argv, stdin=slave, stdout=slave, stderr=slave, env=child_env,
                                start_new_session=True, close_fds=True)
    finally:
        os.close(slave)
    try:
        if kill_after is not None:
            time.sleep(kill_after)
            proc.send_signal(signal.SIGTERM)
        console = _read_pty(master, proc, timeout)
        status = proc.wait(timeout=timeout)
    finally:
        os.close(master)
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    run = BootloaderRun(argv=argv, status=status, console=console)
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
