#!/usr/bin/env python3
"""How fast a TFTP location delivers the real Debian installer pair.

Serves linux and initrd.gz of Debian's debian-installer-12-netboot-amd64
with tftpd-hpa on 127.0.0.1 and times, alternating and taking the median of
--runs rounds, our client (defaults: block size from the path MTU -- 65464
on loopback, 1468 on Ethernet -- and windowsize 16, which tftpd-hpa does not
grant; and blksize 1468 as on Ethernet) against the tftp-hpa client
the old bootloader used (512-byte blocks) and curl at blksize 65464 and
1468.  tftpd-hpa grants no window, so these are lock-step transfers, one
round trip per block: besides the time, the CPU each client spends per block
is reported (it decides the time on a busy machine).  When atftpd is
available (see tests/support/tftp_servers.py) it also times a windowed
transfer.  With 5 % random loss through the test suite's UDP proxy it
compares curl and our client on a smaller file (--loss-size), since curl
waits seconds for each lost packet.  --link times lock-step transfers across
a veth pair between two network namespaces (an Ethernet-sized link, whole
processes: our client's start-up included), --syscalls counts the system
calls per block of both clients (perf stat, else strace).  Needs root
(tftpd-hpa).

    python3 bench/bench_tftp.py [--runs 5] [--loss-runs 1] [--loss-size 65536] [--no-loss]
                                [--link] [--syscalls]
"""

from __future__ import annotations

import argparse
import filecmp
import os
import random
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Callable, Dict, List, Optional

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:0] = [HERE, os.path.join(HERE, "..", "src"), os.path.join(HERE, "..", "tests")]

from common import alternate, debian_pair, ratio as time_ratio, report, result  # noqa: E402
from support.tftp_servers import (  # noqa: E402
    LossyLink,
    LossyProxy,
    ServerProcess,
    atftpd_path,
    client_argv,
    client_env,
    start_atftpd,
    start_tftpd_hpa,
    tftpd_hpa_argv,
)

from xenpvnetboot.boot import WRITE_BUFFER  # noqa: E402
from xenpvnetboot.transports import tftp  # noqa: E402
from xenpvnetboot.transports.base import Sink, TransportOptions  # noqa: E402

Measure = Callable[[], float]
#: System calls that move a block: receive, wait, acknowledge, write (on
#: Linux, recv and send are recvfrom and sendto).
TRANSFER_CALLS = ("recvfrom", "recvmsg", "read", "poll", "ppoll", "select", "pselect6",
                  "epoll_wait", "sendto", "sendmsg", "write", "writev")
#: Where the kernel lists its system call tracepoints.
TRACEPOINTS = "/sys/kernel/tracing/events/syscalls"


def ours(base_url: str, names: List[str], out: str, **tftp_options: int) -> Measure:
    """Our client fetching *names* below *base_url* into *out*, through files
    buffered as the boot buffers its output files (boot.WRITE_BUFFER)."""
    tuning = {f"tftp_{name}": value for name, value in tftp_options.items()}
    options = TransportOptions(timeout=30, retries=0, **tuning)

    def run() -> float:
        start = time.perf_counter()
        tree = tftp.open_tree(base_url, options)
        for name in names:
            with open(os.path.join(out, name), "wb", buffering=WRITE_BUFFER) as handle:
                tree.fetch(name, Sink(handle, tree.url(name)))
        return time.perf_counter() - start

    return run


def command(argvs: List[List[str]], env: Optional[Dict[str, str]] = None) -> Measure:
    """External clients, one process per command, timed together."""

    def run() -> float:
        start = time.perf_counter()
        for argv in argvs:
            subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                           timeout=600, env=env)
        return time.perf_counter() - start

    return run


def tftp_hpa(port: int, names: List[str], out: str) -> Measure:
    program = shutil.which("tftp") or sys.exit("needs tftp (Debian package tftp-hpa)")
    return command([[program, "-m", "binary", "127.0.0.1", str(port), "-c", "get", name,
                     os.path.join(out, name)] for name in names])


def curl_argvs(url_base: str, names: List[str], out: str, blksize: int) -> List[List[str]]:
    program = shutil.which("curl") or sys.exit("needs curl")
    return [[program, "-sS", "--tftp-blksize", str(blksize), "-o", os.path.join(out, name),
             url_base + name] for name in names]


def curl(url_base: str, names: List[str], out: str, blksize: int) -> Measure:
    return command(curl_argvs(url_base, names, out, blksize))


def checked(measure: Measure, sources: Dict[str, str], out: str, label: str) -> Measure:
    """Time *measure*, then verify every copy (tftp-hpa exits 0 on errors)."""

    def run() -> float:
        for name in sources:
            target = os.path.join(out, name)
            if os.path.exists(target):
                os.unlink(target)
        elapsed = measure()
        for name, source in sources.items():
            target = os.path.join(out, name)
            if not (os.path.exists(target) and filecmp.cmp(source, target, shallow=False)):
                raise SystemExit(f"{label}: {name} differs from the original")
        return elapsed

    return run


def _cpu(who: int) -> float:
    usage = resource.getrusage(who)
    return usage.ru_utime + usage.ru_stime


def metered(measure: Measure, cpu: List[float], in_process: bool) -> Measure:
    """*measure*, also recording the CPU seconds it cost: this process's own
    for our in-process client, the waited-for children's for a command."""
    who = resource.RUSAGE_SELF if in_process else resource.RUSAGE_CHILDREN

    def run() -> float:
        before = _cpu(who)
        elapsed = measure()
        cpu.append(_cpu(who) - before)
        return elapsed

    return run


def ratio(times: Dict[str, List[float]], ours_label: str, theirs_label: str) -> None:
    mine, theirs = statistics.median(times[ours_label]), statistics.median(times[theirs_label])
    faster = f"{theirs / mine:.2f}x faster" if mine <= theirs else f"{mine / theirs:.2f}x slower"
    print(f"  {ours_label} vs {theirs_label}: {faster}")


def block_count(sources: Dict[str, str], blksize: int) -> int:
    return sum(os.path.getsize(path) // blksize + 1 for path in sources.values())


def contenders_hpa(server: ServerProcess, sources: Dict[str, str], out: str,
                   cpu: Dict[str, List[float]]) -> Dict[str, Measure]:
    names = list(sources)
    base = server.url()
    raw = {
        "ours default (path MTU)": (ours(base, names, out), True),
        "ours blksize 1468": (ours(base, names, out, blksize=1468), True),
        "tftp-hpa client (512)": (tftp_hpa(server.port, names, out), False),
        "curl blksize 65464": (curl(base, names, out, 65464), False),
        "curl blksize 1468": (curl(base, names, out, 1468), False),
    }
    return {label: checked(metered(run, cpu.setdefault(label, []), inside), sources, out, label)
            for label, (run, inside) in raw.items()}


def report_cpu(cpu: Dict[str, List[float]], blocks: int, mine: str, theirs: str) -> float:
    """Median CPU microseconds per block of two contenders; returns the ratio."""
    per_block = {label: statistics.median(cpu[label]) / blocks * 1e6 for label in (mine, theirs)}
    print(f"  CPU per block: {mine} {per_block[mine]:.1f} us, {theirs} {per_block[theirs]:.1f} us")
    return per_block[mine] / per_block[theirs]


def against_curl(raw: Dict[str, Measure], sources: Dict[str, str], out: str, runs: int,
                 mine: str, key: str) -> None:
    """Alternate *raw*'s contenders, each copy checked; report *mine* against
    curl at blksize 1468 as the result *key*.ratio_curl."""
    times = alternate({k: checked(v, sources, out, k) for k, v in raw.items()}, runs)
    report(times, "curl blksize 1468")
    ratio(times, mine, "curl blksize 1468")
    result(f"{key}.ratio_curl", time_ratio(times, mine, "curl blksize 1468"))


def bench_loopback(sources: Dict[str, str], out: str, runs: int) -> None:
    root = os.path.dirname(next(iter(sources.values())))
    total = sum(os.path.getsize(path) for path in sources.values())
    server = start_tftpd_hpa(root)
    cpu: Dict[str, List[float]] = {}
    try:
        print(f"tftpd-hpa on 127.0.0.1:{server.port}, Debian pair {total} bytes, "
              f"{runs} alternating rounds (lock-step: tftpd-hpa grants no windowsize)")
        times = alternate(contenders_hpa(server, sources, out, cpu), runs)
        report(times, "tftp-hpa client (512)")
        ratio(times, "ours default (path MTU)", "tftp-hpa client (512)")
        ratio(times, "ours default (path MTU)", "curl blksize 65464")
        ratio(times, "ours blksize 1468", "curl blksize 1468")
        cpu_ratio = report_cpu(cpu, block_count(sources, 1468), "ours blksize 1468",
                               "curl blksize 1468")
        result("tftp.speedup_vs_tftp_hpa",
               time_ratio(times, "tftp-hpa client (512)", "ours default (path MTU)"))
        result("tftp.65464.ratio_curl",
               time_ratio(times, "ours default (path MTU)", "curl blksize 65464"))
        result("tftp.1468.ratio_curl", time_ratio(times, "ours blksize 1468", "curl blksize 1468"))
        result("tftp.1468.cpu_ratio_curl", cpu_ratio)
    finally:
        server.stop()
    binary = atftpd_path()
    if binary is None:
        print("atftpd not found: windowed transfer not measured")
        return
    server = start_atftpd(binary, root)
    try:
        names = list(sources)
        print(f"atftpd on 127.0.0.1:{server.port} (grants windowsize)")
        raw = {
            "ours 1468, window 16": ours(server.url(), names, out, blksize=1468),
            "ours 1468, window 64": ours(server.url(), names, out, blksize=1468, windowsize=64),
            "curl blksize 1468": curl(server.url(), names, out, 1468),
        }
        against_curl(raw, sources, out, runs, "ours 1468, window 16", "tftp.atftpd_window16")
    finally:
        server.stop()


#: ``python3 -c CLIENT SRC URL OUTPUT...``: our client in a process of its own,
#: importing only the TFTP transport, for a whole-process comparison with curl.
CLIENT = """
import sys
sys.path[:0] = [sys.argv[1]]
from xenpvnetboot.boot import WRITE_BUFFER
from xenpvnetboot.transports import tftp
from xenpvnetboot.transports.base import Sink, TransportOptions
options = TransportOptions(timeout=30, retries=0, tftp_blksize=1468)
for url, output in zip(sys.argv[2::2], sys.argv[3::2]):
    head, _, name = url.rpartition("/")
    tree = tftp.open_tree(head + "/", options)
    with open(output, "wb", buffering=WRITE_BUFFER) as handle:
        tree.fetch(name, Sink(handle, url))
"""


def bench_link(sources: Dict[str, str], out: str, runs: int) -> None:
    """Lock-step at 1468 bytes across a veth pair: whole client processes."""
    root = os.path.dirname(next(iter(sources.values())))
    names = list(sources)
    with LossyLink(per_mille=0) as link:
        server = subprocess.Popen(
            link.exec_argv(link.server_ns, tftpd_hpa_argv(root, link.SERVER_ADDR, 69)),
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            base = f"tftp://{link.SERVER_ADDR}/"
            pairs = [part for name in names for part in (base + name, os.path.join(out, name))]
            src = os.path.join(HERE, "..", "src")
            mine = link.exec_argv(link.client_ns, [sys.executable, "-c", CLIENT, src, *pairs])
            # once untimed, through the test suite's client: it waits for the server to be up
            ready = link.exec_argv(link.client_ns, client_argv(pairs[0], pairs[1], 30))
            subprocess.run(ready, check=True, stdout=subprocess.DEVNULL, env=client_env())
            theirs = [link.exec_argv(link.client_ns, argv)
                      for argv in curl_argvs(base, names, out, 1468)]
            print(f"tftpd-hpa across a veth pair between two namespaces (MTU 1500), "
                  f"blksize 1468, whole processes, {runs} alternating rounds")
            raw = {"ours blksize 1468 (process)": command([mine]),
                   "curl blksize 1468": command(theirs)}
            against_curl(raw, sources, out, runs, "ours blksize 1468 (process)", "tftp.link1468")
        finally:
            server.terminate()
            server.wait(timeout=10)


def perf_counts(argv: List[str], env: Optional[Dict[str, str]] = None) -> Optional[Dict[str, int]]:
    """Calls of each of TRANSFER_CALLS by *argv*, from the kernel's syscall
    tracepoints (``perf stat``: counted, not traced, so the client runs at
    its own speed); None where perf or the tracepoints are missing."""
    if shutil.which("perf") is None or not os.path.isdir(TRACEPOINTS):
        return None
    calls = [call for call in TRANSFER_CALLS
             if os.path.isdir(os.path.join(TRACEPOINTS, f"sys_enter_{call}"))]
    events = ["raw_syscalls:sys_enter"] + [f"syscalls:sys_enter_{call}" for call in calls]
    done = subprocess.run(["perf", "stat", "-x,", "-e", ",".join(events), "--", *argv],
                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                          timeout=600, env=env)
    counts: Dict[str, int] = {}
    for line in done.stderr.splitlines():
        fields = line.split(",")
        if len(fields) > 2 and fields[0].isdigit():
            counts[fields[2].rpartition("_")[2] if "sys_enter_" in fields[2] else "all"] = int(fields[0])
    return counts if done.returncode == 0 and "all" in counts else None


def strace_counts(argv: List[str], env: Optional[Dict[str, str]] = None) -> Dict[str, int]:
    """Calls per system call of *argv* and its children (``strace -c -f``)."""
    with tempfile.NamedTemporaryFile("r", suffix=".strace") as summary:
        subprocess.run(["strace", "-f", "-c", "-o", summary.name, "--", *argv], check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=600, env=env)
        counts: Dict[str, int] = {}
        for line in summary:
            fields = line.split()
            if len(fields) >= 5 and fields[3].isdigit() and fields[-1] != "total":
                counts[fields[-1]] = int(fields[3])
    counts["all"] = sum(counts.values())
    return counts


def bench_syscalls(sources: Dict[str, str], out: str) -> None:
    """System calls per lock-step block of the initrd at 1468 bytes, ours and curl's."""
    name = "initrd.gz"
    blocks = block_count({name: sources[name]}, 1468)
    server = start_tftpd_hpa(os.path.dirname(sources[name]))
    try:
        url = server.url(name)
        target = os.path.join(out, name)
        src = os.path.join(HERE, "..", "src")
        contenders = {
            "ours blksize 1468": ([sys.executable, "-c", CLIENT, src, url, target], None),
            "curl blksize 1468": (curl_argvs(server.url(), [name], out, 1468)[0], None),
        }
        for label, (argv, env) in contenders.items():
            counts, how = perf_counts(argv, env), "perf stat"
            if counts is None:
                if shutil.which("strace") is None:
                    print("neither perf nor strace found: system calls not counted")
                    return
                counts, how = strace_counts(argv, env), "strace, which slows the client"
            moving = {call: counts[call] for call in TRANSFER_CALLS if counts.get(call)}
            per_block = sum(moving.values()) / blocks
            detail = ", ".join(f"{call} {n / blocks:.2f}" for call, n in moving.items())
            print(f"  {label:24s} {per_block:.2f} per block ({detail}); {counts['all']} calls "
                  f"in all, start-up included ({how}; {name}, {blocks} blocks)")
            result(f"tftp.1468.syscalls_per_block.{label.split()[0]}", per_block)
    finally:
        server.stop()


def bench_loss(work: str, out: str, runs: int, size: int, loss: float) -> None:
    served = os.path.join(work, "lossy")
    os.makedirs(served, exist_ok=True)
    source = os.path.join(served, "file")
    with open(source, "wb") as handle:
        handle.write(random.Random(1).randbytes(size))
    servers: List[ServerProcess] = [start_tftpd_hpa(served)]
    binary = atftpd_path()
    if binary is not None:
        servers.append(start_atftpd(binary, served))
    try:
        for server in servers:
            kind = os.path.basename(server.process.args[0])
            with LossyProxy(("127.0.0.1", server.port), loss=loss, seed=5) as proxy:
                print(f"{loss:.0%} loss each way through a UDP proxy, {kind}, "
                      f"{size} bytes, {runs} round(s)")
                raw = {
                    "ours blksize 1468": ours(proxy.url(), ["file"], out, blksize=1468),
                    "curl blksize 1468": curl(proxy.url(), ["file"], out, 1468),
                }
                measures = {k: checked(v, {"file": source}, out, k) for k, v in raw.items()}
                times = {label: [run() for _ in range(runs)] for label, run in measures.items()}
                report(times, "curl blksize 1468")
                ratio(times, "ours blksize 1468", "curl blksize 1468")
    finally:
        for server in servers:
            server.stop()


def main(argv: Optional[List[str]] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--loss-runs", type=int, default=1)
    parser.add_argument("--loss-size", type=int, default=64 * 1024)
    parser.add_argument("--loss", type=float, default=0.05)
    parser.add_argument("--no-loss", action="store_true", help="skip the lossy comparison")
    parser.add_argument("--link", action="store_true",
                        help="also time lock-step transfers across a veth pair (needs iproute2)")
    parser.add_argument("--syscalls", action="store_true",
                        help="also count system calls per block (perf, else strace)")
    args = parser.parse_args(argv)
    if os.geteuid() != 0:
        raise SystemExit("needs root (tftpd-hpa)")
    kernel, initrd = debian_pair()
    sources = {os.path.basename(path): path for path in (kernel, initrd)}
    work = tempfile.mkdtemp(prefix="bench-tftp-")
    try:
        out = os.path.join(work, "out")
        os.mkdir(out)
        bench_loopback(sources, out, args.runs)
        if args.syscalls:
            bench_syscalls(sources, out)
        if args.link:
            bench_link(sources, out, args.runs)
        if not args.no_loss:
            bench_loss(work, out, args.loss_runs, args.loss_size, args.loss)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
