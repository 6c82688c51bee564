#!/usr/bin/env python3
"""The shared cache: a second boot of an unchanged tree, and 20 boots at once.

Serves the Debian 12 installer pair (48 MB) from nginx on loopback, with an
access log of each request's method, path, status and ``$body_bytes_sent``,
and boots it as libxl would with ``--cache-dir`` in a temporary directory:

1. first boot (empty cache) against second boot (the cache just filled), in
   alternating rounds, with --check=off and the default --check=warn; next to
   them ``xenpvnetboot --version``, the process start-up that bounds how fast
   any boot can be.  Reports the second/first ratio and the body bytes nginx
   sent during each second boot: of the kernel and ramdisk (the target is 0:
   revalidation only) and in all (the layout search's 404 pages included),
   and the second boot against one ``curl`` fetching both files.
2. one boot against --concurrent (default 20) boots started together, both
   from an empty cache, alternating; counts the GETs of each file in the log
   (the target is one each) and the CPU time of all the processes, which on
   this machine's cores bounds the wall time of the concurrent run from below.

--limit-rate (nginx syntax, e.g. 12500k for 100 Mbit/s per connection)
stands for a slower network than loopback.  Ends with ``RESULT cache.*``
lines.

    python3 bench/bench_cache.py [--runs 5] [--concurrent 20] [--limit-rate RATE]
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from typing import Callable, Dict, List, Sequence

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import (BENCH_ENV, CURL, DEBIAN_TREE, TREE_FILES, XENPVNETBOOT,  # noqa: E402
                    Nginx, Request, alternate, boot_argv, clear_dir, curl_argv, debian_tree,
                    median, paired_ratio, prepared_cache, ratio, report, result, time_command)

CHECKS = ("off", "warn")
VERSION = "start-up floor: --version"


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_together(argvs: Sequence[List[str]]) -> float:
    """Start every command at once; the wall time until the last one exits."""
    start = time.perf_counter()
    procs = [subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                              env=BENCH_ENV) for argv in argvs]
    failed = [proc.args for proc in procs if proc.wait() != 0]
    elapsed = time.perf_counter() - start
    if failed:
        raise SystemExit(f"{len(failed)} of {len(procs)} boots failed, e.g. {failed[0]}")
    return elapsed


def file_gets(requests: Sequence[Request]) -> Dict[str, int]:
    """GETs of each of the two files among *requests*."""
    return {name: sum(1 for req in requests if req.method == "GET" and req.uri.endswith("/" + name))
            for name in TREE_FILES}


class Bench:
    """The server, the directories and the bookkeeping of one benchmark run."""

    def __init__(self, work: str, limit_rate: str) -> None:
        self.work = work
        root = os.path.join(work, "srv")
        debian_tree(root)
        self.out = os.path.join(work, "out")
        self.cache = prepared_cache(os.path.join(work, "cache"))
        os.mkdir(self.out)
        self.server = Nginx(root, access_log=True, limit_rate=limit_rate)
        #: Requests of each measured run, by contender.
        self.requests: Dict[str, List[List[Request]]] = {}
        #: CPU seconds (all processes) of each measured run, by contender.
        self.cpu: Dict[str, List[float]] = {}

    def argv(self, check: str, number: int = 0) -> List[str]:
        return boot_argv(self.server.url(), self.out, os.path.join(self.work, f"result{number}"),
                         f"--cache-dir={self.cache}", f"--check={check}")

    def measured(self, label: str, action: Callable[[], float], fresh: bool) -> Callable[[], float]:
        """A contender: (empty cache,) run *action*, keep its requests and CPU time."""
        def run() -> float:
            if fresh:
                prepared_cache(self.cache)
            mark = len(self.server.requests())
            cpu = children_cpu()
            elapsed = action()
            self.cpu.setdefault(label, []).append(children_cpu() - cpu)
            self.requests.setdefault(label, []).append(self.server.requests(mark, settle=0.05))
            clear_dir(self.out)
            return elapsed
        return run

    def keep_measured(self, runs: int) -> None:
        """Drop the warm-up round that :func:`alternate` runs first."""
        for table in (self.requests, self.cpu):
            for label in table:
                del table[label][:-runs]


def first_second(bench: Bench, runs: int) -> None:
    urls = [bench.server.url(f"{DEBIAN_TREE}/{name}") for name in TREE_FILES]
    contenders: Dict[str, Callable[[], float]] = {
        VERSION: bench.measured(VERSION, lambda: time_command(XENPVNETBOOT + ["--version"]),
                                fresh=False),
        CURL: bench.measured(CURL, lambda: time_command(curl_argv(urls, bench.out)),
                             fresh=False),
    }
    for check in CHECKS:
        for which in ("first", "second"):
            label = f"{which} boot, --check={check}"
            argv = bench.argv(check)
            contenders[label] = bench.measured(label, lambda argv=argv: time_command(argv),
                                               fresh=which == "first")
    times = alternate(contenders, runs)
    bench.keep_measured(runs)
    print(f"First boot (empty cache) and second boot (cache filled), {runs} rounds:")
    report(times, f"first boot, --check={CHECKS[0]}")
    floor = median(times[VERSION])
    for check in CHECKS:
        first, second = f"first boot, --check={check}", f"second boot, --check={check}"
        sent = [sum(req.body_bytes for req in reqs) for reqs in bench.requests[second]]
        files = [sum(req.body_bytes for req in reqs if req.uri.endswith(TREE_FILES))
                 for reqs in bench.requests[second]]
        share = ratio(times, second, first)
        beyond = (median(times[second]) - floor) / (median(times[first]) - floor)
        print(f"  --check={check}: second/first {share:.1%}; the start-up floor alone is "
              f"{floor / median(times[first]):.1%} of the first boot, second boot beyond it "
              f"{beyond:.1%} of the first's; second boots (max): {max(files)} body bytes "
              f"of the two files, {max(sent)} in all (404 pages of the layout search)")
        print(f"  --check={check}: second boot / curl's full fetch "
              f"{paired_ratio(times, second, CURL):.2f}x (median of per-round ratios)")
        result(f"cache.{check}.second_vs_first", share)
        result(f"cache.{check}.second_vs_curl", paired_ratio(times, second, CURL))
        result(f"cache.{check}.floor_vs_first", floor / median(times[first]))
        result(f"cache.{check}.second_file_bytes", max(files))
        result(f"cache.{check}.second_body_bytes", max(sent))


def concurrent(bench: Bench, runs: int, count: int) -> None:
    cores = os.cpu_count() or 1
    contenders: Dict[str, Callable[[], float]] = {}
    for check in CHECKS:
        one, many = f"one boot, --check={check}", f"{count} boots at once, --check={check}"
        argv = bench.argv(check)
        argvs = [bench.argv(check, number) for number in range(count)]
        contenders[one] = bench.measured(one, lambda argv=argv: time_command(argv), fresh=True)
        contenders[many] = bench.measured(many, lambda argvs=argvs: run_together(argvs),
                                          fresh=True)
    times = alternate(contenders, runs)
    bench.keep_measured(runs)
    print(f"\nOne boot against {count} started together, empty cache each time, {runs} rounds, "
          f"{cores} CPUs:")
    report(times, f"one boot, --check={CHECKS[0]}")
    for check in CHECKS:
        one, many = f"one boot, --check={check}", f"{count} boots at once, --check={check}"
        gets = [file_gets(reqs) for reqs in bench.requests[many]]
        most = {name: max(run[name] for run in gets) for name in TREE_FILES}
        cpu = median(bench.cpu[many])
        print(f"  --check={check}: {count} at once / one: {ratio(times, many, one):.2f}x; "
              f"GETs per run (max) {most}; CPU time of the {count} processes {cpu:.2f} s "
              f"(one boot's {median(bench.cpu[one]):.2f} s), so at least {cpu / cores:.2f} s "
              f"of wall time on {cores} CPUs")
        result(f"cache.{check}.concurrent_vs_one", ratio(times, many, one))
        result(f"cache.{check}.concurrent_gets_max", max(most.values()))
        result(f"cache.{check}.concurrent_cpu_floor_vs_one",
               cpu / cores / median(times[one]))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--concurrent", type=int, default=20)
    parser.add_argument("--limit-rate", default="", metavar="RATE",
                        help="nginx limit_rate per connection, e.g. 12500k (default: none)")
    opts = parser.parse_args()
    work = tempfile.mkdtemp(prefix="bench-cache.")
    bench = None
    try:
        bench = Bench(work, opts.limit_rate)
        rate = f", limit_rate {opts.limit_rate}" if opts.limit_rate else ""
        print(f"Debian 12 installer pair (48 MB) from nginx on 127.0.0.1{rate}")
        first_second(bench, opts.runs)
        concurrent(bench, opts.runs, opts.concurrent)
    finally:
        if bench is not None:
            bench.server.stop()
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
