"""tests/support/libxl.py does what Xen 4.17's libxl was seen doing (tests/xen).

These run with the unit suite: the probe bootloader of the real-Xen harness
records what it is handed, here under the imitation; test_real_xen.py
compares the same record against the real libxl.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time

import pytest

TESTS = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if TESTS not in sys.path:
    sys.path.insert(0, TESTS)

from support import libxl  # noqa: E402

PROBE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "dom0", "bin", "probe-bootloader")


def probe(workdir: str, tmp_path, **kwargs) -> dict:
    record = tmp_path / "probe.json"
    run = libxl.run_bootloader(["--location=http://192.0.2.1/"], workdir, bootloader=[PROBE],
                               env={"XENPVNB_PROBE_RECORD": str(record), "XENPVNB_PROBE_NEXT": "-"},
                               **kwargs)
    assert run.status == 3, run.console
    return json.loads(record.read_text())


def test_pty_is_raw_without_size_and_controls_a_new_session(workdir, tmp_path):
    facts = probe(workdir, tmp_path)
    assert facts["tty"]["rows"] == 0 and facts["tty"]["cols"] == 0
    modes = facts["tty"]["modes"]
    assert not any(modes[name] for name in ("OPOST", "ICANON", "ECHO", "ISIG", "ICRNL", "IXON"))
    assert modes["CS8"]
    assert facts["same_tty"] and facts["session_leader"] and facts["controlling_tty"]
    assert facts["env"]["TERM"] == "vt100"


def test_bootloader_log_leaks_as_an_append_only_descriptor(workdir, tmp_path):
    facts = probe(workdir, tmp_path)
    extra = [f for fd, f in facts["fds"].items() if int(fd) > 2]
    assert len(extra) == 1, facts["fds"]
    assert extra[0]["access"] == "w" and extra[0]["append"] and not extra[0]["cloexec"]
    assert extra[0]["target"].endswith(".log")


@pytest.mark.skipif(os.geteuid() != 0, reason="libxl runs as root; its 0600 directory needs root")
def test_output_directory_is_0600_and_output_file_empty(workdir, tmp_path):
    facts = probe(workdir, tmp_path)
    assert facts["output_directory"] == {"exists": True, "mode": "0o600", "uid": 0, "kind": "dir",
                                         "entries": []}
    assert facts["output"] == {"exists": True, "mode": "0o600", "uid": 0, "kind": "file", "size": 0}


def test_lines_end_in_cr_lf_on_the_raw_pty(sample_root, workdir):
    """A bare LF staircases on libxl's pty: every line the bootloader prints ends in CR LF."""
    run = libxl.run_bootloader([f"--location={sample_root}/OL6", "-v"], workdir)
    assert run.status == 0, run.console
    lines = run.console_bytes.split(b"\n")
    assert len(lines) > 3 and lines[-1] == b""
    assert all(line.endswith(b"\r") for line in lines[:-1]), run.console_bytes[:400]


def test_restricted_bootloader_is_killed_after_libxl_timeout(workdir):
    """libxl's SIGKILL, whatever the bootloader does (here: it only sleeps)."""
    start = time.monotonic()
    run = libxl.run_bootloader([], workdir, runas=40123, env={"LIBXL_BOOTLOADER_TIMEOUT": "2"},
                               bootloader=[sys.executable, "-c", "import time; time.sleep(60)"])
    assert run.killed_by_timeout and run.status == -signal.SIGKILL
    assert time.monotonic() - start < 30
    unrestricted = libxl.run_bootloader([], workdir, env={"LIBXL_BOOTLOADER_TIMEOUT": "1"},
                                        bootloader=[sys.executable, "-c", "import sys, time; time.sleep(3); sys.exit(1)"])
    assert unrestricted.status == 1 and not unrestricted.killed_by_timeout


def test_restrict_timeout_follows_libxl():
    assert libxl.restrict_timeout(None, {"LIBXL_BOOTLOADER_TIMEOUT": "5"}) is None
    assert libxl.restrict_timeout(1000, {}) == 120.0
    assert libxl.restrict_timeout(1000, {"LIBXL_BOOTLOADER_TIMEOUT": "15s"}) == 15.0
    assert libxl.restrict_timeout(1000, {"LIBXL_BOOTLOADER_TIMEOUT": "0"}) is None
    assert libxl.restrict_timeout(1000, {"LIBXL_BOOTLOADER_TIMEOUT": "x"}) is None


def test_items_split_like_libxl():
    assert libxl.parse_simple0(b"kernel\t/k\0args  a b\0\0") == {"kernel": "/k", "args": "a b"}
    with pytest.raises(ValueError):
        libxl.parse_simple0(b"kernel=/k\0\0")
