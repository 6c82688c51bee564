#!/usr/bin/env python3
"""Run every benchmark and print their figures against the performance targets.

Runs each script of bench/ in turn with --runs (default 5; the start-up
benchmark gets at least 20), shows its output as it goes, collects its
``RESULT name=value`` lines and ends with one table: every figure with a
target says MET or NOT MET, the others are listed as information.  A script
that fails, or whose figures are missing, is reported as such; the exit
status is then 1.  bench_tftp.py runs without its lossy comparison (no
target).  Most benchmarks need root and Debian packages (see each script).

    python3 bench/run_all.py [--runs 5] [--only http --only ftp ...] [--timeout 1800]
"""

from __future__ import annotations

import argparse
import operator
import os
import subprocess
import sys
import threading
from typing import Callable, Dict, List, NamedTuple, Optional, Sequence, Tuple

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from common import parse_results  # noqa: E402

#: 40 MB in the MiB that GNU time's kilobytes (KiB) give.
RSS_LIMIT_MIB = 40e6 / 2**20


class Target(NamedTuple):
    key: str
    what: str
    op: str
    limit: float


TARGETS = [
    Target("http.warn.ratio_curl", "HTTP 48 MB, default --check=warn: time / curl", "<=", 1.2),
    Target("http.off.ratio_curl", "HTTP 48 MB, --check=off: time / curl", "<=", 1.2),
    Target("ftp.warn.ratio_curl", "FTP 48 MB, default --check=warn: time / curl", "<=", 1.2),
    Target("ftp.off.ratio_curl", "FTP 48 MB, --check=off: time / curl", "<=", 1.2),
    Target("big.warn.ratio_curl", "HTTP 8 MB + 1 GiB, --check=warn: time / curl", "<=", 1.0),
    Target("big.off.ratio_curl", "HTTP 8 MB + 1 GiB, --check=off: time / curl", "<=", 1.0),
    Target("link.default_vs_off", "link 1 Gbit/s: default / --check=off", "<=", 1.05),
    Target("link.off.ratio_curl", "link 1 Gbit/s: --check=off / curl", "<=", 1.10),
    Target("link.cached.ratio_curl", "link: cached boot, default check / curl's fetch", "<=", 0.25),
    Target("link.rtt_before_body.off", "link: round trips before the first body byte", "<=", 2),
    Target("big.warn.rss_mib", "peak RSS MiB, 1 GiB, --check=warn (64 MB)", "<=", 64e6 / 2**20),
    Target("big.off.rss_mib", "peak RSS MiB, 1 GiB, --check=off (40 MB)", "<=", RSS_LIMIT_MIB),
    Target("tftp.speedup_vs_tftp_hpa", "TFTP: tftp-hpa time / ours (x faster)", ">=", 10.0),
    Target("tftp.65464.ratio_curl", "TFTP blksize 65464: time / curl", "<=", 1.0),
    Target("tftp.1468.ratio_curl", "TFTP blksize 1468: time / curl", "<=", 1.0),
    Target("nfs.negotiated.ratio_nfscp3", "NFS negotiated: time / nfs-cp NFSv3", "<=", 1.25),
    Target("nfs.v3.ratio_nfscp3", "NFS vers=3: time / nfs-cp NFSv3", "<=", 1.25),
    Target("images.iso.ratio_cp", "ISO image: time / cp", "<=", 1.25),
    Target("images.ext4.ratio_cp", "ext4 image: time / cp", "<=", 1.25),
    Target("startup.version_ms", "xenpvnetboot --version, ms", "<", 100.0),
    Target("cache.warn.second_vs_first", "cache, --check=warn: second / first boot", "<=", 0.05),
    Target("cache.off.second_vs_first", "cache, --check=off: second / first boot", "<=", 0.05),
    Target("cache.warn.second_file_bytes", "cache, --check=warn: file bytes, 2nd boot", "<=", 0),
    Target("cache.off.second_file_bytes", "cache, --check=off: file bytes, 2nd boot", "<=", 0),
    Target("cache.warn.concurrent_vs_one", "cache, --check=warn: 20 at once / one", "<=", 1.2),
    Target("cache.off.concurrent_vs_one", "cache, --check=off: 20 at once / one", "<=", 1.2),
    Target("cache.warn.concurrent_gets_max", "cache, --check=warn: GETs per file, 20", "<=", 1),
    Target("cache.off.concurrent_gets_max", "cache, --check=off: GETs per file, 20", "<=", 1),
]

OPERATORS: Dict[str, Callable[[float, float], bool]] = {
    "<=": operator.le, "<": operator.lt, ">=": operator.ge, ">": operator.gt,
}

#: (name, script, arguments after --runs N)
SCRIPTS: List[Tuple[str, str, List[str]]] = [
    ("http", "bench_http.py", []),
    ("ftp", "bench_ftp.py", []),
    ("big", "bench_big.py", []),
    ("tftp", "bench_tftp.py", ["--no-loss"]),
    ("nfs", "bench_nfs.py", []),
    ("images", "bench_images.py", []),
    ("bootcheck", "bench_bootcheck.py", []),
    ("startup", "bench_startup.py", []),
    ("cache", "bench_cache.py", []),
    ("link", "bench_link.py", []),
]
#: The start-up target is about the median of 20 runs.
MIN_RUNS = {"startup": 20}


def met(target: Target, value: float) -> bool:
    return OPERATORS[target.op](value, target.limit)


def selected_targets(only: Optional[Sequence[str]] = None) -> List[Target]:
    """The targets of the benchmarks named in *only* (all when None)."""
    return [t for t in TARGETS if only is None or t.key.split(".", 1)[0] in only]


def summary(results: Dict[str, float], failed: Sequence[str] = (),
            only: Optional[Sequence[str]] = None) -> Tuple[List[str], int]:
    """The table's lines, and how many targets are not met (missing ones included).

    With *only* (benchmark names, as in SCRIPTS), just their targets are listed.
    """
    lines = [f"{'figure':32s} {'what':48s} {'value':>10s}  {'target':>10s}  verdict"]
    missing = 0
    for target in selected_targets(only):
        value = results.get(target.key)
        bound = f"{target.op} {target.limit:g}"
        if value is None:
            missing += 1
            verdict, shown = "NOT RUN", "-"
        else:
            verdict, shown = ("MET" if met(target, value) else "NOT MET"), f"{value:.4g}"
            missing += verdict != "MET"
        lines.append(f"{target.key:32s} {target.what:48s} {shown:>10s}  {bound:>10s}  {verdict}")
    known = {target.key for target in TARGETS}
    others = sorted(key for key in results if key not in known)
    if others:
        lines.append("information (no target):")
        lines.extend(f"  {key:46s} {results[key]:.4g}" for key in others)
    if failed:
        lines.append("failed: " + ", ".join(failed))
    return lines, missing


def run_script(script: str, argv: List[str], timeout: float) -> Optional[str]:
    """Run one benchmark, echoing its output; its output, or None when it failed."""
    proc = subprocess.Popen([sys.executable, os.path.join(HERE, script), *argv],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    timer = threading.Timer(timeout, proc.kill)
    timer.start()
    lines = []
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            sys.stdout.write(line)
            sys.stdout.flush()
            lines.append(line)
        status = proc.wait()
    finally:
        timer.cancel()
    if status != 0:
        print(f"{script}: exit status {status}" + (" (timed out)" if status < 0 else ""))
        return None
    return "".join(lines)


def describe_commit() -> str:
    """The commit measured (when the run starts), and whether src/ differs from it."""
    def git(*args: str) -> str:
        return subprocess.run(["git", "-C", HERE, *args], capture_output=True,
                              text=True).stdout.strip()

    commit = git("rev-parse", "--short", "HEAD") or "unknown"
    if git("status", "--porcelain", "--", os.path.join(HERE, "..", "src")):
        commit += " with uncommitted changes in src/"
    return commit


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--only", action="append", choices=[name for name, _, _ in SCRIPTS],
                        help="run only this benchmark (repeatable)")
    parser.add_argument("--timeout", type=float, default=1800.0, help="seconds per script")
    args = parser.parse_args(argv)
    commit = describe_commit()
    results: Dict[str, float] = {}
    failed = []
    for name, script, extra in SCRIPTS:
        if args.only and name not in args.only:
            continue
        runs = max(args.runs, MIN_RUNS.get(name, 0))
        print(f"=== {script} --runs {runs} {' '.join(extra)}", flush=True)
        output = run_script(script, ["--runs", str(runs), *extra], args.timeout)
        if output is None:
            failed.append(script)
            continue
        results.update(parse_results(output))
    lines, not_met = summary(results, failed, args.only)
    print(f"\n=== summary (commit {commit}, --runs {args.runs}, {os.cpu_count()} CPUs)")
    print("\n".join(lines))
    print(f"{not_met} of {len(selected_targets(args.only))} targets not met or not run")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
