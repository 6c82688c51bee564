"""Layout detection end to end: the bootloader run exactly as libxl runs it."""

from __future__ import annotations

import os
import subprocess

import pytest
from support import env as test_env
from support.layout_trees import (BY_NAME, PXE, LayoutTree, TreeServer, build, build_all, old_treeinfo,
                                  productmd)
from support.libxl import BOOTLOADER, run_bootloader, sha256_file

BAD_SUM = LayoutTree(
    "bad-checksum",
    {".treeinfo": productmd("Fedora", "40", "x86_64", {"xen": PXE},
                            f"{PXE[0]} = sha256:{'0' * 64}")},
    [*PXE],
)
HOSTILE = LayoutTree(
    "hostile", {".treeinfo": old_treeinfo("Fedora", "40", "x86_64", {"xen": ("../secret", PXE[1])})},
    [*PXE],
)
E2E_TREES = [BY_NAME[name] for name in ("fedora40", "sles11", "alpine319-virt", "debian12-cd")]


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    path = build_all(str(tmp_path_factory.mktemp("e2e-layouts")), E2E_TREES + [BAD_SUM, HOSTILE])
    with open(os.path.join(path, "secret"), "w") as handle:
        handle.write("not for guests\n")
    return path


@pytest.fixture(scope="module")
def server(root):
    started = TreeServer(root).start()
    yield started
    started.stop()


def assert_boots(run, tree: LayoutTree):
    assert run.status == 0, run.console
    assert run.kernel == tree.content(tree.kernel)
    assert run.ramdisk == tree.content(tree.ramdisk)
    assert run.leftovers == []
    assert f"Found {tree.reason}" in run.console or tree.reason in run.console


def assert_fails(run, needle: str):
    assert run.status == 1, run.console
    assert run.output_unchanged and run.leftovers == []
    assert needle in run.console and "Traceback" not in run.console


def test_fedora_over_http_with_installer_source(server, workdir):
    tree = BY_NAME["fedora40"]
    location = server.url(tree.name) + "/"
    run = run_bootloader(["--location", location, "--arch=x86_64"], workdir, cmdline="console=hvc0")
    assert_boots(run, tree)
    assert run.args == f"console=hvc0 inst.repo={location}"


def test_user_source_argument_wins(server, workdir):
    tree = BY_NAME["sles11"]
    run = run_bootloader(["--location", server.url(tree.name), "--arch=x86_64"], workdir,
                         cmdline="install=ftp://elsewhere/sles")
    assert_boots(run, tree)
    assert run.args == "install=ftp://elsewhere/sles"


def test_no_install_args(server, workdir):
    tree = BY_NAME["sles11"]
    run = run_bootloader(["--location", server.url(tree.name), "--no-install-args", "--arch=amd64"],
                         workdir)
    assert_boots(run, tree)
    assert "args" not in run.items


def test_bad_checksum_fails_and_leaves_nothing(server, workdir):
    run = run_bootloader(["--location", server.url(BAD_SUM.name), "--arch=x86_64"], workdir)
    assert_fails(run, "SHA-256")


def test_hostile_treeinfo_is_refused(root, server, workdir):
    run = run_bootloader(["--location", server.url(HOSTILE.name), "--arch=x86_64"], workdir)
    assert_fails(run, "not a file inside the tree")
    run = run_bootloader(["--location", os.path.join(root, HOSTILE.name), "--arch=x86_64"], workdir)
    assert_fails(run, "not a file inside the tree")


def test_local_alpine_directory(root, workdir):
    tree = BY_NAME["alpine319-virt"]
    run = run_bootloader(["--location", os.path.join(root, tree.name)], workdir)
    assert_boots(run, tree)
    assert "args" not in run.items  # no installer source for a local directory


def test_real_debian_installer_from_a_mirror(debian_mirror, workdir):
    mirror, rel = debian_mirror
    kernel, initrd = test_env.debian_installer_files()
    started = TreeServer(mirror).start()
    try:
        location = started.url(rel.split("/current/")[0])
        run = run_bootloader(["--location", location, "--arch=x86_64"], workdir, keep_bytes=0)
    finally:
        started.stop()
    assert run.status == 0, run.console
    assert run.kernel_sha256 == sha256_file(kernel)
    assert run.ramdisk_sha256 == sha256_file(initrd)
    assert "Xen PV kernel in current/images/netboot/xen" in run.console


def test_debian_iso(root, workdir, tmp_path):
    xorriso = test_env.need_program("xorriso", "xorriso")
    tree = BY_NAME["debian12-cd"]
    iso = str(tmp_path / "debian.iso")
    subprocess.run([xorriso, "-as", "mkisofs", "-R", "-J", "-o", iso, os.path.join(root, tree.name)],
                   check=True, capture_output=True)
    run = run_bootloader(["--location", iso, "--arch=x86_64"], workdir)
    assert_boots(run, tree)


# -- --dry-run --------------------------------------------------------------------

def test_dry_run_as_libxl_runs_it(server, workdir):
    tree = BY_NAME["fedora40"]
    location = server.url(tree.name) + "/"
    server.requests.clear()
    run = run_bootloader(["--location", location, "-n", "--arch=x86_64"], workdir,
                         cmdline="console=hvc0", output_format="simple")
    assert run.status == 0, run.console
    assert run.output_unchanged and run.leftovers == []
    assert not any(method == "GET" and "pxeboot" in path for method, path, _ in server.requests)
    size = len(tree.content(tree.kernel))
    assert f"Found: {tree.reason}" in run.console
    assert f"Kernel: {location}{tree.kernel} ({size} bytes" in run.console
    assert f"Ramdisk: {location}{tree.ramdisk} (" in run.console
    assert f"Arguments: console=hvc0 inst.repo={location}" in run.console


def test_dry_run_creates_no_output_directory(server, tmp_path):
    outdir = tmp_path / "never-made"
    output = tmp_path / "result"
    tree = BY_NAME["sles11"]
    proc = subprocess.run(
        BOOTLOADER + ["--dry-run", f"--location={server.url(tree.name)}", "--arch=x86_64",
                      f"--output-directory={outdir}", f"--output={output}"],
        capture_output=True, text=True, timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    assert not outdir.exists() and not output.exists()
    assert "Kernel: " + server.url(tree.name) + "/boot/x86_64/vmlinuz-xen" in proc.stdout
    assert "Installer source: install=" in proc.stdout


def test_dry_run_failure_exits_1(tmp_path):
    empty = build(str(tmp_path), LayoutTree("nothing", {}, ["README"]))
    proc = subprocess.run(BOOTLOADER + ["-n", f"--location={empty}",
                                        f"--output-directory={tmp_path / 'out'}"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1
    assert "no kernel found" in proc.stderr and proc.stdout == ""
    assert not (tmp_path / "out").exists()


def test_unknown_arch_is_a_usage_error(tmp_path):
    proc = subprocess.run(BOOTLOADER + ["--arch=sparc64", "--location=/nonexistent"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and "sparc64" in proc.stderr
