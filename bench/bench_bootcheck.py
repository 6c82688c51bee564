#!/usr/bin/env python3
"""What the boot file check costs, next to copying the same two files with cp.

Checks the Debian 12 installer pair (debian-installer-12-netboot-amd64), or
the kernel and ramdisk given, with the files in the page cache: the figures
are the CPU work the check adds to a boot.  Contenders run in alternating
rounds and the medians are compared with the cp of both files; CPU time
(all threads) is given too, since wall time on a busy machine also counts
waiting for a CPU.

    python3 bench/bench_bootcheck.py [--runs 7] [KERNEL RAMDISK]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Callable

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:0] = [HERE, os.path.join(HERE, "..", "src")]

from common import alternate, debian_pair, report, result as print_result  # noqa: E402
from xenpvnetboot.bootcheck import (check_boot_files, inspect_kernel,  # noqa: E402
                                    inspect_ramdisk)


def timed(action: Callable[[], object]) -> Callable[[], float]:
    """A contender for ``alternate``: runs *action*, returns its wall time."""
    def measure() -> float:
        start = time.perf_counter()
        action()
        return time.perf_counter() - start
    return measure


def cpu_seconds(action: Callable[[], object], runs: int) -> float:
    """Median CPU time of *action* over *runs* calls (threads included)."""
    times = []
    for _ in range(runs):
        start = time.process_time()
        action()
        times.append(time.process_time() - start)
    return statistics.median(times)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("files", nargs="*", help="kernel and ramdisk (default: Debian's)")
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    if args.files and len(args.files) != 2:
        parser.error("give both a kernel and a ramdisk, or neither")
    kernel, ramdisk = args.files or debian_pair()
    result = check_boot_files(kernel, ramdisk)
    print("\n".join(result.problems + result.details))
    size = (os.path.getsize(kernel) + os.path.getsize(ramdisk)) / 2**20
    with tempfile.TemporaryDirectory() as target:
        copy = f"cp of both files ({size:.1f} MiB)"
        contenders = {
            copy: timed(lambda: [subprocess.run(["cp", "--", path, target], check=True)
                                 for path in (kernel, ramdisk)]),
            "check, kernel and ramdisk (as called)": timed(
                lambda: check_boot_files(kernel, ramdisk)),
            "kernel alone": timed(lambda: inspect_kernel(kernel)),
            "ramdisk alone, to the end": timed(lambda: inspect_ramdisk(ramdisk)),
            "ramdisk alone, start only": timed(
                lambda: inspect_ramdisk(ramdisk, verify=False)),
        }
        print(f"\n{args.runs} alternating rounds, {os.cpu_count()} CPUs, "
              f"load average {os.getloadavg()[0]:.2f}")
        ratios = report(alternate(contenders, args.runs), copy)
    cpu = cpu_seconds(lambda: check_boot_files(kernel, ramdisk), args.runs)
    print(f"  CPU time of the check (both threads): median {cpu * 1000:.1f} ms")
    print_result("bootcheck.check.ratio_cp", ratios["check, kernel and ramdisk (as called)"])
    print_result("bootcheck.check_cpu_ms", cpu * 1000)
    return 0


if __name__ == "__main__":
    sys.exit(main())
