"""Hostile and malformed input: exit 2 (usage) or 1 (boot impossible) with one
line, never a traceback, never a hang, never a shell."""

from __future__ import annotations

import os
import subprocess

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support.libxl import BOOTLOADER

from xenpvnetboot.cli import parse_args
from xenpvnetboot.errors import XenPVNetBootError
from xenpvnetboot.location import open_location, resolve_spec
from xenpvnetboot.transports import TransportOptions

OPTIONS = TransportOptions(timeout=2, retries=0)

HOSTILE_LOCATIONS = [
    "http://127.0.0.1:1/$(touch /tmp/pwned)",
    "http://127.0.0.1:1/`touch /tmp/pwned`",
    "/tmp/nothing; touch /tmp/pwned",
    "nfs:127.0.0.1:/x;touch /tmp/pwned",
    "nfs+iso:127.0.0.1:/$(touch /tmp/pwned).iso",
    "tftp://127.0.0.1:1/|touch /tmp/pwned",
    "http://h:99999/x",
    "http://h:-1/x",
    "http://[::1/x",
    "http://[zz]/x",
    "http:///x",
    "ftp://:@/",
    "gopher://h/x",
    "javascript:alert(1)",
    "nfs:",
    "nfs+iso:",
    "nfs:host",
    "nfs:host:relative/path",
    "tftp://",
    "http://" + "a" * 5000 + "/x",
    "http://h/\x1b[31mred",
    "http://h/line\nbreak",
    "-",
    "",
    "../../../../etc",
    "file://remote-host/etc/passwd",
]


@pytest.mark.parametrize("location", HOSTILE_LOCATIONS)
def test_hostile_location(location, tmp_path):
    proc = subprocess.run(
        BOOTLOADER + [f"--location={location}", f"--output-directory={tmp_path}/out",
                      f"--output={tmp_path}/result", "--timeout=2", "--retries=0", "/dev/null"],
        capture_output=True, timeout=30,
    )
    stderr = proc.stderr.decode(errors="replace")
    assert proc.returncode in (1, 2), stderr
    lines = stderr.strip().splitlines()
    assert len(lines) >= 1 and "Traceback" not in stderr
    assert lines[-1].startswith("xenpvnetboot: error: "), stderr
    assert not os.path.exists("/tmp/pwned")
    assert not os.path.exists(f"{tmp_path}/result") or os.path.getsize(f"{tmp_path}/result") == 0
    out = tmp_path / "out"
    assert not out.exists() or os.listdir(out) == []


@pytest.mark.parametrize("option", [
    "--max-size=0", "--max-size=-5", "--max-size=1Q", "--timeout=abc", "--timeout=0",
    "--retries=-1", "--retries=1000", "--kernel-sha256=xyz", "--runas=-3",
    "--output-format=", "--tftp-blksize=abc",
])
def test_bad_option_values_exit_2(option, tmp_path):
    proc = subprocess.run(BOOTLOADER + ["--location=/tmp", option, f"--output-directory={tmp_path}"],
                          capture_output=True, timeout=30)
    assert proc.returncode == 2
    lines = proc.stderr.decode().strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("xenpvnetboot: error:")


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.text(max_size=40), max_size=8))
def test_option_parser_only_raises_usage_errors(argv):
    try:
        parse_args(argv)
    except XenPVNetBootError as exc:
        assert exc.exit_status == 2
    except SystemExit as exc:  # --help / --version print and exit 0
        assert exc.code == 0


_location_text = st.one_of(
    st.text(max_size=80),
    st.builds(lambda scheme, rest: f"{scheme}{rest}",
              st.sampled_from(["http://", "https://", "ftp://", "tftp://", "file://", "nfs:",
                               "nfs+iso:", "HTTP://", "gopher://", "/"]),
              st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=60)),
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_location_text)
def test_location_parser_only_raises_our_errors(text):
    # Only the parsing: hosts are made unreachable, so nothing is contacted.
    if "://" in text and not text.lower().startswith(("file://", "gopher://")):
        text = text.replace("://", "://127.0.0.1:1/", 1)
    if text.startswith(("nfs:", "nfs+iso:")):
        return  # NFS specs are parsed without contacting anyone in test_nfs_spec.py
    try:
        tree = open_location(text, OPTIONS)
    except XenPVNetBootError:
        return
    tree.close()


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=60))
def test_kernel_spec_resolution_only_raises_our_errors(spec):
    from xenpvnetboot.transports.local import LocalTree

    root = LocalTree("/nonexistent-root")
    try:
        tree, path, owned = resolve_spec(spec, root, OPTIONS)
    except XenPVNetBootError:
        return
    assert ".." not in path.split("/")
    if owned:
        tree.close()
