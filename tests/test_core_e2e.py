"""End-to-end: the bootloader run exactly as libxl runs it, over real servers."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from support.libxl import BOOTLOADER, run_bootloader, sha256_file
from support.trees import expected

K = "OL6/images/pxeboot/vmlinuz"
R = "OL6/images/pxeboot/initrd.img"


def assert_booted(run, kernel_rel, ramdisk_rel=None):
    assert run.status == 0, run.console
    assert run.kernel == expected(kernel_rel)
    if ramdisk_rel is None:
        assert "ramdisk" not in run.items
    else:
        assert run.ramdisk == expected(ramdisk_rel)
    assert run.kernel_mode == 0o600
    assert run.leftovers == []


def assert_failed(run, *needles):
    assert run.status == 1, run.console
    assert run.output_unchanged
    assert run.leftovers == []
    errors = run.error_lines
    assert len(errors) == 1, run.console
    for needle in needles:
        assert needle in errors[0], errors[0]
    assert "Traceback" not in run.console


# -- the four equivalent ways of the original description ---------------------

def test_way1_location_root_and_relative_paths(http_server, workdir):
    run = run_bootloader(["--location", http_server.url("")], workdir, kernel=K, ramdisk=R)
    assert_booted(run, K, R)


def test_way2_deeper_location_and_shorter_paths(http_server, workdir):
    run = run_bootloader(["--location", http_server.url("OL6")], workdir,
                         kernel="images/pxeboot/vmlinuz", ramdisk="images/pxeboot/initrd.img")
    assert_booted(run, K, R)


def test_way3_full_urls_without_location(http_server, workdir):
    run = run_bootloader([], workdir, kernel=http_server.url(K), ramdisk=http_server.url(R))
    assert_booted(run, K, R)


def test_way4_everything_in_bootloader_args(http_server, workdir):
    args = ["--location", http_server.url("OL6"), "--kernel", "images/pxeboot/vmlinuz",
            "--ramdisk", "images/pxeboot/initrd.img"]
    run = run_bootloader(args, workdir)
    assert_booted(run, K, R)


def test_later_kernel_option_wins(http_server, workdir):
    args = [f"--location={http_server.url('OL6')}", "--kernel=images/pxeboot/vmlinuz"]
    run = run_bootloader(args, workdir, kernel="does/not/exist")
    assert_booted(run, K, R)


# -- default paths -----------------------------------------------------------

def test_default_path_search(http_server, workdir):
    run = run_bootloader([f"--location={http_server.url('OL6')}"], workdir)
    assert_booted(run, K, R)


def test_incomplete_first_pair_is_skipped(http_server, workdir):
    run = run_bootloader([f"--location={http_server.url('incomplete')}"], workdir)
    assert_booted(run, "incomplete/images/pxeboot/vmlinuz", "incomplete/images/pxeboot/initrd.img")


def test_debian_pair_found(http_server, workdir):
    run = run_bootloader([f"--location={http_server.url('debianish')}"], workdir)
    assert_booted(run, "debianish/current/images/netboot/xen/vmlinuz",
                  "debianish/current/images/netboot/xen/initrd.gz")


def test_kernel_of_known_pair_brings_its_ramdisk(http_server, workdir):
    run = run_bootloader([f"--location={http_server.url('OL6')}"], workdir,
                         kernel="images/pxeboot/vmlinuz")
    assert_booted(run, K, R)


def test_full_url_kernel_of_known_pair_brings_its_ramdisk(http_server, workdir):
    run = run_bootloader([], workdir, kernel=http_server.url(K))
    assert_booted(run, K, R)


def test_kernel_without_any_ramdisk(http_server, workdir):
    run = run_bootloader([f"--location={http_server.url('kernel-only')}"], workdir,
                         kernel="isolinux/vmlinuz")
    assert_booted(run, "kernel-only/isolinux/vmlinuz", None)


def test_nothing_found_names_location_and_paths(http_server, workdir, tmp_path):
    run = run_bootloader([f"--location={http_server.url('empty')}"], workdir)
    assert_failed(run, http_server.url("empty"), "no kernel found: ", "six pairs", "-v lists the paths")
    again = tmp_path / "verbose"
    again.mkdir()
    verbose = run_bootloader([f"--location={http_server.url('empty')}", "-v"], str(again))
    assert "images/pxeboot/vmlinuz" in verbose.console and "isolinux/vmlinuz" in verbose.console


def test_path_needing_quotes(http_server, workdir):
    run = run_bootloader([f"--location={http_server.url('odd%20name')}"], workdir)
    assert_booted(run, "odd name/images/pxeboot/vmlinuz", "odd name/images/pxeboot/initrd.img")


# -- arguments and formats -----------------------------------------------------

def test_args_passthrough(http_server, workdir):
    cmdline = 'console=hvc0 inst.ks="http://x/ks cfg" quiet'
    run = run_bootloader([f"--location={http_server.url('OL6')}"], workdir, cmdline=cmdline)
    assert_booted(run, K, R)
    assert run.args == cmdline


def _run_stdout(args, cwd):
    return subprocess.run(BOOTLOADER + args, capture_output=True, cwd=cwd, timeout=60)


def test_sxp_default_on_stdout(http_server, tmp_path):
    out = tmp_path / "out"
    proc = _run_stdout([f"--location={http_server.url('OL6')}", f"--output-directory={out}",
                        '--args=console=hvc0 x="y"'], str(tmp_path))
    assert proc.returncode == 0, proc.stderr
    text = proc.stdout.decode()
    files = sorted(os.listdir(out))
    kernel = [f for f in files if f.startswith("xenpvboot.vmlinuz.")]
    ramdisk = [f for f in files if f.startswith("xenpvboot.initrd.img.")]
    assert len(files) == 2 and kernel and ramdisk
    assert text == (f"linux (kernel {out}/{kernel[0]})(ramdisk {out}/{ramdisk[0]})"
                    '(args "console=hvc0 x=\\"y\\"")\n')
    assert oct(os.stat(out).st_mode & 0o777) == "0o700"


def test_simple_format_to_file(http_server, tmp_path):
    out = tmp_path / "out"
    result = tmp_path / "result"
    proc = _run_stdout([f"--location={http_server.url('OL6')}", f"--output-directory={out}",
                        f"--output={result}", "--output-format=simple", "--args=a b"], str(tmp_path))
    assert proc.returncode == 0, proc.stderr
    lines = result.read_text().split("\n")
    assert lines[0].startswith(f"kernel {out}/xenpvboot.vmlinuz.")
    assert lines[1].startswith(f"ramdisk {out}/xenpvboot.initrd.img.")
    assert lines[2:] == ["args a b", "", ""]
    assert proc.stdout == b""


def test_newline_in_args_refused_for_simple(http_server, tmp_path):
    out = tmp_path / "out"
    proc = _run_stdout([f"--location={http_server.url('OL6')}", f"--output-directory={out}",
                        "--output-format=simple", "--args=a\nb"], str(tmp_path))
    assert proc.returncode == 1
    assert b"newline" in proc.stderr
    assert os.listdir(out) == []


# -- failures ---------------------------------------------------------------------

def test_missing_kernel(http_server, workdir):
    run = run_bootloader([f"--location={http_server.url('OL6')}"], workdir, kernel="images/nope")
    assert_failed(run, http_server.url("OL6/images/nope"), "404")


def test_missing_ramdisk(http_server, workdir):
    run = run_bootloader([f"--location={http_server.url('OL6')}"], workdir,
                         kernel="images/pxeboot/vmlinuz", ramdisk="images/pxeboot/nope.img")
    assert_failed(run, http_server.url("OL6/images/pxeboot/nope.img"))


def test_connection_cut_mid_file(http_server, workdir):
    http_server.faults["/OL6/images/pxeboot/initrd.img"] = "cut"
    try:
        run = run_bootloader([f"--location={http_server.url('OL6')}"], workdir,
                             kernel="images/pxeboot/vmlinuz", ramdisk="images/pxeboot/initrd.img")
    finally:
        http_server.faults.clear()
    assert_failed(run, http_server.url("OL6/images/pxeboot/initrd.img"))


def test_sigterm_mid_transfer_leaves_nothing(http_server, workdir):
    http_server.faults["/OL6/images/pxeboot/initrd.img"] = "stall"
    try:
        run = run_bootloader([f"--location={http_server.url('OL6')}"], workdir, kill_after=1.5,
                             timeout=10)
    finally:
        http_server.faults.clear()
    assert run.status == 1
    assert "SIGTERM" in run.console
    assert run.leftovers == []
    assert run.output_unchanged


def test_server_down(workdir):
    import socket

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    url = f"http://127.0.0.1:{port}/tree"
    run = run_bootloader([f"--location={url}"], workdir)
    assert_failed(run, url)


# -- https ---------------------------------------------------------------------

def test_untrusted_https_refused(https_server, workdir):
    run = run_bootloader([f"--location={https_server.url('OL6')}"], workdir)
    assert_failed(run, https_server.url("OL6"), "--ca-cert")


def test_https_trusted_with_ca_cert(https_server, ca_file, workdir):
    run = run_bootloader([f"--location={https_server.url('OL6')}", f"--ca-cert={ca_file}"], workdir)
    assert_booted(run, K, R)


def test_https_insecure_warns(https_server, workdir):
    run = run_bootloader([f"--location={https_server.url('OL6')}", "--insecure"], workdir)
    assert_booted(run, K, R)
    assert "verification is disabled" in run.console


# -- ftp, file, local, IPv6, proxy ------------------------------------------------

def test_ftp_anonymous(ftp_server, workdir):
    run = run_bootloader([f"--location={ftp_server.url('OL6')}"], workdir)
    assert_booted(run, K, R)


def test_ftp_user_password(ftp_server, workdir):
    run = run_bootloader([f"--location={ftp_server.url('OL6', auth=True)}"], workdir)
    assert_booted(run, K, R)
    assert "s3cret" not in run.console


def test_ftp_missing_file(ftp_server, workdir):
    run = run_bootloader([f"--location={ftp_server.url('OL6')}"], workdir, kernel="nope/vmlinuz")
    assert_failed(run, ftp_server.url("OL6/nope/vmlinuz"))


def test_file_url(sample_root, workdir):
    run = run_bootloader([f"--location=file://{sample_root}/OL6"], workdir)
    assert_booted(run, K, R)


def test_local_directory(sample_root, workdir):
    run = run_bootloader([f"--location={sample_root}"], workdir, kernel=K, ramdisk=R)
    assert_booted(run, K, R)


def test_local_missing_directory(tmp_path, workdir):
    run = run_bootloader([f"--location={tmp_path}/nowhere"], workdir)
    assert_failed(run, f"{tmp_path}/nowhere")


def test_ipv6_literal(sample_root, workdir):
    import socket

    from support.http_server import TestHTTPServer

    try:
        server = TestHTTPServer(sample_root, host="::1").start()
    except OSError as exc:  # pragma: no cover - depends on the host
        pytest.skip(f"no IPv6 loopback: {exc}")
    try:
        assert socket.AF_INET6 == server.address_family
        run = run_bootloader([f"--location={server.url('OL6')}"], workdir)
    finally:
        server.stop()
    assert server.url("OL6").startswith("http://[::1]:")
    assert_booted(run, K, R)


def test_http_proxy_from_environment(sample_root, workdir):
    from support.http_server import TestHTTPServer

    proxy = TestHTTPServer(sample_root).start()
    try:
        env = {"http_proxy": proxy.url(""), "no_proxy": ""}
        run = run_bootloader(["--location=http://install.example.invalid/OL6"], workdir, env=env)
    finally:
        proxy.stop()
    assert_booted(run, K, R)
    assert "http://install.example.invalid/OL6/images/pxeboot/vmlinuz" in proxy.proxied


# -- the real Debian installer ----------------------------------------------------

def test_real_debian_installer_over_http(debian_mirror, workdir):
    from support import env as test_env
    from support.http_server import TestHTTPServer

    root, rel = debian_mirror
    kernel, initrd = test_env.debian_installer_files()
    server = TestHTTPServer(root).start()
    try:
        location = server.url("debian/dists/bookworm/main/installer-amd64")
        run = run_bootloader([f"--location={location}"], workdir, cmdline="console=hvc0")
    finally:
        server.stop()
    assert run.status == 0, run.console
    assert run.kernel_sha256 == sha256_file(kernel)
    assert run.ramdisk_sha256 == sha256_file(initrd)
    assert run.args == "console=hvc0"
    assert run.leftovers == []
    assert "Fetching kernel" in run.console


# -- usage errors ----------------------------------------------------------------

@pytest.mark.parametrize("args", [
    ["--bogus-option"],
    ["--output-format=xml", "--location=/tmp"],
    ["--location=gopher://host/tree"],
    ["--location=http://host/x", "--timeout=-1"],
    ["--location=http://host/x", "--max-size=lots"],
    ["--location=http://host/x", "--runas=0"],
    ["--location=http://host/x", "--runas=nobody"],
    [],
])
def test_usage_errors_exit_2(args, tmp_path):
    proc = subprocess.run(BOOTLOADER + args + [f"--output-directory={tmp_path}/o"],
                          capture_output=True, timeout=30)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.decode().strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("xenpvnetboot: error:"), lines


def test_version_and_help():
    version = subprocess.run(BOOTLOADER + ["--version"], capture_output=True, timeout=30)
    assert version.returncode == 0 and version.stdout.startswith(b"xenpvnetboot ")
    helptext = subprocess.run(BOOTLOADER + ["--help"], capture_output=True, timeout=30)
    assert helptext.returncode == 0 and b"--location" in helptext.stdout


def test_console_script_installed():
    import shutil

    script = shutil.which("xenpvnetboot", path=os.path.dirname(sys.executable) + os.pathsep
                          + os.environ.get("PATH", ""))
    assert script, "pip install . must install the xenpvnetboot command"
    proc = subprocess.run([script, "--version"], capture_output=True, timeout=30)
    assert proc.returncode == 0
