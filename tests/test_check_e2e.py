"""--check wired into real boots: what the administrator sees, and strict refusal."""

from __future__ import annotations

import gzip
import os

import pytest
from support import elfgen
from support.http_server import TestHTTPServer
from support.libxl import run_bootloader


@pytest.fixture(scope="module")
def kernels(tmp_path_factory):
    root = tmp_path_factory.mktemp("kernels")
    pv_only = elfgen.build_bzimage(elfgen.build_elf(elfgen.pv_notes()), "gzip")
    both = elfgen.build_bzimage(elfgen.build_elf(elfgen.pv_notes() + elfgen.pvh_notes()), "xz")
    files = {
        "pv-only": pv_only,
        "pv-pvh": both,
        "error.html": b"<!DOCTYPE html><html><head><title>404 Not Found</title></head></html>",
        "initrd.gz": gzip.compress(elfgen.initramfs()),
    }
    for name, data in files.items():
        (root / name).write_bytes(data)
    server = TestHTTPServer(str(root)).start()
    yield server
    server.stop()


def boot(server, workdir, kernel, *extra):
    """A boot whose only warnings are the check's (nothing here is signed)."""
    return run_bootloader(["--kernel", server.url(kernel), "--ramdisk", server.url("initrd.gz"),
                           "--verify=off", *extra], workdir)


def test_good_kernel_shows_details_with_verbose(kernels, workdir):
    run = boot(kernels, workdir, "pv-pvh", "--check=strict", "--guest-type=pvh", "-v")
    assert run.status == 0, run.console
    assert "PVH: yes" in run.console and "PV: yes" in run.console
    assert "warning" not in run.console


def test_html_page_warned_by_default(kernels, workdir):
    run = boot(kernels, workdir, "error.html")
    assert run.status == 0
    warnings = [line for line in run.console.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1
    assert kernels.url("error.html") in warnings[0] and "HTML" in warnings[0]


def test_html_page_refused_when_strict(kernels, workdir):
    run = boot(kernels, workdir, "error.html", "--check=strict")
    assert run.status == 1
    assert run.leftovers == [] and run.output_unchanged
    assert "not booting (--check=strict)" in run.error_lines[-1]


def test_pv_only_kernel_for_pvh_guest(kernels, workdir, tmp_path):
    run = boot(kernels, workdir, "pv-only", "--check=strict", "--guest-type=pvh")
    assert run.status == 1
    assert "PVH entry point" in run.error_lines[-1]
    second = tmp_path / "pv"
    second.mkdir()
    assert boot(kernels, str(second), "pv-only", "--check=strict", "--guest-type=pv").status == 0


def test_check_off_reads_nothing(kernels, workdir):
    run = boot(kernels, workdir, "error.html", "--check=off")
    assert run.status == 0
    assert "warning" not in run.console


def test_real_debian_pair_strict(debian_mirror, workdir):
    root, rel = debian_mirror
    server = TestHTTPServer(root).start()
    try:
        location = server.url("debian/dists/bookworm/main/installer-amd64")
        run = run_bootloader([f"--location={location}", "--check=strict", "-v"], workdir)
    finally:
        server.stop()
    assert run.status == 0, run.console
    assert "PV: yes" in run.console and "PVH: yes" in run.console
    assert "6.1.0" in run.console  # the version string of the Debian 12 kernel
    assert os.path.isdir(workdir)
