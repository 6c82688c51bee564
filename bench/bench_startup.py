#!/usr/bin/env python3
"""Start-up: ``xenpvnetboot --version`` wall time, and what a boot spends importing.

Times, in alternating rounds (median of --runs, default 20), the installed
``xenpvnetboot`` command (the console script next to this interpreter, what
``make install`` links for libxl; ``python3 -m xenpvnetboot`` when there is
none) with ``--version`` against ``python3 -c pass`` (the interpreter alone)
and ``curl --version``; and both Python commands under ``python3 -S``, which
skips what the ``.pth`` files of this Python installation run at start-up
(a distribution's python3 may have none).  Then runs ``python3 -S -X
importtime`` on ``-m xenpvnetboot --version`` and on a real boot of the
Debian pair from nginx (default --check, no cache), --import-rounds times
each, and lists by median the 10 most expensive of our modules
(cumulative: with what they import) and the 10 most expensive modules that
our code imports from elsewhere (with the module that imports them, or "run
time" for an import inside a function).  Ends with ``RESULT startup.*``
lines.

    python3 bench/bench_startup.py [--runs 20] [--import-rounds 5]
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import tempfile
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import (BENCH_ENV, XENPVNETBOOT, Command, Nginx, alternate, boot_argv,  # noqa: E402
                    debian_tree, median, ratio, report, result)

_LINE = re.compile(r"^import time:\s+(\d+) \|\s+(\d+) \|( +)(\S+)\s*$")
OURS = "xenpvnetboot"
PYTHON = "python3 -c pass"
CURL_VERSION = "curl --version"
PYTHON_NO_SITE = "python3 -S -c pass"
VERSION_NO_SITE = "python3 -S -m xenpvnetboot --version"


@dataclass
class Import:
    """One line of ``-X importtime``: times in microseconds."""

    name: str
    self_us: int
    cumulative_us: int
    depth: int
    #: The module whose import caused this one; None for a top-level import.
    parent: Optional[str] = None
    #: Imported by the program rather than by the interpreter's start-up.
    by_program: bool = False


def parse_importtime(text: str) -> List[Import]:
    """The imports of a ``-X importtime`` report, in its order, with their parents.

    The report lists a module after everything its import imported, one
    indentation level (two spaces) deeper per level of nesting.
    """
    rows: List[Import] = []
    waiting: List[Import] = []
    # The program starts after the interpreter's own imports: those of its
    # start-up, ending with ``runpy`` for ``-m`` or else with ``site``.
    marks = [name for name in ("runpy", "site") if re.search(rf"\| {name}$", text, re.M)]
    started = not marks
    for line in text.splitlines():
        match = _LINE.match(line)
        if match is None:
            continue
        row = Import(match.group(4), int(match.group(1)), int(match.group(2)),
                     (len(match.group(3)) - 1) // 2)
        while waiting and waiting[-1].depth > row.depth:
            waiting.pop().parent = row.name
        waiting.append(row)
        rows.append(row)
        if row.depth == 0:
            if started:
                _mark_program(rows, row)
            elif row.name == marks[0]:
                started = True
    return rows


def _mark_program(rows: List[Import], top: Import) -> None:
    """Mark *top* and the rows just before it that it imported (its subtree)."""
    top.by_program = True
    for row in reversed(rows[:-1]):
        if row.depth == 0:
            break
        row.by_program = True


def median_imports(reports: Sequence[List[Import]]) -> List[Import]:
    """One row per module (as in the first report) with median times over *reports*."""
    values: Dict[str, List[Import]] = {}
    for rows in reports:
        for row in rows:
            values.setdefault(row.name, []).append(row)
    merged = []
    for row in reports[0]:
        seen = values[row.name]
        merged.append(Import(row.name, int(median([r.self_us for r in seen])),
                             int(median([r.cumulative_us for r in seen])), row.depth,
                             row.parent, row.by_program))
    return merged


def is_ours(name: Optional[str]) -> bool:
    return name is not None and (name == OURS or name.startswith(OURS + "."))


def summarize(title: str, rows: List[Import], top: int = 10) -> float:
    """Print the costliest imports of the program; return its total import time (ms)."""
    program = [row for row in rows if row.by_program]
    total = sum(row.cumulative_us for row in program if row.depth == 0) / 1000
    print(f"{title}: {total:.1f} ms importing after interpreter start-up")
    ours = sorted((row for row in program if is_ours(row.name)),
                  key=lambda row: row.cumulative_us, reverse=True)
    print(f"  our {top} most expensive modules (cumulative includes what they import):")
    for row in ours[:top]:
        print(f"    {row.name:44s} cumulative {row.cumulative_us / 1000:6.1f} ms  "
              f"self {row.self_us / 1000:5.1f} ms")
    foreign = sorted((row for row in program if not is_ours(row.name)
                      and (is_ours(row.parent) or row.depth == 0)),
                     key=lambda row: row.cumulative_us, reverse=True)
    print(f"  the {top} most expensive modules our code imports from elsewhere:")
    for row in foreign[:top]:
        print(f"    {row.name:44s} cumulative {row.cumulative_us / 1000:6.1f} ms  "
              f"imported by {row.parent or 'run time'}")
    return total


def import_report(argv: Sequence[str], rounds: int) -> List[Import]:
    """Median ``-X importtime`` report of ``python3 -S`` running *argv* (after the interpreter).

    Under -S every module the program needs is imported, and charged, by the
    program: otherwise those that this installation's .pth files import
    first would be charged to ``site``.
    """
    reports = []
    env = without_site()
    for _ in range(rounds + 1):  # the first, a warm-up, fills the bytecode cache
        done = subprocess.run([sys.executable, "-S", "-X", "importtime", *argv], check=True,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                              env=env)
        reports.append(parse_importtime(done.stderr))
    return median_imports(reports[1:])


def installed_command() -> List[str]:
    script = os.path.join(sysconfig.get_path("scripts"), OURS)
    return [script] if os.access(script, os.X_OK) else XENPVNETBOOT


def without_site() -> Dict[str, str]:
    """The environment for ``python3 -S``: our package and the site-packages on PYTHONPATH.

    ``-S`` skips the ``site`` module, and with it whatever the ``.pth``
    files of this Python installation run at every start (they are no part
    of ours, and a distribution's python3 may have none).
    """
    spec = importlib.util.find_spec(OURS)
    assert spec is not None and spec.origin is not None
    ours = os.path.dirname(os.path.dirname(spec.origin))
    env = dict(BENCH_ENV)
    env["PYTHONPATH"] = os.pathsep.join([ours, sysconfig.get_path("purelib"),
                                         sysconfig.get_path("platlib")])
    return env


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--import-rounds", type=int, default=5)
    opts = parser.parse_args()
    command = installed_command()
    ours = f"{OURS if command != XENPVNETBOOT else 'python3 -m ' + OURS} --version"
    contenders = {
        PYTHON: Command([sys.executable, "-c", "pass"]),
        CURL_VERSION: Command(["curl", "--version"]),
        ours: Command(command + ["--version"]),
    }
    if command != XENPVNETBOOT:
        contenders["python3 -m xenpvnetboot --version"] = Command(XENPVNETBOOT + ["--version"])
    contenders[PYTHON_NO_SITE] = Command([sys.executable, "-S", "-c", "pass"], env=without_site())
    contenders[VERSION_NO_SITE] = Command([sys.executable, "-S", "-m", OURS, "--version"],
                                          env=without_site())
    print(f"Start-up, {opts.runs} alternating rounds ({command[0]}):")
    times = alternate(contenders, opts.runs)  # type: ignore[arg-type]
    report(times, PYTHON)
    print(f"  {ours} against curl --version: {ratio(times, ours, CURL_VERSION):.2f}x")
    version_imports = summarize(
        f"\n-S -X importtime -m {OURS} --version, median of {opts.import_rounds}",
        import_report(XENPVNETBOOT[1:] + ["--version"], opts.import_rounds))
    work = tempfile.mkdtemp(prefix="bench-startup.")
    try:
        root = os.path.join(work, "srv")
        debian_tree(root)
        out = os.path.join(work, "out")
        os.mkdir(out)
        server = Nginx(root)
        try:
            argv = boot_argv(server.url(), out, os.path.join(work, "result"), "--no-cache")
            boot_imports = summarize(
                f"\n-S -X importtime, a boot of the Debian pair from nginx, median of "
                f"{opts.import_rounds}", import_report(argv[1:], opts.import_rounds))
        finally:
            server.stop()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    result("startup.version_ms", median(times[ours]) * 1000)
    result("startup.python_ms", median(times[PYTHON]) * 1000)
    result("startup.version_no_site_ms", median(times[VERSION_NO_SITE]) * 1000)
    result("startup.version_vs_python", ratio(times, ours, PYTHON))
    result("startup.version_vs_curl", ratio(times, ours, CURL_VERSION))
    result("startup.version_imports_ms", version_imports)
    result("startup.boot_imports_ms", boot_imports)
    return 0


if __name__ == "__main__":
    sys.exit(main())
