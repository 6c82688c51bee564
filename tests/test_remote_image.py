"""An ISO or disk image on an http or ftp server, read in place by range
requests: a few requests and little more than the two files' bytes."""

from __future__ import annotations

import os
import shutil

import pytest
from support import env as test_env
from support.env import need_program
from support.http_server import TestHTTPServer
from support.images import build_ext, build_iso
from support.libxl import run_bootloader, sha256_file


@pytest.fixture(scope="module")
def debian_iso(tmp_path_factory):
    """A Debian-media-like ISO holding the real installer pair and 1,000 other files."""
    need_program("xorriso", "xorriso")
    kernel, initrd = test_env.debian_installer_files()
    root = tmp_path_factory.mktemp("media")
    tree = root / "tree"
    os.makedirs(tree / "install.amd/xen")
    os.makedirs(tree / ".disk")
    (tree / ".disk/info").write_text("Debian GNU/Linux 12 \"Bookworm\" - Official amd64 NETINST\n")
    shutil.copy(kernel, tree / "install.amd/xen/vmlinuz")
    shutil.copy(initrd, tree / "install.amd/xen/initrd.gz")
    for index in range(1000):
        sub = tree / "pool" / f"d{index % 20}"
        sub.mkdir(parents=True, exist_ok=True)
        (sub / f"package-{index}.deb").write_bytes(os.urandom(2048))
    iso = build_iso(str(tree), str(root / "debian-12-amd64-netinst.iso"), "rockridge")
    return iso, kernel, initrd


@pytest.fixture
def media_server(debian_iso):
    server = TestHTTPServer(os.path.dirname(debian_iso[0])).start()
    yield server
    server.stop()


def test_debian_iso_over_http_in_place(debian_iso, media_server, workdir):
    iso, kernel, initrd = debian_iso
    run = run_bootloader([f"--location={media_server.url(os.path.basename(iso))}"], workdir)
    assert run.status == 0, run.console
    assert run.kernel_sha256 == sha256_file(kernel)
    assert run.ramdisk_sha256 == sha256_file(initrd)
    assert run.leftovers == []
    requests = [r for r in media_server.requests if r[0] == "GET"]
    wanted = os.path.getsize(kernel) + os.path.getsize(initrd)
    assert len(requests) <= 10, requests
    assert media_server.bytes_sent <= wanted + (1 << 20), (media_server.bytes_sent, requests)
    assert all(r[2] and r[2].startswith("bytes=") for r in requests)
    assert os.path.getsize(iso) > wanted  # the image was not downloaded whole


def test_kernel_path_inside_a_remote_image(debian_iso, media_server, workdir):
    iso, kernel, _ = debian_iso
    run = run_bootloader([f"--location={media_server.url(os.path.basename(iso))}"], workdir,
                         kernel="/install.amd/xen/vmlinuz", ramdisk="install.amd/xen/initrd.gz")
    assert run.status == 0, run.console
    assert run.kernel_sha256 == sha256_file(kernel)


def test_server_without_ranges_is_a_clear_error(debian_iso, workdir):
    iso, _, _ = debian_iso
    server = TestHTTPServer(os.path.dirname(iso)).start()
    server.faults["/" + os.path.basename(iso)] = "norange"
    try:
        run = run_bootloader([f"--location={server.url(os.path.basename(iso))}"], workdir,
                             timeout=60)
    finally:
        server.stop()
    assert run.status == 1
    assert "range requests" in run.error_lines[-1]
    assert server.url(os.path.basename(iso)) in run.error_lines[-1]
    assert server.bytes_sent < (4 << 20)  # it gave up at once, no full download
    assert run.leftovers == []


def test_ext4_image_over_http(tmp_path, workdir):
    need_program("mke2fs", "e2fsprogs")
    tree = tmp_path / "tree"
    os.makedirs(tree / "boot")
    (tree / "boot/vmlinuz-6.1.0-9-amd64").write_bytes(os.urandom(300_000))
    (tree / "boot/initrd.img-6.1.0-9-amd64").write_bytes(os.urandom(700_000))
    image = build_ext(str(tree), str(tmp_path / "disk.img"), "ext4", "8M")
    server = TestHTTPServer(str(tmp_path)).start()
    try:
        run = run_bootloader([f"--location={server.url('disk.img')}",
                              "--kernel=/boot/vmlinuz-6.1.0-9-amd64",
                              "--ramdisk=/boot/initrd.img-6.1.0-9-amd64"], workdir)
    finally:
        server.stop()
    assert run.status == 0, run.console
    assert run.kernel == (tree / "boot/vmlinuz-6.1.0-9-amd64").read_bytes()
    assert run.ramdisk_sha256 == sha256_file(str(tree / "boot/initrd.img-6.1.0-9-amd64"))
    assert os.path.getsize(image) == 8 << 20


def test_iso_over_ftp_with_rest(debian_iso, workdir):
    from support.ftp_server import TestFTPServer

    iso, kernel, initrd = debian_iso
    server = TestFTPServer(os.path.dirname(iso)).start()
    try:
        run = run_bootloader([f"--location={server.url(os.path.basename(iso))}"], workdir)
    finally:
        server.stop()
    assert run.status == 0, run.console
    assert run.kernel_sha256 == sha256_file(kernel)
    assert run.ramdisk_sha256 == sha256_file(initrd)


def test_a_206_answer_for_other_bytes_is_refused(debian_iso, media_server, workdir):
    """A server (or a cache in between) answering a range request with a
    different range must not have its bytes taken for the ones asked for."""
    iso, _, _ = debian_iso
    media_server.faults["/" + os.path.basename(iso)] = "shifted-range"
    run = run_bootloader([f"--location={media_server.url(os.path.basename(iso))}"], workdir)
    assert run.status == 1, run.console
    assert "range requests with the bytes asked for" in run.console
    assert run.leftovers == [] and run.output_unchanged
