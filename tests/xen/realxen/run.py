"""One whole real-Xen run: prepare, start the servers, boot Xen once, collect.

``python3 -m realxen`` (from tests/xen) does the same without pytest and
prints the verdicts; the tests in test_real_xen.py use :func:`run_all`.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import time
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional

from . import judge as judging
from .machine import BOOT_ALLOWANCE, Outcome, boot, make_job
from .prepare import Prepared, prepare, work_dir
from .scenarios import DATA, RESTRICT_USER, Expect, Scenario, filled_expect, job_entry
from .servers import DOM0_ISO, Servers

CHECKOUT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
#: Guests that run at once in dom0 (each has 1024 MB; dom0 leaves about 4 GB free).
DEFAULT_CONCURRENCY = 2
#: Seconds one scenario may take at most, for the bound on the whole boot.
SCENARIO_ALLOWANCE = 420.0
KEEP_RUNS = 3


@dataclass
class Run:
    scenarios: List[Scenario]
    skipped: Dict[str, str]
    expects: Dict[str, Expect]
    prepared: Optional[Prepared]
    outcome: Optional[Outcome]
    run_dir: str
    seconds: Dict[str, float] = field(default_factory=dict)

    @property
    def uids(self) -> Dict[str, int]:
        return dict((self.outcome.done or {}).get("uids", {})) if self.outcome else {}

    def result(self, name: str) -> Optional[dict]:
        return self.outcome.results.get(name) if self.outcome else None

    def verdict(self, name: str) -> List[str]:
        result = self.result(name)
        if result is None:
            return [self.missing_result(name)]
        return judging.judge(name, self.expects[name], result, self.uids)

    def missing_result(self, name: str) -> str:
        if self.outcome is None:
            return "Xen was not booted"
        why = "QEMU was stopped at the time limit" if self.outcome.timed_out else \
            f"QEMU ended with status {self.outcome.qemu_status}"
        return (f"dom0 wrote no result for {name} ({why}); the serial console "
                f"({self.outcome.serial_log}) ends:\n{self.outcome.serial_tail()}")


def order(scenarios: List[Scenario]) -> List[Scenario]:
    """Longest first, so that guests running side by side finish together."""
    def cost(s: Scenario) -> int:
        return -(len(s.expect.awaited) * 10 + ("tftp" in s.name) * 5
                 + (s.expect.outcome == "boots") * 2)
    return sorted(scenarios, key=cost)


def data_files(prepared: Prepared) -> Dict[str, str]:
    """dom0's /job/data: scenarios.DATA from tests/data, and the media's files."""
    files = {name: os.path.join(CHECKOUT, "tests", "data", source) for name, source in DATA.items()}
    files.update(prepared.media.data_files())
    return files


def new_run_dir(work: str) -> str:
    runs = os.path.join(work, "runs")
    os.makedirs(runs, exist_ok=True)
    for old in sorted(os.listdir(runs))[:-(KEEP_RUNS - 1) or None]:
        shutil.rmtree(os.path.join(runs, old), ignore_errors=True)
    path = os.path.join(runs, time.strftime("%Y%m%d-%H%M%S") + f"-{os.getpid()}")
    os.makedirs(path)
    return path


def dom0_commands(hosts: Dict[str, str]) -> List[List[str]]:
    """Diagnostic commands for dom0 from $XEN_DOM0_COMMANDS (a JSON list of argv
    lists; placeholders as in the scenarios), run before the scenarios."""
    text = os.environ.get("XEN_DOM0_COMMANDS", "").strip()
    return [[part.format_map(hosts) for part in argv] for argv in json.loads(text)] if text else []


def run_all(selected: List[Scenario], report: Callable[[str], None] = print,
            concurrency: int = DEFAULT_CONCURRENCY, python: str = sys.executable) -> Run:
    """Prepare (cached), serve, boot once and run every selected scenario in that boot."""
    begin = time.monotonic()
    report(f"real Xen: preparing in {work_dir()}")
    prepared = prepare(CHECKOUT, python)
    report(f"real Xen: prepared ({', '.join(f'{k} {v} s' for k, v in prepared.seconds.items())})")
    run_dir = new_run_dir(work_dir())
    seconds = {"prepare": round(time.monotonic() - begin, 1)}
    with Servers(prepared.media, run_dir, any("nfs" in s.needs for s in selected)) as servers:
        hosts = servers.hosts()
        skipped = {}
        for scenario in selected:
            for piece in scenario.needs:
                reason = servers.missing(piece)
                if reason:
                    skipped[scenario.name] = reason
        runnable = order([s for s in selected if s.name not in skipped])
        expects = {s.name: filled_expect(s, hosts) for s in selected}
        job_dir = os.path.join(run_dir, "job")
        commands = dom0_commands(hosts)
        make_job(job_dir, prepared, [job_entry(s, hosts) for s in runnable], concurrency,
                 [RESTRICT_USER], DOM0_ISO, commands, data_files(prepared))
        limit = BOOT_ALLOWANCE + SCENARIO_ALLOWANCE * (len(runnable) + len(commands)) / max(1, concurrency)
        report(f"real Xen: booting for {len(runnable)} scenarios "
               f"({concurrency} at a time, at most {limit:.0f} s)")
        outcome = boot(prepared, job_dir, [s.name for s in runnable], limit,
                       lambda line: report(f"  dom0 {line}"))
    seconds["boot"] = outcome.seconds
    seconds["total"] = round(time.monotonic() - begin, 1)
    run = Run(selected, skipped, expects, prepared, outcome, run_dir, seconds)
    write_summary(run)
    return run


def summary_rows(run: Run) -> List[Dict[str, object]]:
    rows = []
    for scenario in run.scenarios:
        result = run.result(scenario.name) or {}
        problems = [] if scenario.name in run.skipped else run.verdict(scenario.name)
        if scenario.must_report:
            verdict = "caught" if any(scenario.must_report in p for p in problems) else "MISSED"
        elif scenario.name in run.skipped:
            verdict = "skipped"
        else:
            verdict = "ok" if not problems else "FAILED"
        row = {"scenario": scenario.name, "verdict": verdict, **judging.times(result),
               "problems": problems}
        user = run.expects[scenario.name].runas_user if scenario.name in run.expects else ""
        if user and result and user in run.uids:
            row["evidence"] = judging.runas_evidence(result, run.uids[user])
        rows.append(row)
    return rows


def write_summary(run: Run) -> None:
    with open(os.path.join(run.run_dir, "summary.json"), "w") as handle:
        json.dump({"seconds": run.seconds, "rows": summary_rows(run),
                   "prepare": run.prepared.seconds if run.prepared else {}}, handle, indent=1)


def format_summary(run: Run) -> List[str]:
    lines = [f"real Xen run in {run.run_dir}: " + ", ".join(f"{k} {v} s" for k, v in run.seconds.items())]
    for row in summary_rows(run):
        marks = " ".join(f"{k[1:]}@{v}s" for k, v in row.items() if k.startswith("@"))
        lines.append(f"  {row['scenario']:<34} {row['verdict']:<8} create {row['create']} s, "
                     f"total {row['total']} s  {marks}")
        if row.get("evidence"):
            lines.append(f"  {'':<34} {row['evidence']}")
    return lines
