"""The real-Xen harness's own logic, without Xen: scenarios and judging.

The judge must be able to fail: each check is shown to report what it is
for on a result made to lack it.
"""

from __future__ import annotations

import dataclasses
import os

import pytest
from realxen import judge as judging
from realxen.scenarios import (DATA, KEYRING, SCENARIOS, SCREENS, Expect, Scenario, cfg_items,
                               cmdline_token, filled_expect, job_entry, render_cfg, select)

DATA_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "data")

HOSTS = {"http": "http://10.0.2.2:8080", "tftp": "tftp://10.0.2.2", "iso": "/iso/x.iso",
         "bin": "/job/bin", "probe": "/job/out/probes", "user": "u", "nfs": "10.0.2.2:/srv",
         "data": "/job/data", "signer": "ABCD 0123"}
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
            screen = [[text] for text in SCREENS[scenario.expect.screen]]
            assert entry["wait_for"][:len(screen)] == screen
        assert all(text in entry["stop_on"] for text in scenario.expect.never)
        assert "{" not in repr(filled_expect(scenario, HOSTS)), scenario.name


def test_awaited_texts_and_alternatives_go_to_dom0_in_order():
    scenario = Scenario("p", {}, Expect(shows=(("Ja", "Yes"), "Done"), never=("No",)))
    entry = job_entry(scenario, HOSTS)
    assert entry["wait_for"] == [["Linux version 6.1"], ["Run /init as init process"],
                                 ["Ja", "Yes"], ["Done"]]
    assert entry["stop_on"][-1] == "No"


def test_the_test_data_a_scenario_names_exists():
    assert all(os.path.isfile(os.path.join(DATA_DIR, source)) for source in DATA.values())
    used = {arg for s in SCENARIOS for arg in s.cfg.get("bootloader_args", ()) if "{data}" in arg}
    assert used and all(arg.rsplit("/", 1)[1] in set(DATA) | {KEYRING} for arg in used)


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


# -- console texts, command lines and the bootloader log -----------------------------

GERMAN = ("Netzwerk einrichten", "Netzwerk-Hardware erkennen")
PRESEEDED = Expect(shows=(GERMAN,), never=("Choose language", "Language:"))


def test_console_text_is_found_through_terminal_escapes():
    result = booted(screen="kernel")
    result["console"] += "\x1b[5;3H\x1b(0\x1b[30m\x1b[47mlqq\x1b(B [?] Netzwerk-Hardware \x1b[1merkennen"
    assert judging.judge("g", PRESEEDED, result) == []


@pytest.mark.parametrize("tail, problem", [
    ("\x1b[31m[!!] Choose language\x1b[0m", "shows 'Choose language'"),
    ("Netzwerk einrichten\nLanguage: ", "shows 'Language:'"),
    ("Select a language", "lacks ['Netzwerk einrichten or Netzwerk-Hardware erkennen']"),
])
def test_console_texts_that_must_not_or_must_appear_are_reported(tail, problem):
    result = booted(screen="kernel")
    result["console"] += "\n" + tail
    problems = judging.judge("g", PRESEEDED, result)
    assert any(problem in p for p in problems), problems


MENU = Expect(screen="created", cmdline_has=("---", "quiet"), cmdline_lacks=("vga=",))


def builder_log(cmdline: str) -> str:
    return (f'domainbuilder: detail: xc_dom_allocate: cmdline="{cmdline}", features=""\n'
            f"libxl: debug: x: Domain 3:{judging.LIBXL_SUCCESS}\n")


def test_command_line_is_read_from_the_domain_builder_and_the_guest():
    cmdline = f"--- quiet console=hvc0 {cmdline_token('g')}"
    result = booted(xl_log=builder_log(cmdline), console=f"Linux\nKernel command line: {cmdline}\r\n")
    assert judging.judge("g", MENU, result) == []
    assert judging.guest_cmdlines(result) == [cmdline, cmdline]
    result["console"] = f"Kernel command line: console=hvc0 {cmdline_token('g')}\n"
    problems = judging.judge("g", MENU, result)
    assert problems == [f"kernel command line 'console=hvc0 {cmdline_token('g')}' lacks ['---', 'quiet']"]


@pytest.mark.parametrize("cmdline, problem", [
    ("--- console=hvc0", "lacks ['quiet']"),
    ("vga=788 --- quiet console=hvc0", "has ['vga=788']"),
    ("--- quietly", "lacks ['quiet']"),
])
def test_command_line_words_are_checked(cmdline, problem):
    result = booted(screen="created", console="", xl_log=builder_log(cmdline))
    problems = judging.judge("g", MENU, result)
    assert any(problem in p for p in problems), problems


def test_a_command_line_nowhere_to_be_seen_is_reported():
    problems = judging.judge("g", MENU, booted(screen="created", console=""))
    assert any("no kernel command line" in p for p in problems), problems


def test_bootloader_log_texts_are_checked():
    expect = Expect(log_has=("Verified kernel", "signed by ABCD"))
    good = booted(bootloader_log_hex=b"Verified kernel http://k and ramdisk: signed by ABCD 0123\r\n".hex())
    assert judging.judge("g", Expect(screen="installer", log_has=expect.log_has), good) == []
    problems = judging.judge("g", dataclasses.replace(expect, screen="installer"), booted())
    assert any("log lacks ['Verified kernel', 'signed by ABCD']" in p for p in problems), problems


def test_our_own_failure_must_come_before_libxl_kills_us():
    result = failed(xl_log=f"libxl: error: x: {judging.LIBXL_TIMEOUT}\n{judging.LIBXL_FAILED}\n")
    problems = judging.judge("f", Expect(outcome="fails", error="h"), result)
    assert any("killed the bootloader" in p for p in problems), problems


def test_expect_rejects_unknown_values():
    with pytest.raises(ValueError):
        Expect(outcome="works")
    with pytest.raises(ValueError):
        dataclasses.replace(Expect(), screen="desktop")
    with pytest.raises(ValueError):
        Expect(outcome="fails", shows=("x",))
