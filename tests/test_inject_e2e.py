"""``--initrd-inject`` through the whole boot, as libxl runs it.

The answer file lands at the root of the guest's initramfs (an appended
newc archive), the installer gets the arguments that make it use it, the
cached download stays the server's bytes, and restricted mode reads answer
files only from the administrator's directories.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import shutil
import subprocess
import tempfile

import pytest
from support.env import need_program, need_root
from support.http_server import TestHTTPServer
from support.layout_trees import productmd
from support.libxl import BOOTLOADER, run_bootloader

PRESEED = os.path.join(os.path.dirname(__file__), "data", "preseed-lang.cfg")
PXE = ("images/pxeboot/vmlinuz", "images/pxeboot/initrd.img")


def _newc(files):
    """A small newc archive of (name, data), for a fake installer initrd."""
    out = io.BytesIO()
    for ino, (name, data) in enumerate(list(files) + [("TRAILER!!!", b"")], start=1):
        raw = name.encode() + b"\0"
        mode = 0o100644 if data or name != "TRAILER!!!" else 0
        fields = (ino, mode, 0, 0, 1, 0, len(data), 0, 0, 0, 0, len(raw), 0)
        out.write(b"070701" + b"".join(b"%08X" % value for value in fields) + raw)
        out.write(b"\0" * (-(110 + len(raw)) % 4) + data + b"\0" * (-len(data) % 4))
    return out.getvalue()


@pytest.fixture(scope="module")
def fedora(tmp_path_factory):
    """A Fedora-like tree (.treeinfo) whose initrd is a gzip-compressed cpio."""
    root = tmp_path_factory.mktemp("fedora")
    tree = root / "fedora40"
    os.makedirs(tree / "images/pxeboot")
    (tree / PXE[0]).write_bytes(b"not really a kernel" * 50)
    (tree / PXE[1]).write_bytes(gzip.compress(_newc([("init", b"#!/bin/sh\n")])))
    (tree / ".treeinfo").write_text(productmd("Fedora", "40", "x86_64", {"x86_64": PXE}, {}))
    server = TestHTTPServer(str(root)).start()
    yield server, tree
    server.stop()


def _cpio_names(ramdisk: bytes, offset: int):
    need_program("cpio", "cpio")
    done = subprocess.run(["cpio", "-t", "--quiet"], input=ramdisk[offset:], capture_output=True,
                          check=True)
    return done.stdout.decode().split()


def _appended_at(ramdisk: bytes, original: bytes) -> int:
    assert ramdisk.startswith(original)
    offset = len(original)
    while ramdisk[offset:offset + 1] == b"\0":
        offset += 1
    return offset


def test_kickstart_lands_in_the_fedora_initrd(fedora, tmp_path, workdir):
    server, tree = fedora
    ks = tmp_path / "ks.cfg"
    ks.write_text("text\nreboot\n")
    run = run_bootloader([f"--location={server.url('fedora40')}", f"--initrd-inject={ks}",
                          "--check=off"], workdir, cmdline="console=hvc0")
    assert run.status == 0, run.console
    original = (tree / PXE[1]).read_bytes()
    at = _appended_at(run.ramdisk, original)
    assert at % 4 == 0
    assert _cpio_names(run.ramdisk, at) == ["ks.cfg"]
    args = run.args.split()
    assert "inst.ks=file:/ks.cfg" in args and f"inst.repo={server.url('fedora40/')}" in args
    assert args[0] == "console=hvc0"


MIRROR = "debian/dists/bookworm/main/installer-amd64"


def test_preseed_into_the_real_debian_initrd(debian_mirror, tmp_path, workdir):
    root, rel = debian_mirror
    server = TestHTTPServer(root).start()
    preseed = tmp_path / "preseed.cfg"
    shutil.copy(PRESEED, preseed)
    try:
        run = run_bootloader([f"--location={server.url(MIRROR)}", f"--initrd-inject={preseed}",
                              "--verify=off"], workdir, cmdline="console=hvc0", keep_bytes=1 << 30)
    finally:
        server.stop()
    assert run.status == 0, run.console
    original = open(os.path.join(root, rel, "initrd.gz"), "rb").read()
    at = _appended_at(run.ramdisk, original)
    assert _cpio_names(run.ramdisk, at) == ["preseed.cfg"]
    assert run.args.split() == ["console=hvc0", "auto=true", "priority=critical"]
    assert "warning" not in run.console  # the check read the result and found it sound


def test_user_priority_is_kept(debian_mirror, tmp_path):
    root, rel = debian_mirror
    server = TestHTTPServer(root).start()
    preseed = tmp_path / "preseed.cfg"
    shutil.copy(PRESEED, preseed)
    try:
        proc = subprocess.run(BOOTLOADER + [f"--location={server.url(MIRROR)}", "-n",
                                            f"--initrd-inject={preseed}", "--args=priority=high"],
                              capture_output=True, text=True, timeout=60)
    finally:
        server.stop()
    assert proc.returncode == 0, proc.stderr
    assert "priority=high auto=true" in proc.stdout and "priority=critical" not in proc.stdout
    assert "preseed.cfg" in proc.stdout


def test_cache_entry_stays_the_servers_file(fedora, tmp_path):
    from xenpvnetboot.cachedir import init_cache

    server, tree = fedora
    cache = tmp_path / "cache"
    init_cache(str(cache), 1 << 30)
    ks = tmp_path / "ks.cfg"
    ks.write_text("text\n")
    original = (tree / PXE[1]).read_bytes()
    for name in ("one", "two"):
        work = tmp_path / name
        work.mkdir()
        run = run_bootloader([f"--location={server.url('fedora40')}", f"--initrd-inject={ks}",
                              f"--cache-dir={cache}", "--check=off"], str(work))
        assert run.status == 0, run.console
        assert _cpio_names(run.ramdisk, _appended_at(run.ramdisk, original)) == ["ks.cfg"]
    assert "Using the cached ramdisk" in run.console
    cached = []
    for dirpath, _, names in os.walk(cache):
        cached += [open(os.path.join(dirpath, n), "rb").read() for n in names if n.endswith(".data")]
    assert hashlib.sha256(original).digest() in {hashlib.sha256(data).digest() for data in cached}


@pytest.mark.parametrize("bad, why", [
    ("dir/", "names no file"), ("huge", "at most 1.0 MiB"), ("link", "symbolic link"),
    ("fifo", "FIFO"),
])
def test_bad_answer_files_refused_before_any_request(fedora, tmp_path, workdir, bad, why):
    server, _ = fedora
    target = tmp_path / bad.rstrip("/")
    if bad == "huge":
        target.write_bytes(b"x" * (2 << 20))
    elif bad == "link":
        os.symlink("/etc/shadow", target)
    elif bad == "fifo":
        os.mkfifo(target)
    else:
        target.mkdir()
    before = len(server.requests)
    path = str(target) + ("/" if bad.endswith("/") else "")
    run = run_bootloader([f"--location={server.url('fedora40')}", f"--initrd-inject={path}"],
                         workdir)
    assert run.status == 2, run.console
    assert why in run.console and "--initrd-inject" in run.console
    assert len(server.requests) == before
    assert run.leftovers == [] and run.output_unchanged


def test_no_ramdisk_no_injection(fedora, tmp_path, workdir):
    server, _ = fedora
    ks = tmp_path / "ks.cfg"
    ks.write_text("text\n")
    run = run_bootloader([f"--location={server.url('fedora40')}", f"--initrd-inject={ks}"],
                         workdir, kernel=server.url("fedora40/images/pxeboot/vmlinuz"),
                         ramdisk=None)
    assert run.status in (0, 2), run.console
    if run.status == 2:
        assert "needs a ramdisk" in run.console


@pytest.fixture
def answers_dir(monkeypatch):
    """The administrator's answer-file directory for restricted mode."""
    path = tempfile.mkdtemp(prefix="xenpvnetboot-answers.", dir="/tmp")
    os.chmod(path, 0o700)
    yield path
    shutil.rmtree(path)


def test_restricted_mode_reads_root_only_answers_from_the_admins_directory(fedora, answers_dir,
                                                                            workdir):
    need_root()
    server, tree = fedora
    ks = os.path.join(answers_dir, "ks.cfg")
    with open(ks, "w") as handle:
        handle.write("text\n")
    os.chmod(ks, 0o600)
    run = run_bootloader([f"--location={server.url('fedora40')}", f"--initrd-inject={ks}",
                          "--check=off"], workdir, runas=40123,
                         env={"XENPVNETBOOT_INJECT_DIRS": answers_dir})
    assert run.status == 0, run.console
    original = (tree / PXE[1]).read_bytes()
    assert _cpio_names(run.ramdisk, _appended_at(run.ramdisk, original)) == ["ks.cfg"]


def test_restricted_mode_refuses_answers_elsewhere(fedora, answers_dir, tmp_path, workdir):
    """A guest owner cannot copy a root-only file (say /etc/shadow) into the guest."""
    need_root()
    server, _ = fedora
    secret = tmp_path / "shadow"
    secret.write_text("root:$6$secret\n")
    os.chmod(secret, 0o600)
    before = len(server.requests)
    run = run_bootloader([f"--location={server.url('fedora40')}", f"--initrd-inject={secret}"],
                         workdir, runas=40123, env={"XENPVNETBOOT_INJECT_DIRS": answers_dir})
    assert run.status == 2, run.console
    assert "--initrd-inject" in run.console and str(secret) in run.console
    assert "secret" not in run.console.replace(str(secret), "")
    assert len(server.requests) == before
