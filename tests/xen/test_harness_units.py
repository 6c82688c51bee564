"""The real-Xen harness's own logic, without Xen: scenarios and judging.

The judge must be able to fail: each check is shown to report what it is
for on a result made to lack it.
"""

from __future__ import annotations

import dataclasses

import pytest
from realxen import judge as judging
from realxen.scenarios import (SCENARIOS, SCREENS, Expect, Scenario, cfg_items, cmdline_token,
                               job_entry, render_cfg, select)

HOSTS = {"http": "http://10.0.2.2:8080", "tftp": "tftp://10.0.2.2", "iso": "/iso/x.iso",
         "bin": "/job/bin", "probe": "/job/out/probes", "user": "u", "nfs": "10.0.2.2:/srv"}
LOG_OK = b"Location http://x/\r\nFound Debian\r\n"


def booted(name: str = "g", screen: str = "installer", **changes) -> dict:
    console = (f"[0.0] Linux version 6.1.0-50-amd64\nKernel command line: console=hvc0 "
               f"{cmdline_token(name)}\n" + "\n".join(SCREENS[screen]))
    result = {"name": name, "xl_rc": 0, "domid": 3, "console": console,
              "xl_log": f"libxl: debug: x: Domain 3:{judging.LIBXL_SUCCESS}\n",
              "bootloader_log_hex": LOG_OK.hex(), "leftovers": [], "procs_after": [], "procs": [],
              "mounts": [], "domain_left": False}
    result.update(changes)
    return result


def failed(error_lines: int = 1, **changes) -> dict:
    log = b"".join(b"xenpvnetboot: error: http://h/initrd.gz: not found (HTTP 404)\n"
                   for _ in range(error_lines))
    result = booted(xl_rc=3, console="", bootloader_log_hex=log.hex(),
                    xl_log=f"libxl: error: x: Domain 3:{judging.LIBXL_FAILED} /var/log/xen/b.log\n")
    result.update(changes)
    return result


def test_select():
    assert [s.name for s in select("ci")] == [s.name for s in SCENARIOS if s.ci]
    assert len(select("all")) == len(SCENARIOS)
    assert [s.name for s in select("tftp, http-404")] == ["tftp", "http-404"]
    with pytest.raises(ValueError, match="no scenario"):
        select("nonsense")


def test_names_are_unique_and_valid_for_xl():
    names = [s.name for s in SCENARIOS]
    assert len(set(names)) == len(names)
    assert all(name.replace("-", "").isalnum() for name in names)


def test_cfg_items_fill_placeholders_and_mark_the_command_line():
    scenario = Scenario("s1", {"bootloader_args": ["--location={http}/tree/"], "memory": 2048})
    items = cfg_items(scenario, HOSTS)
    assert items["bootloader_args"] == ["--location=http://10.0.2.2:8080/tree/"]
    assert items["memory"] == 2048 and items["name"] == "s1" and items["type"] == "pv"
    assert items["extra"].endswith(cmdline_token("s1"))
    assert items["disk"] == ["file:/var/lib/xen/images/s1.img,xvda,w"]
    text = render_cfg(items)
    assert 'bootloader_args = ["--location=http://10.0.2.2:8080/tree/"]\n' in text
    assert "memory = 2048\n" in text


def test_every_scenario_renders():
    for scenario in SCENARIOS:
        entry = job_entry(scenario, HOSTS)
        assert "{" not in entry["cfg"], scenario.name
        if scenario.must_report or scenario.expect.outcome != "boots":
            assert entry["wait_for"] == []
        else:
            assert entry["wait_for"] == list(SCREENS[scenario.expect.screen])


def test_good_boot_passes():
    assert judging.judge("g", Expect(screen="installer", crlf=True), booted()) == []


@pytest.mark.parametrize("change, problem", [
    ({"xl_rc": 3}, "xl create failed"),
    ({"console": "Linux version 6.1\nRun /init as init process\n"}, "lacks ['Select a language']"),
    ({"leftovers": ["bootloader.3.d"]}, "left in /var/lib/xen"),
    ({"procs_after": [{"pid": 9, "uid": [0, 0, 0, 0]}]}, "still running"),
    ({"bootloader_log_hex": b"Traceback (most recent call last):\n".hex()}, "traceback"),
    ({"xl_log": "x\n"}, "did not log"),
])
def test_boot_problems_are_reported(change, problem):
    problems = judging.judge("g", Expect(screen="installer"), booted(**change))
    assert any(problem in p for p in problems), problems


def test_lost_command_line_is_reported():
    result = booted(console="Linux version 6.1\nKernel command line: console=hvc0\n"
                            "Run /init as init process\n")
    problems = judging.judge("g", Expect(), result)
    assert any("args item got lost" in p for p in problems), problems


def test_bare_line_feeds_are_reported():
    result = booted(bootloader_log_hex=b"Location x\r\nFound y\n".hex())
    assert judging.judge("g", Expect(crlf=True), result) == \
        ["1 bootloader line(s) end in a bare LF, e.g. b'Found y'"]


def test_unparsable_result_is_reported_even_when_the_build_fails():
    result = failed(xl_log=f"libxl: warning: x: {judging.LIBXL_UNEXPECTED}: `linux (kernel /k)'\n")
    problems = judging.judge("g", Expect(), result)
    assert any("unexpected items" in p for p in problems), problems


def test_expected_failure_passes_with_one_error_line_naming_the_url():
    assert judging.judge("f", Expect(outcome="fails", error="http://h/initrd.gz"), failed()) == []


@pytest.mark.parametrize("result, expect, problem", [
    (failed(error_lines=2), Expect(outcome="fails", error="h"), "one error line"),
    (failed(), Expect(outcome="fails", error="http://other/"), "does not name"),
    (booted(), Expect(outcome="fails", error="h"), "must fail"),
    (failed(domain_left=True), Expect(outcome="fails", error="h"), "still there"),
    (failed(), Expect(outcome="killed"), "killing bootloader because of timeout"),
])
def test_failure_problems_are_reported(result, expect, problem):
    problems = judging.judge("f", expect, result)
    assert any(problem in p for p in problems), problems


def test_runas_needs_a_process_of_that_uid_under_the_root_one():
    procs = [{"pid": 10, "ppid": 1, "uid": [0, 0, 0, 0]}, {"pid": 11, "ppid": 10, "uid": [999] * 4}]
    result = booted(procs=procs, xl_log=f"Domain 3:{judging.LIBXL_SUCCESS}\n  arg: --runas=999\n")
    expect = Expect(runas_user="bl")
    assert judging.judge("g", expect, result, {"bl": 999}) == []
    root_only = dict(result, procs=procs[:1])
    assert any("no bootloader process ran as uid 999" in p
               for p in judging.judge("g", expect, root_only, {"bl": 999}))
    orphan = dict(result, procs=[procs[0], dict(procs[1], ppid=5)])
    assert any("not a child" in p for p in judging.judge("g", expect, orphan, {"bl": 999}))


def test_expect_rejects_unknown_values():
    with pytest.raises(ValueError):
        Expect(outcome="works")
    with pytest.raises(ValueError):
        dataclasses.replace(Expect(), screen="desktop")
