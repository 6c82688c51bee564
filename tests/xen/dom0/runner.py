"""Runs the job's scenarios in the test dom0 and records what happened.

Started by init.sh as ``python3 runner.py /job``.  For each scenario of
``/job/job.json`` it runs ``xl -vvv create``, waits for the expected text on
the guest console, destroys the guest and writes ``/job/out/<name>/``:
``result.json`` (facts for the judge on the host) beside the raw logs.  It
judges nothing itself.  A thread samples the processes of the bootloaders
all along, so that a result can tell which uid did the work and whether
anything outlived the bootloader.  Standard library only: this runs on
dom0's own Python.
"""

from __future__ import annotations

import json
import os
import pwd
import re
import shutil
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Dict, List, Optional

XEN_LIB = "/var/lib/xen"
CONSOLE_DIR = "/var/log/xen/console"
LOG_DIR = "/var/log/xen"
#: Bounds for one scenario: xl create itself, then the wait for the console.
CREATE_TIMEOUT = 480.0
CONSOLE_TIMEOUT = 420.0
#: How long after xl create returns a bootloader process still counts as left over.
LINGER = 3.0
SAMPLE_INTERVAL = 0.2
#: Only the head and tail of a big log are kept in result.json.
KEEP_CHARS = 200_000

ENV = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
       "HOME": "/root", "LANG": "C.UTF-8"}


def now() -> float:
    return time.monotonic()


def clip(text: str) -> str:
    if len(text) <= KEEP_CHARS:
        return text
    half = KEEP_CHARS // 2
    return text[:half] + "\n[... cut ...]\n" + text[-half:]


def read(path: str) -> str:
    try:
        with open(path, "rb") as handle:
            return handle.read().decode(errors="replace")
    except OSError:
        return ""


class ProcessWatch(threading.Thread):
    """Samples every bootloader process (its command line names libxl's output file)."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.lock = threading.Lock()
        self.seen: Dict[tuple, dict] = {}
        self.stopping = threading.Event()

    @staticmethod
    def scan() -> List[dict]:
        found = []
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                with open(f"/proc/{entry}/cmdline", "rb") as handle:
                    args = handle.read().split(b"\0")
                if not any(arg.startswith(b"--output=" + XEN_LIB.encode() + b"/bootloader.")
                           for arg in args):
                    continue
                status = read(f"/proc/{entry}/status")
            except OSError:
                continue
            fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
            found.append({
                "pid": int(entry),
                "ppid": int(fields.get("PPid", "0").strip() or 0),
                "uid": [int(x) for x in fields.get("Uid", "").split()],
                "gid": [int(x) for x in fields.get("Gid", "").split()],
                "no_new_privs": fields.get("NoNewPrivs", "").strip(),
                "seccomp": fields.get("Seccomp", "").strip(),
                "args": [arg.decode(errors="replace") for arg in args if arg],
            })
        return found

    def run(self) -> None:
        while not self.stopping.wait(SAMPLE_INTERVAL):
            stamp = now()
            for proc in self.scan():
                key = (proc["pid"], tuple(proc["uid"]))
                with self.lock:
                    if key in self.seen:
                        self.seen[key]["last"] = stamp
                    else:
                        self.seen[key] = dict(proc, first=stamp, last=stamp)

    def of_domain(self, domid: int) -> List[dict]:
        marker = f"{XEN_LIB}/bootloader.{domid}.out"
        with self.lock:
            return [dict(p) for p in self.seen.values() if any(marker in a for a in p["args"])]


def run_xl(argv: List[str], env: Dict[str, str], start: float):
    """xl's status and its output lines, each with the second it came at.

    Past CREATE_TIMEOUT xl gets SIGTERM, not SIGKILL: libxl writes the
    bootloader log through a stdio buffer that only its clean-up flushes.
    """
    process = subprocess.Popen(argv, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT)
    timed: List[tuple] = []

    def collect() -> None:
        for raw in process.stdout:
            timed.append((now() - start, raw.decode(errors="replace")))

    reader = threading.Thread(target=collect, daemon=True)
    reader.start()
    try:
        status: Optional[int] = process.wait(timeout=CREATE_TIMEOUT)
    except subprocess.TimeoutExpired:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        status = None
    reader.join(timeout=10)
    if status is None:
        timed.append((now() - start, f"[harness: xl create stopped after {CREATE_TIMEOUT:.0f} s]\n"))
    return status, timed


def domain_processes(domid: int) -> List[dict]:
    marker = f"{XEN_LIB}/bootloader.{domid}.out"
    return [p for p in ProcessWatch.scan() if any(marker in a for a in p["args"])]


def leftovers(domid: int) -> List[str]:
    """What libxl's or our files of this domain are still in /var/lib/xen."""
    prefix = f"bootloader.{domid}."
    found = []
    for name in sorted(os.listdir(XEN_LIB)):
        if name.startswith(prefix):
            path = os.path.join(XEN_LIB, name)
            found.append(name)
            if os.path.isdir(path):
                found += [f"{name}/{inner}" for inner in sorted(os.listdir(path))]
    return found


def bootloader_mounts() -> List[str]:
    return [line for line in read("/proc/mounts").splitlines() if "bootloader." in line]


def domain_exists(name: str) -> bool:
    return subprocess.run(["xl", "domid", name], env=ENV, capture_output=True).returncode == 0


#: Terminal control sequences (CSI, character set and other ESC sequences)
#: that the installer's screens interleave with their text.
ESCAPES = re.compile(r"\x1b(?:\[[0-?]*[ -/]*[@-~]|[()*+][0-9A-Za-z]|[@-Z\\-_])")


def plain(text: str) -> str:
    return ESCAPES.sub("", text)


def wait_console(path: str, wait_for: List[List[str]], stop_on: List[str], start: float,
                 name: str) -> Dict[str, float]:
    """Seconds from the start of xl create to each awaited text, in order.

    Each awaited item is a list of alternatives, the mark is named by the one
    that came; a text of *stop_on* ends the wait (marked ``stopped: TEXT``)."""
    marks: Dict[str, float] = {}
    pending = [[item] if isinstance(item, str) else list(item) for item in wait_for]
    deadline = now() + CONSOLE_TIMEOUT
    polls = 0
    while pending and now() < deadline:
        text = plain(read(path))
        while pending:
            found = [alt for alt in pending[0] if alt in text]
            if not found:
                break
            marks[found[0]] = round(now() - start, 1)
            pending.pop(0)
        stopped = [bad for bad in stop_on if bad in text]
        if stopped:
            marks[f"stopped: {stopped[0]}"] = round(now() - start, 1)
            break
        if not pending:
            break
        polls += 1
        if polls % 10 == 0 and not domain_exists(name):  # xl is costly under emulation
            break
        time.sleep(0.5)
    return marks


def run_scenario(scenario: dict, out_root: str, watch: ProcessWatch, progress) -> None:
    name = scenario["name"]
    out = os.path.join(out_root, name)
    os.makedirs(out, exist_ok=True)
    cfg_path = f"/etc/xen/{name}.cfg"
    with open(cfg_path, "w") as handle:
        handle.write(scenario["cfg"])
    with open(f"/var/lib/xen/images/{name}.img", "wb") as handle:
        handle.truncate(64 << 20)  # sparse: libxl runs no bootloader without a disk
    env = dict(ENV, **scenario["env"])
    console = os.path.join(CONSOLE_DIR, f"guest-{name}.log")
    result: dict = {"name": name, "env": scenario["env"], "cfg": scenario["cfg"]}
    progress(f"{name}: xl create")
    start = now()
    result["xl_rc"], timed = run_xl(["xl", "-vvv", "create", cfg_path], env, start)
    xl_log = "".join(line for _, line in timed)
    with open(os.path.join(out, "xl-timed.log"), "w") as handle:
        handle.writelines(f"[{stamp:6.1f}] {line}" for stamp, line in timed)
    result["t_create"] = round(now() - start, 1)
    found = re.search(r"Domain (\d+):", xl_log)
    domid = int(found.group(1)) if found else None
    result["domid"] = domid
    progress(f"{name}: xl create status {result['xl_rc']} after {result['t_create']} s "
             f"(domain {domid})")
    if result["xl_rc"] == 0:
        result["marks"] = wait_console(console, scenario["wait_for"], scenario["stop_on"],
                                       start, name)
        progress(f"{name}: console {result['marks']}")
    else:
        result["marks"] = {}
        time.sleep(LINGER)  # a child that outlives the bootloader would show now
    if domid is not None:
        result["procs_after"] = domain_processes(domid)
    subprocess.run(["xl", "destroy", name], env=ENV, capture_output=True)
    result["t_total"] = round(now() - start, 1)
    result["domain_left"] = domain_exists(name)
    if domid is not None:
        result["leftovers"] = leftovers(domid)
        result["procs"] = watch.of_domain(domid)
        log_path = os.path.join(LOG_DIR, f"bootloader.{domid}.log")
        result["bootloader_log_hex"] = read_bytes_hex(log_path)
        if os.path.exists(log_path):
            shutil.copyfile(log_path, os.path.join(out, "bootloader.log"))
    result["mounts"] = bootloader_mounts()
    time.sleep(0.5)  # xenconsoled writes the last of the console log
    result["console"] = clip(read(console))
    result["xl_log"] = clip(xl_log)
    for key, text in (("xl.log", xl_log), ("console.log", result["console"])):
        with open(os.path.join(out, key), "w") as handle:
            handle.write(text)
    with open(os.path.join(out, "result.json"), "w") as handle:
        json.dump(result, handle, indent=1)
    progress(f"{name}: done in {result['t_total']} s")


def read_bytes_hex(path: str) -> str:
    """The log as hex, so that line endings survive JSON exactly."""
    try:
        with open(path, "rb") as handle:
            return handle.read(KEEP_CHARS).hex()
    except OSError:
        return ""


def run_command(number: int, argv: List[str], out_root: str, progress) -> None:
    """A diagnostic command of the job (XEN_DOM0_COMMANDS), timed, output kept."""
    os.makedirs(os.path.join(out_root, "commands"), exist_ok=True)
    start = now()
    try:
        done = subprocess.run(argv, env=ENV, capture_output=True, timeout=CREATE_TIMEOUT,
                              stdin=subprocess.DEVNULL)
        status, output = done.returncode, done.stdout + done.stderr
    except (OSError, subprocess.TimeoutExpired) as exc:
        status, output = None, repr(exc).encode()
    seconds = round(now() - start, 1)
    with open(os.path.join(out_root, "commands", f"{number}.txt"), "wb") as handle:
        handle.write(f"$ {' '.join(argv)}\n[status {status} after {seconds} s]\n".encode() + output)
    progress(f"command {number}: status {status} after {seconds} s: {' '.join(argv)[:100]}")


def make_users(names: List[str]) -> Dict[str, int]:
    uids = {}
    for name in names:
        try:
            uids[name] = pwd.getpwnam(name).pw_uid
            continue
        except KeyError:
            pass
        subprocess.run(["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin",
                        name], env=ENV, check=True)
        uids[name] = pwd.getpwnam(name).pw_uid
    return uids


def main(job_dir: str) -> int:
    with open(os.path.join(job_dir, "job.json")) as handle:
        job = json.load(handle)
    out_root = os.path.join(job_dir, "out")
    os.makedirs(out_root, exist_ok=True)
    log = open(os.path.join(out_root, "progress.log"), "a", buffering=1)
    begin = now()

    def progress(message: str) -> None:
        line = f"[{now() - begin:7.1f}] {message}"
        print(line, flush=True)
        log.write(line + "\n")

    summary: dict = {"uids": make_users(job.get("users", []))}
    for source, target in job.get("copy", {}).items():
        os.makedirs(os.path.dirname(target), exist_ok=True)
        shutil.copyfile(os.path.join(job_dir, source), target)
    summary["xl_info"] = subprocess.run(["xl", "info"], env=ENV, capture_output=True,
                                        text=True).stdout
    for number, command in enumerate(job.get("commands", [])):
        run_command(number, command, out_root, progress)
    watch = ProcessWatch()
    watch.start()
    with ThreadPoolExecutor(max_workers=max(1, int(job.get("concurrency", 1)))) as pool:
        futures = [pool.submit(run_scenario, s, out_root, watch, progress) for s in job["scenarios"]]
        for scenario, future in zip(job["scenarios"], futures):
            try:
                future.result()
            except Exception as exc:  # record, and go on with the others
                progress(f"{scenario['name']}: harness error {exc!r}")
                os.makedirs(os.path.join(out_root, scenario["name"]), exist_ok=True)
                with open(os.path.join(out_root, scenario["name"], "result.json"), "w") as handle:
                    json.dump({"name": scenario["name"], "harness_error": repr(exc)}, handle)
    watch.stopping.set()
    summary["seconds"] = round(now() - begin, 1)
    summary["tmp_after"] = sorted(os.listdir("/tmp"))
    with open(os.path.join(out_root, "done.json"), "w") as handle:
        json.dump(summary, handle, indent=1)
    progress("all scenarios done")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
