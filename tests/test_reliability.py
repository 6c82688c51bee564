"""Faults a real server produces on request: every one ends in a correct boot or
a clean failure (exit 1, one line naming the URL, nothing left behind)."""

from __future__ import annotations

import hashlib
import os
import subprocess
import time

import pytest
from support.env import need_program, need_root
from support.http_server import TestHTTPServer
from support.libxl import run_bootloader
from support.trees import expected

K = "/OL6/images/pxeboot/vmlinuz"
R = "/OL6/images/pxeboot/initrd.img"


@pytest.fixture
def server(sample_root):
    srv = TestHTTPServer(sample_root).start()
    yield srv
    srv.stop()


def boot(server, workdir, *extra, **kw):
    return run_bootloader([f"--location={server.url('OL6')}", *extra], workdir, **kw)


def assert_ok(run):
    assert run.status == 0, run.console
    assert run.kernel == expected(K[1:])
    assert run.ramdisk == expected(R[1:])
    assert run.leftovers == []


def assert_clean_failure(run, *needles):
    assert run.status == 1, run.console
    assert run.leftovers == [] and run.output_unchanged
    errors = run.error_lines
    assert len(errors) == 1, run.console
    for needle in needles:
        assert needle in errors[0], errors[0]
    assert "Traceback" not in run.console


def gets(server, path):
    return [r for r in server.requests if r[0] == "GET" and r[1] == path]


def test_503_then_success(server, workdir):
    server.faults[R] = ["503", "503"]
    run = boot(server, workdir)
    assert_ok(run)
    assert "HTTP 503; retrying" in run.console
    # HEAD 503, HEAD 503, HEAD 200, GET 200
    assert [r[0] for r in server.requests if r[1] == R] == ["HEAD", "HEAD", "HEAD", "GET"]


def test_cut_then_resumed_with_range(server, workdir):
    server.faults[R] = ["cut"]
    run = boot(server, workdir)
    assert_ok(run)
    ranges = [r[2] for r in gets(server, R)]
    size = len(expected(R[1:]))
    assert ranges == [None, f"bytes={size // 2}-"]


def test_cut_then_server_without_range_restarts(server, workdir):
    server.faults[R] = ["cut", "norange"]
    run = boot(server, workdir)
    assert_ok(run)
    assert len(gets(server, R)) == 3  # cut, refused resume, full restart


def test_always_cut_fails_after_retries(server, workdir):
    server.faults[R] = "cut"
    run = boot(server, workdir, "--retries=2")
    assert_clean_failure(run, server.url("OL6/images/pxeboot/initrd.img"))
    assert len(gets(server, R)) == 3


def test_not_found_is_not_retried(server, workdir):
    run = boot(server, workdir, "--kernel=images/missing")
    assert_clean_failure(run, "404")
    assert len([r for r in server.requests if r[1] == "/OL6/images/missing"]) == 1


def test_stall_times_out(server, workdir):
    server.faults[R] = "stall"
    start = time.monotonic()
    run = boot(server, workdir, "--timeout=2", "--retries=0")
    assert time.monotonic() - start < 20
    assert_clean_failure(run, server.url("OL6/images/pxeboot/initrd.img"), "--timeout")


def test_endless_body_bounded_by_max_size(server, workdir):
    server.faults[R] = "endless"
    run = boot(server, workdir, "--max-size=1M", "--retries=0")
    assert_clean_failure(run, "--max-size")


def test_announced_size_over_limit_refused(server, workdir):
    run = boot(server, workdir, "--max-size=1K")
    assert_clean_failure(run, "--max-size")


@pytest.mark.parametrize("target, needle", [
    ("file:///etc/passwd", "redirect"),
    ("ftp://127.0.0.1/OL6/images/pxeboot/vmlinuz", "redirect"),
])
def test_redirect_to_other_scheme_refused(server, workdir, target, needle):
    server.faults[K] = ("redirect", target)
    run = boot(server, workdir)
    assert_clean_failure(run, needle)


def test_redirect_loop_refused(server, workdir):
    server.faults["/loop"] = ("redirect", server.url("loop"))
    run = run_bootloader([f"--kernel={server.url('loop')}"], workdir)
    assert_clean_failure(run, "redirects")


def test_redirect_within_http_followed(server, workdir):
    server.faults["/moved/vmlinuz"] = ("redirect", server.url(K))
    run = run_bootloader(["-v"], workdir, kernel=server.url("moved/vmlinuz"), ramdisk=server.url(R))
    assert_ok(run)
    assert f"{server.url('moved/vmlinuz')}: redirected to {server.url(K)}" in run.console


def test_credentials_not_sent_to_another_host(server, sample_root, workdir):
    other = TestHTTPServer(sample_root).start()
    try:
        # the same address under another name: libcurl treats it as another host
        target = other.url(K).replace("127.0.0.1", "localhost")
        server.faults["/secret/vmlinuz"] = ("redirect", target)
        location = server.url("secret").replace("http://", "http://guest:hunter2@")
        run = run_bootloader([f"--location={location}", "--kernel=vmlinuz",
                              f"--ramdisk={server.url(R)}"], workdir)
    finally:
        other.stop()
    assert run.status == 0, run.console
    assert run.kernel == expected(K[1:])
    assert any(auth and auth.startswith("Basic ") for auth in server.authorizations)
    assert other.requests and all(auth is None for auth in other.authorizations)
    assert "hunter2" not in run.console


def test_server_refusing_head(server, workdir):
    server.faults["/OL6/images/pxeboot/vmlinuz"] = ["refuse-head"]
    server.faults["/OL6/images/pxeboot/initrd.img"] = ["refuse-head"]
    run = boot(server, workdir)
    assert_ok(run)


def test_checksums(server, workdir, tmp_path):
    good_k = hashlib.sha256(expected(K[1:])).hexdigest()
    good_r = hashlib.sha256(expected(R[1:])).hexdigest()
    run = boot(server, workdir, f"--kernel-sha256={good_k}", f"--ramdisk-sha256=sha256:{good_r}")
    assert_ok(run)
    other = str(tmp_path / "second")
    os.mkdir(other)
    run = boot(server, other, f"--kernel-sha256={good_k}", f"--ramdisk-sha256={'0' * 64}")
    assert_clean_failure(run, "SHA-256", "initrd.img")


def test_disk_full_detected_before_download(server, tmp_path):
    need_root()
    need_program("mount", "mount")
    small = tmp_path / "small"
    small.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(small)], check=True)
    try:
        os.mkdir(small / "xen")
        big = tmp_path / "big"
        big.mkdir()
        (big / "vmlinuz").write_bytes(b"k" * 4096)
        (big / "initrd.img").write_bytes(b"r" * 200_000)
        srv = TestHTTPServer(str(big)).start()
        try:
            run = run_bootloader([], str(small / "xen"), kernel=srv.url("vmlinuz"),
                                 ramdisk=srv.url("initrd.img"))
        finally:
            srv.stop()
        assert_clean_failure(run, "--output-directory", "need")
        assert os.listdir(small / "xen") == []
    finally:
        subprocess.run(["umount", str(small)], check=True)


def test_disk_full_without_announced_size(server, tmp_path):
    need_root()
    small = tmp_path / "small"
    small.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(small)], check=True)
    try:
        os.mkdir(small / "xen")
        server.faults[R] = "endless"
        run = run_bootloader([f"--location={server.url('OL6')}", "--retries=0"], str(small / "xen"))
        assert_clean_failure(run, "cannot write")
        assert os.listdir(small / "xen") == []
    finally:
        subprocess.run(["umount", str(small)], check=True)


@pytest.fixture(scope="module")
def slow_server(tmp_path_factory):
    """A tree whose ramdisk (512 KiB) the server sends slowly: ~2.5 s."""
    root = tmp_path_factory.mktemp("slow")
    os.makedirs(root / "images/pxeboot")
    (root / "images/pxeboot/vmlinuz").write_bytes(os.urandom(64 * 1024))
    (root / "images/pxeboot/initrd.img").write_bytes(os.urandom(512 * 1024))
    srv = TestHTTPServer(str(root)).start()
    srv.faults["/images/pxeboot/initrd.img"] = "slow"
    yield srv
    srv.stop()


@pytest.mark.parametrize("delay", [0.0, 0.05, 0.15, 0.3, 0.5, 0.8, 1.2, 2.0])
def test_sigterm_at_any_moment_leaves_nothing(slow_server, workdir, delay):
    run = run_bootloader([f"--location={slow_server.url()}"], workdir, kill_after=delay,
                         timeout=20)
    assert run.status != 0
    assert run.leftovers == []
    assert run.output_unchanged
    assert "Traceback" not in run.console
