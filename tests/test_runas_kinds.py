"""Every kind of location boots under ``--runas`` where the dropped uid cannot
read the Python installation (on these machines it lives below /root, mode
0700): whatever a transport or image reader imports lazily must have been
loaded before the drop, and no traceback ever reaches the console.

NFS locations are covered in test_nfs.py, TFTP in test_tftp_runas.py.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile

import pytest
from support.env import need_program, need_root
from support.http_server import TestHTTPServer
from support.libxl import run_bootloader

UID = 40123
KERNEL = b"kernel bytes" * 100
INITRD = b"initrd bytes" * 300


@pytest.fixture(scope="module", autouse=True)
def _python_unreadable():
    need_root()
    probe = subprocess.run(
        [sys.executable, "-c",
         f"import os; os.setgid({UID}); os.setuid({UID}); open(os.__file__).close()"],
        capture_output=True)
    if probe.returncode == 0:
        pytest.skip(f"uid {UID} can read the Python installation here; nothing to show")


@pytest.fixture(scope="module")
def media():
    """A public directory with a tree and images of it (the uid can reach it)."""
    base = tempfile.mkdtemp(prefix="xenpvnetboot-kinds.", dir="/tmp")
    os.chmod(base, 0o755)
    tree = os.path.join(base, "tree")
    os.makedirs(os.path.join(tree, "images/pxeboot"))
    with open(os.path.join(tree, "images/pxeboot/vmlinuz"), "wb") as handle:
        handle.write(KERNEL)
    with open(os.path.join(tree, "images/pxeboot/initrd.img"), "wb") as handle:
        handle.write(INITRD)
    for dirpath, dirnames, filenames in os.walk(base):
        for name in dirnames:
            os.chmod(os.path.join(dirpath, name), 0o755)
        for name in filenames:
            os.chmod(os.path.join(dirpath, name), 0o644)
    yield base
    shutil.rmtree(base)


def _image(media, kind):
    from support.images import build_ext, build_fat, build_iso, build_squashfs

    tree = os.path.join(media, "tree")
    out = os.path.join(media, f"media-{kind}")
    if os.path.exists(out):
        return out
    if kind in ("rockridge", "joliet"):
        need_program("xorriso", "xorriso")
        build_iso(tree, out, kind)
    elif kind == "ext4":
        need_program("mke2fs", "e2fsprogs")
        build_ext(tree, out, "ext4", "4M")
    elif kind == "fat":
        need_program("mkfs.vfat", "dosfstools")
        build_fat(tree, out, 12, 1440)
    elif kind.startswith("squashfs-"):
        need_program("mksquashfs", "squashfs-tools")
        build_squashfs(tree, out, kind.split("-", 1)[1])
    os.chmod(out, 0o600)  # root's: readable only because it is libxl's disk
    return out


@pytest.fixture(scope="module")
def server(media):
    srv = TestHTTPServer(media).start()
    yield srv
    srv.stop()


def _check(run):
    assert run.status == 0, run.console
    assert "Traceback" not in run.console
    assert run.console.strip() == ""  # --quiet, as libxl passes it
    assert run.kernel == KERNEL[:len(run.kernel)] and run.ramdisk == INITRD[:len(run.ramdisk)]
    assert run.leftovers == []


def test_local_directory(media, workdir):
    _check(run_bootloader([f"--location={media}/tree"], workdir, runas=UID))


def test_file_url(media, workdir):
    _check(run_bootloader([f"--location=file://{media}/tree"], workdir, runas=UID))


@pytest.mark.parametrize("kind", ["rockridge", "joliet", "ext4", "fat", "squashfs-gzip",
                                  "squashfs-xz", "squashfs-zstd"])
def test_local_image_that_is_the_disk(media, kind, workdir):
    image = _image(media, kind)
    _check(run_bootloader([f"--location={image}"], workdir, runas=UID, disk=image))


def test_http_tree(server, workdir):
    _check(run_bootloader([f"--location={server.url('tree')}"], workdir, runas=UID))


@pytest.mark.parametrize("kind", ["rockridge", "ext4"])
def test_image_over_http(media, server, kind, workdir):
    image = _image(media, kind)
    os.chmod(image, 0o644)  # the web server reads it; the name tells the reader nothing
    shutil.copy(image, image + ".iso")
    _check(run_bootloader([f"--location={server.url(os.path.basename(image) + '.iso')}"],
                          workdir, runas=UID))


def test_full_urls_without_location(server, workdir):
    _check(run_bootloader([], workdir, runas=UID,
                          kernel=server.url("tree/images/pxeboot/vmlinuz"),
                          ramdisk=server.url("tree/images/pxeboot/initrd.img")))


def test_https_with_private_ca(https_server, ca_file, workdir):
    run = run_bootloader([f"--location={https_server.url('OL6')}", f"--ca-cert={ca_file}"],
                         workdir, runas=UID)
    assert run.status == 0 and "Traceback" not in run.console, run.console


@pytest.fixture
def own_ftp_server(sample_root):
    """An FTP server of this test's own: the suite's shared one has served many
    boots that were killed half-way, whose sessions it still holds."""
    pytest.importorskip("pyftpdlib")
    from support.ftp_server import TestFTPServer

    server = TestFTPServer(sample_root).start()
    yield server
    server.stop()


def test_ftp_with_login(own_ftp_server, workdir):
    run = run_bootloader([f"--location={own_ftp_server.url('OL6', auth=True)}"], workdir,
                         runas=UID)
    assert run.status == 0 and "Traceback" not in run.console, run.console


@pytest.mark.parametrize("check", ["strict", "warn"])
def test_check_of_the_real_debian_pair(media, server, check, workdir):
    """The checker's decompressors (xz kernel, gzip initrd) load before the drop."""
    from support.env import debian_installer_files

    directory = os.path.join(media, "debian")
    if not os.path.isdir(directory):
        os.makedirs(directory)
        for source in debian_installer_files():
            target = os.path.join(directory, os.path.basename(source))
            shutil.copy(source, target)
            os.chmod(target, 0o644)
        os.chmod(directory, 0o755)
    run = run_bootloader([f"--location={server.url('debian')}", f"--check={check}"], workdir,
                         runas=UID, kernel="linux", ramdisk="initrd.gz")
    assert run.status == 0, run.console
    assert "Traceback" not in run.console and run.console.strip() == ""


def test_dry_run(server):
    from support.libxl import BOOTLOADER

    proc = subprocess.run(BOOTLOADER + [f"--location={server.url('tree')}", "-n", "--runas",
                                        str(UID)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert "images/pxeboot/vmlinuz" in proc.stdout and "Traceback" not in proc.stderr
