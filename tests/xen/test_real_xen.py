"""Real guests under real libxl: Xen 4.17 in QEMU, one boot for every scenario.

Run by ``make xen-test`` (``XEN_SCENARIOS=all`` for the full set, or names
separated by commas).  One session fixture prepares the images (cached),
starts the servers, boots Xen once and lets dom0 run ``xl create`` for each
scenario; each test then judges one scenario from what dom0 recorded.  The
harness checks itself too: broken bootloaders and a boot that cannot work
must be reported as failed boots, so a green run means that guests booted.
"""

from __future__ import annotations

import json
import os
import sys

import pytest
from realxen import judge as judging
from realxen.prepare import Missing
from realxen.run import DEFAULT_CONCURRENCY, Run, run_all
from realxen.scenarios import Expect, select

SELECTED = select(os.environ.get("XEN_SCENARIOS", "ci"))
BY_NAME = {s.name: s for s in SELECTED}
PROBE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "dom0", "bin", "probe-bootloader")

pytestmark = pytest.mark.timeout(3600)


@pytest.fixture(scope="session")
def xen_run(pytestconfig) -> Run:
    if os.geteuid() != 0:
        pytest.skip("needs root (QEMU's 9p share, mmdebstrap, overlay mounts)")
    reporter = pytestconfig.pluginmanager.get_plugin("terminalreporter")

    def report(line: str) -> None:
        if reporter is not None:
            reporter.write_line(line)

    concurrency = int(os.environ.get("XEN_CONCURRENCY", DEFAULT_CONCURRENCY))
    try:
        run = run_all(SELECTED, report, concurrency=concurrency)
    except Missing as exc:
        pytest.skip(str(exc))
    pytestconfig.xenpvnetboot_xen_run = run
    return run


def result_of(run: Run, name: str) -> dict:
    if name in run.skipped:
        pytest.skip(f"{name}: {run.skipped[name]}")
    result = run.result(name)
    if result is None:
        pytest.fail(run.missing_result(name))
    return result


def explain(run: Run, name: str, problems: list) -> str:
    where = os.path.join(run.run_dir, "job", "out", name)
    return f"{name}: " + "\n  ".join(problems) + f"\n(logs in {where}/)"


@pytest.mark.parametrize("scenario", [s for s in SELECTED if not s.must_report], ids=lambda s: s.name)
def test_scenario(xen_run, scenario):
    result_of(xen_run, scenario.name)
    problems = xen_run.verdict(scenario.name)
    assert not problems, explain(xen_run, scenario.name, problems)


@pytest.mark.parametrize("scenario", [s for s in SELECTED if s.must_report], ids=lambda s: s.name)
def test_broken_bootloader_is_reported(xen_run, scenario):
    """Judged as a boot, a broken bootloader's run must fail, for the right reason."""
    result = result_of(xen_run, scenario.name)
    problems = judging.judge(scenario.name, Expect(), result, xen_run.uids)
    assert any(scenario.must_report in p for p in problems), problems
    assert "Linux version" not in result.get("console", "")


@pytest.mark.skipif("http-404" not in BY_NAME, reason="http-404 not selected")
def test_boot_that_cannot_work_is_reported(xen_run):
    """The 404 scenario, judged as if it had to boot, is a failure."""
    result = result_of(xen_run, "http-404")
    problems = judging.judge("http-404", Expect(screen="installer"), result, xen_run.uids)
    assert any("xl create failed" in p for p in problems), problems
    assert any("the bootloader reported an error" in p for p in problems), problems


# -- the imitation of libxl in tests/support, against the real one ---------------------

def comparable(record: dict) -> dict:
    """What must be the same under real libxl and under tests/support/libxl.py.

    Not the signal masks: ignored signals are inherited from whoever started
    xl (or the tests), not set by libxl."""
    def fd_kind(fd: str, facts: dict) -> tuple:
        if int(fd) <= 2:
            return (fd, "pty" if facts["tty"] else facts["target"])
        log = "bootloader log" if "bootloader." in facts["target"] and facts["target"].endswith(".log") \
            else facts["target"]
        return ("extra", log, facts["access"], facts["append"], facts["cloexec"])

    argv = record["argv"]
    return {
        "options": [arg.split("=", 1)[0] for arg in argv],
        "values": [arg.split("=", 1)[1] for arg in argv
                   if arg.startswith(("--kernel=", "--ramdisk=", "--args=", "--output-format="))],
        "fds": sorted(fd_kind(fd, facts) for fd, facts in record["fds"].items()),
        "tty": record["tty"],
        "same_tty": record["same_tty"],
        "session_leader": record["session_leader"],
        "controlling_tty": record["controlling_tty"],
        "TERM": record["env"].get("TERM"),
        "euid": record["euid"],
        "output": record["output"],
        "output_directory": record["output_directory"],
    }


@pytest.mark.skipif("http-urls" not in BY_NAME, reason="http-urls not selected")
def test_imitation_matches_real_libxl(xen_run, tmp_path):
    """The probe bootloader sees the same under tests/support/libxl.py as under libxl 4.17."""
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    from support import libxl

    result_of(xen_run, "http-urls")
    real = xen_run.outcome.probe("http-urls")
    assert real is not None, "the probe wrote no record in dom0"
    given = dict(arg[2:].split("=", 1) for arg in real["argv"] if arg.startswith("--") and "=" in arg)
    record = tmp_path / "probe.json"
    workdir = tmp_path / "xen"
    workdir.mkdir()
    libxl.run_bootloader([], str(workdir), kernel=given["kernel"], ramdisk=given["ramdisk"],
                         cmdline=given["args"], disk=real["argv"][-1], bootloader=[PROBE],
                         env={"XENPVNB_PROBE_RECORD": str(record), "XENPVNB_PROBE_NEXT": "-"})
    imitation = json.loads(record.read_text())
    assert comparable(imitation) == comparable(real)
