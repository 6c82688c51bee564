#!/usr/bin/env python3
"""How fast a TFTP location delivers the real Debian installer pair.

Serves linux and initrd.gz of Debian's debian-installer-12-netboot-amd64
with tftpd-hpa on 127.0.0.1 and times, alternating and taking the median of
--runs rounds, our client (defaults: block size from the path MTU -- 65464
on loopback, 1468 on Ethernet -- and windowsize 16, which tftpd-hpa does not
grant; and blksize 1468 as on Ethernet) against the tftp-hpa client
the old bootloader used (512-byte blocks) and curl at blksize 65464 and
1468.  When atftpd is available (see tests/support/tftp_servers.py) it also
times a windowed transfer.  With 5 % random loss through the test suite's
UDP proxy it compares curl and our client on a smaller file (--loss-size),
since curl waits seconds for each lost packet.  Needs root (tftpd-hpa).

    python3 bench/bench_tftp.py [--runs 5] [--loss-runs 1] [--loss-size 65536] [--no-loss]
"""

from __future__ import annotations

import argparse
import filecmp
import os
import random
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
    LossyProxy,
    ServerProcess,
    atftpd_path,
    start_atftpd,
    start_tftpd_hpa,
)

from xenpvnetboot.transports import tftp  # noqa: E402
from xenpvnetboot.transports.base import Sink, TransportOptions  # noqa: E402

Measure = Callable[[], float]


def ours(base_url: str, names: List[str], out: str, **tftp_options: int) -> Measure:
    """Our client fetching *names* below *base_url* into *out*."""
    tuning = {f"tftp_{name}": value for name, value in tftp_options.items()}
    options = TransportOptions(timeout=30, retries=0, **tuning)

    def run() -> float:
        start = time.perf_counter()
        tree = tftp.open_tree(base_url, options)
        for name in names:
            with open(os.path.join(out, name), "wb") as handle:
                tree.fetch(name, Sink(handle, tree.url(name)))
        return time.perf_counter() - start

    return run


def command(argvs: List[List[str]]) -> Measure:
    """External clients, one process per file, timed together."""

    def run() -> float:
        start = time.perf_counter()
        for argv in argvs:
            subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                           timeout=600)
        return time.perf_counter() - start

    return run


def tftp_hpa(port: int, names: List[str], out: str) -> Measure:
    program = shutil.which("tftp") or sys.exit("needs tftp (Debian package tftp-hpa)")
    return command([[program, "-m", "binary", "127.0.0.1", str(port), "-c", "get", name,
                     os.path.join(out, name)] for name in names])


def curl(url_base: str, names: List[str], out: str, blksize: int) -> Measure:
    program = shutil.which("curl") or sys.exit("needs curl")
    return command([[program, "-sS", "--tftp-blksize", str(blksize), "-o", os.path.join(out, name),
                     url_base + name] for name in names])


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


def ratio(times: Dict[str, List[float]], ours_label: str, theirs_label: str) -> None:
    mine, theirs = statistics.median(times[ours_label]), statistics.median(times[theirs_label])
    faster = f"{theirs / mine:.2f}x faster" if mine <= theirs else f"{mine / theirs:.2f}x slower"
    print(f"  {ours_label} vs {theirs_label}: {faster}")


def contenders_hpa(server: ServerProcess, sources: Dict[str, str], out: str) -> Dict[str, Measure]:
    names = list(sources)
    base = server.url()
    raw = {
        "ours default (path MTU)": ours(base, names, out),
        "ours blksize 1468": ours(base, names, out, blksize=1468),
        "tftp-hpa client (512)": tftp_hpa(server.port, names, out),
        "curl blksize 65464": curl(base, names, out, 65464),
        "curl blksize 1468": curl(base, names, out, 1468),
    }
    return {label: checked(run, sources, out, label) for label, run in raw.items()}


def bench_loopback(sources: Dict[str, str], out: str, runs: int) -> None:
    root = os.path.dirname(next(iter(sources.values())))
    total = sum(os.path.getsize(path) for path in sources.values())
    server = start_tftpd_hpa(root)
    try:
        print(f"tftpd-hpa on 127.0.0.1:{server.port}, Debian pair {total} bytes, "
              f"{runs} alternating rounds (lock-step: tftpd-hpa grants no windowsize)")
        times = alternate(contenders_hpa(server, sources, out), runs)
        report(times, "tftp-hpa client (512)")
        ratio(times, "ours default (path MTU)", "tftp-hpa client (512)")
        ratio(times, "ours default (path MTU)", "curl blksize 65464")
        ratio(times, "ours blksize 1468", "curl blksize 1468")
        result("tftp.speedup_vs_tftp_hpa",
               time_ratio(times, "tftp-hpa client (512)", "ours default (path MTU)"))
        result("tftp.65464.ratio_curl",
               time_ratio(times, "ours default (path MTU)", "curl blksize 65464"))
        result("tftp.1468.ratio_curl", time_ratio(times, "ours blksize 1468", "curl blksize 1468"))
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
        times = alternate({k: checked(v, sources, out, k) for k, v in raw.items()}, runs)
        report(times, "curl blksize 1468")
        ratio(times, "ours 1468, window 16", "curl blksize 1468")
        result("tftp.atftpd_window16.ratio_curl",
               time_ratio(times, "ours 1468, window 16", "curl blksize 1468"))
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
        if not args.no_loss:
            bench_loss(work, out, args.loss_runs, args.loss_size, args.loss)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
