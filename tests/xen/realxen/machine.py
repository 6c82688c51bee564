"""One boot of Xen in QEMU (TCG) that runs a whole job, and what it left.

The job directory is shared with dom0 over 9p: ``job.json`` (the scenarios,
as dom0's runner reads them), ``dom0/`` (init script, runner and the
harness's own bootloaders, copied from tests/xen/dom0 at each run), the ISO
that dom0 copies in, ``data/`` (files the scenarios name as ``{data}``), and
``out/`` where dom0 writes its results.  The run is
over when dom0 writes ``out/done.json`` (then dom0 powers off, or is
stopped) or QEMU exits; QEMU is always stopped by the time :func:`boot`
returns.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Sequence

from .prepare import DOM0_DIR, STUB_INIT_PATH, Prepared

#: Options measured to work for Xen 4.17 under TCG on these machines.
QEMU_OPTIONS = ["-accel", "tcg,thread=multi", "-smp", "2", "-m", "6144",
                "-cpu", "qemu64,+npt,+nrip-save", "-no-reboot", "-display", "none",
                "-monitor", "none"]
XEN_OPTIONS = ("console=com1 com1=115200,8n1 dom0_mem=2048M,max:2048M dom0_max_vcpus=2 "
               "noreboot bootscrub=false iommu=0")
DOM0_OPTIONS = f"root=/dev/vda rw console=hvc0 earlyprintk=xen init={STUB_INIT_PATH}"
#: Seconds for Xen and dom0 to reach the job, and to power off after it.
BOOT_ALLOWANCE = 240.0
POWEROFF_GRACE = 20.0


@dataclass
class Outcome:
    """What one boot produced."""

    results: Dict[str, dict]
    done: Optional[dict]
    serial_log: str
    job_dir: str
    seconds: float
    qemu_status: Optional[int]
    timed_out: bool
    progress: List[str] = field(default_factory=list)

    def probe(self, name: str) -> Optional[dict]:
        path = os.path.join(self.job_dir, "out", "probes", f"{name}.json")
        if not os.path.exists(path):
            return None
        with open(path) as handle:
            return json.load(handle)

    def serial_tail(self, size: int = 3000) -> str:
        try:
            with open(self.serial_log, "rb") as handle:
                return handle.read()[-size:].decode(errors="replace")
        except OSError:
            return ""


def hardlink_or_copy(source: str, target: str) -> None:
    try:
        os.link(source, target)
    except OSError:
        shutil.copyfile(source, target)


def make_job(job_dir: str, prepared: Prepared, scenarios: List[dict], concurrency: int,
             users: List[str], copy_iso_to: str, commands: Sequence[Sequence[str]] = (),
             data: Optional[Dict[str, str]] = None) -> None:
    """*data*: files for dom0's /job/data, name there -> path on the host."""
    if os.path.exists(job_dir):
        shutil.rmtree(job_dir)
    os.makedirs(os.path.join(job_dir, "out", "probes"))
    shutil.copytree(DOM0_DIR, os.path.join(job_dir, "dom0"))
    os.makedirs(os.path.join(job_dir, "data"))
    for name, source in (data or {}).items():
        shutil.copyfile(source, os.path.join(job_dir, "data", name))
    os.makedirs(os.path.join(job_dir, "media"))
    hardlink_or_copy(prepared.media.iso, os.path.join(job_dir, "media", "netboot.iso"))
    job = {"scenarios": scenarios, "concurrency": concurrency, "users": users,
           "copy": {"media/netboot.iso": copy_iso_to}, "commands": [list(c) for c in commands]}
    with open(os.path.join(job_dir, "job.json"), "w") as handle:
        json.dump(job, handle, indent=1)


def qemu_argv(prepared: Prepared, job_dir: str, serial_log: str) -> List[str]:
    base = prepared.base
    return ["qemu-system-x86_64", *QEMU_OPTIONS,
            "-kernel", prepared.xen, "-append", XEN_OPTIONS,
            "-initrd", f"{base.vmlinuz} {DOM0_OPTIONS},{base.initrd}",
            "-drive", f"file={base.image},format=raw,if=virtio,snapshot=on",
            "-drive", f"file={prepared.layer},format=raw,if=virtio,snapshot=on",
            "-virtfs", f"local,path={job_dir},mount_tag=job,security_model=none,id=job",
            "-nic", f"user,model=virtio-net-pci,tftp={prepared.media.tftp}",
            "-serial", f"file:{serial_log}"]


def stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def read_results(job_dir: str, names: List[str]) -> Dict[str, dict]:
    results = {}
    for name in names:
        path = os.path.join(job_dir, "out", name, "result.json")
        if os.path.exists(path):
            with open(path) as handle:
                results[name] = json.load(handle)
    return results


def boot(prepared: Prepared, job_dir: str, names: List[str], timeout: float,
         report: Callable[[str], None] = lambda line: None) -> Outcome:
    """Run the prepared job in one Xen boot; *report* gets dom0's progress lines."""
    out = os.path.join(job_dir, "out")
    serial_log = os.path.join(os.path.dirname(job_dir), "serial.log")
    progress_log = os.path.join(out, "progress.log")
    done_path = os.path.join(out, "done.json")
    start = time.monotonic()
    shown = 0
    lines: List[str] = []
    timed_out = False
    done_at: Optional[float] = None
    with open(os.path.join(os.path.dirname(job_dir), "qemu.log"), "wb") as qemu_log:
        process = subprocess.Popen(qemu_argv(prepared, job_dir, serial_log), stdin=subprocess.DEVNULL,
                                   stdout=qemu_log, stderr=subprocess.STDOUT)
    try:
        while process.poll() is None:
            time.sleep(1)
            if os.path.exists(progress_log):
                with open(progress_log, errors="replace") as handle:
                    text = handle.read()
                new = text[:text.rfind("\n") + 1].splitlines()[shown:]
                shown += len(new)
                for line in new:
                    lines.append(line)
                    report(line)
            if done_at is None and os.path.exists(done_path):
                done_at = time.monotonic()
            if done_at is not None and time.monotonic() - done_at > POWEROFF_GRACE:
                break
            if time.monotonic() - start > timeout:
                timed_out = True
                report(f"harness: no end after {timeout:.0f} s; stopping QEMU")
                break
    finally:
        stop(process)
    done = None
    if os.path.exists(done_path):
        with open(done_path) as handle:
            done = json.load(handle)
    return Outcome(read_results(job_dir, names), done, serial_log, job_dir,
                   round(time.monotonic() - start, 1), process.returncode, timed_out, lines)
