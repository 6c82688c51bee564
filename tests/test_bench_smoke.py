"""The benchmark scripts start, and their shared helpers compute what they claim.

No benchmark is run here: each script's --help is run, and the helpers of
bench/common.py (medians, ratios, RESULT lines, GNU time's report), the
import-time parser of bench_startup.py and the verdicts of run_all.py are
checked on known values.
"""

from __future__ import annotations

import glob
import importlib
import os
import subprocess
import sys

import pytest

BENCH = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "bench")
SCRIPTS = sorted(os.path.basename(path) for path in glob.glob(os.path.join(BENCH, "*.py"))
                 if os.path.basename(path) != "common.py")


@pytest.fixture(scope="module")
def bench_modules():
    names = ("common", "bench_startup", "run_all")
    sys.path.insert(0, BENCH)
    try:
        yield {name: importlib.import_module(name) for name in names}
    finally:
        sys.path.remove(BENCH)
        for name in names:  # "common" is too generic a name to leave behind
            sys.modules.pop(name, None)


def test_every_script_is_covered():
    for name in ("bench_http.py", "bench_ftp.py", "bench_big.py", "bench_startup.py",
                 "bench_cache.py", "bench_link.py", "run_all.py"):
        assert name in SCRIPTS


@pytest.mark.parametrize("script", SCRIPTS)
def test_help(script):
    done = subprocess.run([sys.executable, os.path.join(BENCH, script), "--help"],
                          capture_output=True, text=True, timeout=20)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("usage:")
    assert "--runs" in done.stdout


def test_medians_and_ratios(bench_modules, capsys):
    common = bench_modules["common"]
    times = {"ref": [0.3, 0.1, 0.2, 0.5, 0.4], "ours": [0.8, 0.2, 0.6, 0.4, 1.0]}
    assert common.median(times["ref"]) == pytest.approx(0.3)
    assert common.median([4.0, 1.0, 3.0, 2.0]) == pytest.approx(2.5)
    assert common.ratio(times, "ours", "ref") == pytest.approx(0.6 / 0.3)
    ratios = common.report(times, "ref")
    assert ratios == {"ref": pytest.approx(1.0), "ours": pytest.approx(2.0)}
    out = capsys.readouterr().out
    assert "median    600.0 ms" in out and "2.00x ref" in out


def test_alternate_runs_a_warm_up_then_rounds_in_turn(bench_modules):
    common = bench_modules["common"]
    calls = []

    def contender(name, value):
        def run():
            calls.append(name)
            return value
        return run

    times = common.alternate({"a": contender("a", 1.0), "b": contender("b", 2.0)}, 3)
    assert calls == ["a", "b"] * 4
    assert times == {"a": [1.0] * 3, "b": [2.0] * 3}


def test_result_lines_round_trip(bench_modules, capsys):
    common = bench_modules["common"]
    common.result("http.off.ratio_curl", 1.23456789)
    common.result("big.warn.rss_mib", 59.25)
    printed = capsys.readouterr().out
    assert printed == "RESULT http.off.ratio_curl=1.23457\nRESULT big.warn.rss_mib=59.25\n"
    parsed = common.parse_results("noise\n" + printed + "RESULT bad line\nRESULT x=2\nRESULT x=3\n")
    assert parsed == {"http.off.ratio_curl": 1.23457, "big.warn.rss_mib": 59.25, "x": 3.0}


def test_gnu_time_report(bench_modules):
    common = bench_modules["common"]
    text = ("\tCommand being timed: \"curl\"\n\tUser time (seconds): 0.01\n"
            "\tMaximum resident set size (kbytes): 11136\n\tExit status: 0\n")
    assert common.parse_max_rss(text) == 11136
    with pytest.raises(ValueError):
        common.parse_max_rss("Exit status: 0\n")


def test_argv_helpers(bench_modules):
    common = bench_modules["common"]
    argv = common.boot_argv("ftp://127.0.0.1:21/", "/o", "/r", "--check=off")
    assert argv[:3] == [sys.executable, "-m", "xenpvnetboot"]
    assert argv[3:] == ["--location=ftp://127.0.0.1:21/", "--output-directory=/o", "--output=/r",
                        "--output-format=simple0", "-q", "--check=off", "/dev/null"]
    assert common.curl_argv(["u1", "u2"], "/o") == ["curl", "-sSf", "-o", "/o/file0", "u1",
                                                   "-o", "/o/file1", "u2"]


IMPORTTIME = """\
import time: self [us] | cumulative | imported package
import time:       100 |        100 |   _io
import time:       200 |        300 | _frozen_importlib_external
import time:      1000 |       1000 |     certifi.core
import time:       500 |       1500 |   certifi
import time:      2000 |       3500 | site
import time:       400 |        400 |     signal
import time:      1000 |       1400 |   xenpvnetboot.cleanup
import time:      3000 |       3000 |   argparse
import time:      2000 |       6400 | xenpvnetboot.cli
import time:      7000 |       7000 | pycurl
"""


def test_importtime_parser(bench_modules, capsys):
    startup = bench_modules["bench_startup"]
    rows = {row.name: row for row in startup.parse_importtime(IMPORTTIME)}
    assert rows["certifi"].parent == "site" and rows["certifi.core"].parent == "certifi"
    assert rows["signal"].parent == "xenpvnetboot.cleanup"
    assert rows["xenpvnetboot.cleanup"].parent == "xenpvnetboot.cli"
    assert rows["pycurl"].parent is None and rows["pycurl"].depth == 0
    assert [name for name, row in rows.items() if row.by_program] == [
        "signal", "xenpvnetboot.cleanup", "argparse", "xenpvnetboot.cli", "pycurl"]
    total = startup.summarize("t", list(rows.values()))
    assert total == pytest.approx(13.4)  # 6.4 ms + 7.0 ms, site excluded
    out = capsys.readouterr().out
    assert "t: 13.4 ms importing" in out
    assert out.index("pycurl") < out.index("argparse")  # by cumulative time
    assert "imported by run time" in out and "imported by xenpvnetboot.cli" in out


def test_importtime_program_starts_after_runpy(bench_modules):
    """Under -S there is no site: the interpreter's imports end with runpy (-m)."""
    startup = bench_modules["bench_startup"]
    runpy = "import time:       100 |        100 | runpy\n"
    text = IMPORTTIME.replace("| site\n", "| encodings\n" + runpy)
    rows = startup.parse_importtime(text)
    assert [row.name for row in rows if row.by_program] == [
        "signal", "xenpvnetboot.cleanup", "argparse", "xenpvnetboot.cli", "pycurl"]
    assert not any(row.by_program for row in rows if row.name in ("encodings", "certifi", "runpy"))


def test_importtime_medians(bench_modules):
    startup = bench_modules["bench_startup"]
    reports = [startup.parse_importtime(IMPORTTIME.replace("7000 | pycurl", f"{v} | pycurl"))
               for v in ("7000", "9000", "5000")]
    merged = {row.name: row for row in startup.median_imports(reports)}
    assert merged["pycurl"].cumulative_us == 7000
    assert merged["xenpvnetboot.cli"].cumulative_us == 6400


def test_run_all_verdicts(bench_modules):
    run_all = bench_modules["run_all"]
    # Every figure at its bound, or just inside it for a strict bound.
    results = {target.key: target.limit - (target.op == "<") for target in run_all.TARGETS}
    lines, not_met = run_all.summary(results)
    assert not_met == 0 and all(line.endswith("MET") for line in lines[1:])
    results["startup.version_ms"] = 100.0  # "< 100": not met at the bound
    results["tftp.speedup_vs_tftp_hpa"] = 9.9
    del results["ftp.off.ratio_curl"]
    results["bootcheck.check_cpu_ms"] = 420.0
    lines, not_met = run_all.summary(results, ["bench_ftp.py"])
    assert not_met == 3
    table = "\n".join(lines)
    assert "startup.version_ms" in table and table.count("NOT MET") == 2
    assert "NOT RUN" in table and "bootcheck.check_cpu_ms" in table
    assert lines[-1] == "failed: bench_ftp.py"


def test_run_all_lists_only_the_benchmarks_run(bench_modules):
    run_all = bench_modules["run_all"]
    lines, not_met = run_all.summary({"images.iso.ratio_cp": 0.7}, only=["images"])
    assert [line.split()[0] for line in lines[1:]] == ["images.iso.ratio_cp",
                                                       "images.ext4.ratio_cp"]
    assert lines[1].endswith(" MET") and lines[2].endswith("NOT RUN") and not_met == 1


def test_output_dir(bench_modules, tmp_path):
    common = bench_modules["common"]
    made = common.output_dir(str(tmp_path), parent=str(tmp_path))
    assert os.path.isdir(made) and os.path.dirname(made) == str(tmp_path)
    assert common.tmpfs_dir(str(tmp_path)) is False
