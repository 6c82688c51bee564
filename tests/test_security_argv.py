"""What the guest's configuration can say: libxl's options cannot be taken over,
and credentials never appear in what the bootloader prints.

libxl puts ``--output``, ``--output-format``, ``--output-directory`` (and
``--runas --quiet`` in restricted mode) before the items of
``bootloader_args``, which the guest's owner writes.
"""

from __future__ import annotations

import os
import subprocess

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support.libxl import BOOTLOADER, build_argv, run_bootloader

from xenpvnetboot.cli import LIBXL_OPTIONS, parse_args
from xenpvnetboot.errors import UsageError

OUT = "/var/lib/xen/bootloader.7.out"
DIR = "/var/lib/xen/bootloader.7.d"


@pytest.mark.parametrize("extra", [
    ["--output=/etc/ld.so.preload"],
    ["--output", "/etc/ld.so.preload"],
    ["--output-directory=/etc/cron.d"],
    ["--output-dir=/etc/cron.d"],  # an abbreviation is the same option
    ["--output-format=sxp"],
    ["--runas=1001"],
    ["--runas", "1001"],
    ["--location=/srv", "--output=-"],
])
def test_a_second_libxl_option_is_refused(extra, tmp_path):
    target = tmp_path / "victim"
    target.write_bytes(b"precious")
    extra = [item.replace("/etc/ld.so.preload", str(target)) for item in extra]
    restricted = extra[0].startswith("--runas")
    run = run_bootloader(["--location=/nonexistent"] + extra, str(tmp_path),
                         runas=40123 if restricted else None)
    assert run.status == 2, run.console
    assert "given twice" in run.console and "set once, by libxl" in run.console
    option = next(item for item in extra if item.startswith("--output") or item.startswith("--run"))
    assert option.split("=")[0] in run.console or "--output-directory" in run.console
    assert target.read_bytes() == b"precious"
    assert run.output_unchanged and run.leftovers == []
    assert not os.path.exists("/etc/cron.d/xenpvboot.check")


def test_restricted_runas_cannot_be_changed(tmp_path):
    run = run_bootloader(["--location=/nonexistent", "--runas=1001"], str(tmp_path), runas=40123)
    assert run.status == 2
    assert "--runas given twice" in run.console


def test_kernel_from_config_and_bootloader_args_later_wins():
    args = parse_args(build_argv(["--location=http://h/", "--kernel=b/vmlinuz"], OUT, DIR,
                                 kernel="a/vmlinuz")[3:])
    assert args.kernel == "b/vmlinuz"


def test_libxl_options_are_the_ones_that_decide_where_root_writes():
    assert set(LIBXL_OPTIONS) == {"--output", "--output-format", "--output-directory", "--runas"}


_item = st.one_of(
    st.sampled_from(["--output", "--output=", "--output-directory", "--output-format",
                     "--output-d", "--output-f", "--runas", "--runas=1", "--quiet", "-q", "--",
                     "--kernel=x", "--location=/srv", "simple0", "sxp", "/etc/passwd", "0",
                     "--output=/etc/shadow", "--output-directory=/etc", "--runas=5",
                     "--output-format=simple", "-n", "--help"]),
    st.text(max_size=20),
)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_item, max_size=10), st.booleans())
def test_no_bootloader_args_change_where_root_writes(extra, restricted):
    argv = build_argv(extra, OUT, DIR, runas=40123 if restricted else None)[3:]
    try:
        args = parse_args(argv)
    except UsageError:
        return
    except SystemExit as exc:  # --help or --version
        assert exc.code == 0
        return
    assert args.output == OUT
    assert args.output_directory == DIR
    assert args.output_format == "simple0"
    assert args.runas == (40123 if restricted else args.runas)
    if restricted:
        assert args.quiet


# -- credentials -------------------------------------------------------------------------

SECRET = "S3cr3tPw"

LOCATIONS_WITH_PASSWORDS = [
    f"ftp://user:{SECRET}@127.0.0.1:99999/x",           # bad port
    f"http://user:{SECRET}@[::1/x",                      # bad brackets
    f"gopher://user:{SECRET}@h/x",                       # unsupported scheme
    f"http://user:{SECRET}@h/x?query=1",                 # query string
    f"http://user:{SECRET}@h/a\x1bb",                    # control character
    f"ftp://user:{SECRET}@/x",                           # no host
    f"http://user:{SECRET}@127.0.0.1:1/x",               # nothing listens there
    f"javascript://user:{SECRET}@h",
    f"file://user:{SECRET}@remote/etc",
]


@pytest.mark.parametrize("location", LOCATIONS_WITH_PASSWORDS)
def test_password_never_printed_for_a_bad_location(location, tmp_path):
    proc = subprocess.run(BOOTLOADER + [f"--location={location}", "--timeout=2", "--retries=0",
                                        f"--output-directory={tmp_path}/out", "-v"],
                          capture_output=True, timeout=30)
    output = proc.stdout.decode(errors="replace") + proc.stderr.decode(errors="replace")
    assert proc.returncode in (1, 2), output
    assert SECRET not in output
    assert "xenpvnetboot: error:" in output


@pytest.mark.parametrize("spec", [
    f"ftp://user:{SECRET}@127.0.0.1:99999/vmlinuz",
    f"http://user:{SECRET}@127.0.0.1:1/vmlinuz",
    f"http://user:{SECRET}@h/vmlinuz#frag",
    f"http://user:{SECRET}@h/",
])
def test_password_never_printed_for_a_bad_kernel_url(spec, tmp_path):
    proc = subprocess.run(BOOTLOADER + [f"--kernel={spec}", "--timeout=2", "--retries=0",
                                        f"--output-directory={tmp_path}/out", "-n"],
                          capture_output=True, timeout=30)
    output = proc.stdout.decode(errors="replace") + proc.stderr.decode(errors="replace")
    assert proc.returncode in (1, 2), output
    assert SECRET not in output


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet="abc:/@[]%?#.-1 ", max_size=30))
def test_password_hidden_whatever_surrounds_it(rest):
    from xenpvnetboot.location import parse_location

    text = f"http://u:{SECRET}@{rest}"
    try:
        location = parse_location(text)
    except UsageError as exc:
        assert SECRET not in str(exc)
        return
    assert SECRET not in location.display() and SECRET not in repr(location)
    assert SECRET in location.url()


def test_password_hidden_in_a_real_ftp_boot(ftp_server, tmp_path):
    from support.ftp_server import PASSWORD

    for extra in (["-n", "-v"], ["-v", "--kernel=images/pxeboot/missing"]):
        proc = subprocess.run(
            BOOTLOADER + [f"--location={ftp_server.url('OL6', auth=True)}",
                          f"--output-directory={tmp_path}/out"] + extra,
            capture_output=True, timeout=60)
        output = proc.stdout.decode(errors="replace") + proc.stderr.decode(errors="replace")
        assert "ftp://" in output, output
        assert PASSWORD not in output, output
