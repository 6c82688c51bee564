#!/usr/bin/env python3
"""Two source trees of xenpvnetboot against each other: whole boots, same rounds.

A change that should cost nothing (a refactoring, say) is best judged by
running the old and the new code one after the other in every round, so
that a busy moment of the machine weighs on both: comparing two runs of
bench_http.py made minutes apart mixes in the machine's drift (curl's own
median moved by 40 % between such runs here).  Serves the real Debian 12
installer pair from nginx on loopback, as bench_http.py does, and prints
the medians and the median of the per-round ratios NEW / OLD (the order
of the two reversed every other round), then
``RESULT versions.*`` lines.

    git archive OLD_COMMIT | tar -x -C /tmp/old
    python3 bench/bench_versions.py /tmp/old/src src [--runs 15] [--check off --check warn]
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
from typing import Dict, List

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import (BENCH_ENV, DEBIAN_TREE, Command, Nginx, alternate, boot_argv,  # noqa: E402
                    debian_tree, median, output_dir, paired_ratio, result)


def alternate_both_ways(contenders: Dict[str, Command], runs: int) -> Dict[str, List[float]]:
    """:func:`common.alternate`, the order reversed every other round.

    The second of two processes in a row runs measurably slower or faster
    here (page cache, CPU frequency): a fixed order showed the same two
    trees as 1.3 % apart one way round and 6.7 % the other.
    """
    alternate(contenders, 0)  # the warm-up round
    times: Dict[str, List[float]] = {name: [] for name in contenders}
    names = list(contenders)
    for number in range(runs):
        for name in (names if number % 2 == 0 else names[::-1]):
            times[name].append(contenders[name]())
    return times


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("old", help="the src/ directory of the reference tree")
    parser.add_argument("new", help="the src/ directory of the tree to judge")
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--check", action="append", choices=("off", "warn", "strict"),
                        help="--check modes to compare (default: off and warn)")
    opts = parser.parse_args()
    checks = opts.check or ["off", "warn"]
    for src in (opts.old, opts.new):
        if not os.path.isfile(os.path.join(src, "xenpvnetboot", "__init__.py")):
            parser.error(f"{src}: not a src/ directory holding the xenpvnetboot package")
    work = tempfile.mkdtemp(prefix="bench-versions.")
    try:
        root = os.path.join(work, "srv")
        debian_tree(root)
        server = Nginx(root)
        out = output_dir(work)
        try:
            result_file = os.path.join(work, "result")
            contenders = {}
            for check in checks:
                for label, src in (("old", opts.old), ("new", opts.new)):
                    env = dict(BENCH_ENV, PYTHONPATH=os.path.abspath(src))
                    argv = boot_argv(server.url(), out, result_file, "--no-cache", f"--check={check}")
                    contenders[f"{label} --check={check}"] = Command(argv, out, env=env)
            print(f"Debian 12 installer pair over http from nginx ({DEBIAN_TREE}), {opts.runs} rounds:")
            times = alternate_both_ways(contenders, opts.runs)
        finally:
            server.stop()
            shutil.rmtree(out, ignore_errors=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    for name, values in times.items():
        print(f"  {name:24s} median {median(values) * 1000:7.1f} ms")
    for check in checks:
        ratio = paired_ratio(times, f"new --check={check}", f"old --check={check}")
        print(f"  --check={check}: new / old = {ratio:.3f} (median of per-round ratios)")
        result(f"versions.{check}.new_vs_old", ratio)
    return 0


if __name__ == "__main__":
    sys.exit(main())
