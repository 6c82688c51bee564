"""``python3 -m realxen [ci|all|NAME,...]`` from tests/xen: one run, verdicts printed."""

from __future__ import annotations

import os
import sys

from .run import DEFAULT_CONCURRENCY, format_summary, run_all
from .scenarios import select


def main(argv: list) -> int:
    selected = select(argv[1] if len(argv) > 1 else os.environ.get("XEN_SCENARIOS", "ci"))
    concurrency = int(os.environ.get("XEN_CONCURRENCY", DEFAULT_CONCURRENCY))
    run = run_all(selected, concurrency=concurrency)
    for line in format_summary(run):
        print(line)
    failed = 0
    for scenario in selected:
        problems = run.verdict(scenario.name) if scenario.name not in run.skipped else []
        bad = not any(scenario.must_report in p for p in problems) if scenario.must_report else problems
        if bad:
            failed += 1
            print(f"{scenario.name}:\n  " + "\n  ".join(problems or ["not caught"]))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
