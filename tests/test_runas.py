"""--runas (libxl's bootloader_restrict): the work runs as an unprivileged uid.

These run as root for real: the child drops to a uid, and the tests show what
it can no longer do, and that the boot still succeeds.
"""

from __future__ import annotations

import os
import resource
import stat

import pytest
from support.env import need_root
from support.http_server import TestHTTPServer
from support.libxl import run_bootloader
from support.dropped import run_dropped
from support.trees import expected

from xenpvnetboot import sandbox

UID = 40123  # no passwd entry: its group is the same number
K = "OL6/images/pxeboot/vmlinuz"
R = "OL6/images/pxeboot/initrd.img"


@pytest.fixture(autouse=True)
def _root():
    need_root()


def test_boot_over_http_as_unprivileged_uid(http_server, workdir):
    run = run_bootloader([f"--location={http_server.url('OL6')}"], workdir, runas=UID,
                         cmdline="console=hvc0")
    assert run.status == 0, run.console
    assert run.kernel == expected(K) and run.ramdisk == expected(R)
    assert run.args == "console=hvc0"
    assert run.kernel_mode == 0o600
    assert run.leftovers == []
    assert run.console.strip() == ""  # libxl passes --quiet with --runas


def test_named_user_nobody(http_server, workdir):
    run = run_bootloader([f"--location={http_server.url('OL6')}"], workdir, runas=65534)
    assert run.status == 0, run.console


def test_root_only_file_cannot_be_read(public_dir, tmp_path, workdir):
    tree = public_dir / "tree"
    os.makedirs(tree / "images/pxeboot")
    (tree / "images/pxeboot/vmlinuz").write_bytes(b"kernel")
    (tree / "images/pxeboot/initrd.img").write_bytes(b"initrd")
    os.chmod(tree / "images/pxeboot/initrd.img", 0o600)
    run = run_bootloader([f"--location={tree}"], workdir, runas=UID,
                         kernel="images/pxeboot/vmlinuz", ramdisk="images/pxeboot/initrd.img")
    assert run.status == 1
    assert "Permission denied" in run.console
    assert "initrd.img" in run.console
    assert run.leftovers == [] and run.output_unchanged
    # and as root the same boot works
    other = tmp_path / "root-run"
    other.mkdir()
    run = run_bootloader([f"--location={tree}"], str(other),
                         kernel="images/pxeboot/vmlinuz", ramdisk="images/pxeboot/initrd.img")
    assert run.status == 0 and run.ramdisk == b"initrd"


def test_private_ca_readable_by_root_only(https_server, ca_file, tmp_path, workdir):
    private = tmp_path / "private"
    private.mkdir(mode=0o700)
    ca = private / "ca.pem"
    ca.write_bytes(open(ca_file, "rb").read())
    os.chmod(ca, 0o600)
    run = run_bootloader([f"--location={https_server.url('OL6')}", f"--ca-cert={ca}"],
                         workdir, runas=UID)
    assert run.status == 0, run.console


def _attempt(action):
    try:
        action()
    except OSError as exc:
        return exc.errno
    return 0


def test_dropped_child_cannot_read_or_write(tmp_path):
    secret = tmp_path / "secret"
    secret.write_bytes(b"root only")
    os.chmod(secret, 0o600)
    open_dir = tmp_path / "world-writable"
    open_dir.mkdir()
    os.chmod(open_dir, 0o1777)

    def check():
        return {
            "uid": [os.getuid(), os.geteuid()],
            "gid": [os.getgid(), os.getegid()],
            "groups": os.getgroups(),
            "read_secret": _attempt(lambda: open(secret, "rb").read()),
            "write_root_dir": _attempt(lambda: open(tmp_path / "new", "wb").close()),
            "write_world_dir": _attempt(lambda: open(open_dir / "new", "wb").close()),
            "write_tmp": _attempt(lambda: open(f"/tmp/xenpvnetboot-probe-{os.getpid()}", "wb").close()),
            "core": resource.getrlimit(resource.RLIMIT_CORE),
            "fsize": resource.getrlimit(resource.RLIMIT_FSIZE),
            "as": resource.getrlimit(resource.RLIMIT_AS)[0],
            "cpu": resource.getrlimit(resource.RLIMIT_CPU)[0],
            "fork": _attempt(lambda: os.waitpid(os.fork(), 0) if True else None),
            "setuid_back": _attempt(lambda: os.setuid(0)),
        }

    result = run_dropped(UID, check)
    assert result["uid"] == [UID, UID]
    assert result["gid"] == [UID, UID]
    assert result["groups"] == [UID]
    assert result["read_secret"] != 0
    assert result["write_root_dir"] != 0
    assert result["setuid_back"] != 0
    assert result["core"] == [0, 0]
    assert result["fsize"] == [1 << 20, 1 << 20]
    assert result["as"] == sandbox.ADDRESS_SPACE
    assert result["cpu"] == sandbox.CPU_SECONDS
    assert result["fork"] != 0, "the child must not be able to start processes"
    if sandbox.landlock_abi() >= 1:
        assert result["write_world_dir"] != 0
        assert result["write_tmp"] != 0
    assert not os.listdir(open_dir)


def test_sigterm_kills_the_child_too(tmp_path, workdir):
    root = tmp_path / "slow"
    os.makedirs(root / "images/pxeboot")
    (root / "images/pxeboot/vmlinuz").write_bytes(os.urandom(8192))
    (root / "images/pxeboot/initrd.img").write_bytes(os.urandom(512 * 1024))
    server = TestHTTPServer(str(root)).start()
    server.faults["/images/pxeboot/initrd.img"] = "slow"
    try:
        run = run_bootloader([f"--location={server.url()}"], workdir, runas=UID,
                             kill_after=1.0, timeout=20)
    finally:
        server.stop()
    assert run.status == 1
    assert run.leftovers == [] and run.output_unchanged
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                st = os.stat(f"/proc/{entry}")
            except FileNotFoundError:
                continue
            assert st.st_uid != UID, f"process {entry} of uid {UID} survived"
    assert stat.S_ISDIR(os.stat(workdir).st_mode)


def test_retries_stop_before_libxl_kills_a_restricted_bootloader(sample_root, workdir):
    import time

    server = TestHTTPServer(sample_root).start()
    server.faults["/OL6/images/pxeboot/vmlinuz"] = "503"
    try:
        start = time.monotonic()
        run = run_bootloader([f"--location={server.url('OL6')}", "--retries=20"], workdir,
                             runas=UID, kernel="images/pxeboot/vmlinuz",
                             env={"LIBXL_BOOTLOADER_TIMEOUT": "14"}, timeout=60)
        elapsed = time.monotonic() - start
    finally:
        server.stop()
    assert run.status == 1
    assert "no time left to retry before libxl's timeout" in run.console
    assert server.url("OL6/images/pxeboot/vmlinuz") in run.console
    assert elapsed < 14
    assert run.leftovers == []


@pytest.mark.parametrize("flavour", ["rockridge", "joliet", "ext4"])
def test_root_only_image_read_only_when_it_is_the_disk(flavour, tmp_path, workdir):
    """A root-only image is opened as root only when it is the guest's disk,
    which libxl passes as the last argument (pygrub's rule): the guest gets
    that file anyway.  Named by the configuration alone, it is opened with
    the unprivileged user's rights, and refused.  The reader it needs was
    loaded while the code was still readable."""
    from support.env import need_program
    from support.images import build_ext, build_iso

    need_program("xorriso", "xorriso")
    need_program("mke2fs", "e2fsprogs")
    tree = tmp_path / "media"
    os.makedirs(tree / "images/pxeboot")
    (tree / "images/pxeboot/vmlinuz").write_bytes(b"iso kernel" * 100)
    (tree / "images/pxeboot/initrd.img").write_bytes(b"iso initrd" * 300)
    private = tmp_path / "private"
    private.mkdir(mode=0o700)
    if flavour == "ext4":
        iso = build_ext(str(tree), str(private / "media.img"), "ext4", "4M")
    else:
        iso = build_iso(str(tree), str(private / "media.iso"), flavour)
    os.chmod(iso, 0o600)
    run = run_bootloader([f"--location={iso}"], workdir, runas=UID, disk=iso)
    assert run.status == 0, run.console
    assert run.kernel == b"iso kernel" * 100 and run.ramdisk == b"iso initrd" * 300
    other = tmp_path / "not-the-disk"
    other.mkdir()
    run = run_bootloader([f"--location={iso}"], str(other), runas=UID)
    assert run.status == 1, run.console
    assert "Permission denied" in run.console and iso in run.console
    assert run.leftovers == [] and run.output_unchanged


def test_free_space_checked_by_the_child(http_server, tmp_path):
    import subprocess

    small = tmp_path / "small"
    small.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4k", "tmpfs", str(small)], check=True)
    try:
        os.mkdir(small / "xen")
        run = run_bootloader([f"--location={http_server.url('OL6')}"], str(small / "xen"),
                             runas=UID)
        assert run.status == 1
        assert "--output-directory" in run.console
        assert os.listdir(small / "xen") == []
    finally:
        subprocess.run(["umount", str(small)], check=True)
