"""Configurations that booted with the original xenpvnetboot keep booting.

The original searched its six default paths for whichever of the kernel and
ramdisk was not named, each on its own.  Each shape of configuration is run
here exactly as libxl runs it (``kernel =`` and ``ramdisk =`` become
``--kernel=``/``--ramdisk=`` before ``bootloader_args``), and both the files
booted and the warning that explains a guess are checked.
"""

from __future__ import annotations

import os

import pytest
from support.layout_trees import BY_NAME, PXE, LayoutTree, TreeServer, build_all
from support.libxl import run_bootloader

XEN = ("images/xen/vmlinuz", "images/xen/initrd.img")
ISOLINUX_RAMDISK = "isolinux/initrd.img"
#: Trees of the shapes old configurations point at; decoys included.
TREES = [
    BY_NAME["debian-mirror"],
    BY_NAME["ol6-no-marker"],
    LayoutTree("old-kernel-only", {}, [XEN[0], "README"]),
    LayoutTree("old-mixed", {}, [XEN[0], ISOLINUX_RAMDISK]),
    LayoutTree("old-mixed-and-complete", {}, [XEN[0], ISOLINUX_RAMDISK, *PXE]),
    LayoutTree("own-kernels", {}, ["boot/vmlinuz-6.1.0-test", "boot/initrd.img-6.1.0-test",
                                   "boot/initrd.img-6.1.0-other", "mine/bzImage"]),
    LayoutTree("custom-ramdisk", {}, [*PXE, "custom/answers.cpio"]),
    LayoutTree("empty", {}, ["README"]),
]
BY = {tree.name: tree for tree in TREES}
#: Keep the console to what layout selection says.
QUIET_OTHERS = ["--check=off", "--verify=off"]


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    return build_all(str(tmp_path_factory.mktemp("dropin")), TREES)


@pytest.fixture(scope="module")
def server(root):
    started = TreeServer(root).start()
    yield started
    started.stop()


def boot(server, tree_name, workdir, kernel=None, ramdisk=None, extra=(), location=True):
    args = ([f"--location={server.url(tree_name)}/"] if location else []) + QUIET_OTHERS
    return run_bootloader(args + list(extra), workdir, kernel=kernel, ramdisk=ramdisk)


def warnings(run):
    return [line for line in run.console.splitlines() if line.startswith("warning: ")]


def booted(run, tree_name, kernel, ramdisk):
    """The run succeeded with exactly these files of *tree_name* (ramdisk None: none)."""
    tree = BY[tree_name]
    assert run.status == 0, run.console
    assert run.kernel == tree.content(kernel), run.console
    if ramdisk is None:
        assert "ramdisk" not in run.items, run.console
    else:
        assert run.ramdisk == tree.content(ramdisk), run.console
    assert run.leftovers == []


# -- a ramdisk without a kernel (item 1) ------------------------------------------------

def test_ramdisk_alone_takes_its_partner_from_the_table(server, workdir):
    ramdisk = "current/images/netboot/xen/initrd.gz"
    run = boot(server, "debian-mirror", workdir, ramdisk=ramdisk)
    booted(run, "debian-mirror", "current/images/netboot/xen/vmlinuz", ramdisk)
    [warning] = warnings(run)
    assert "no kernel named: taking " + server.url("debian-mirror/current/images/netboot/xen/vmlinuz") in warning
    assert "pairs with it in the layout table" in warning


def test_ramdisk_alone_as_a_full_url_without_location(server, workdir):
    ramdisk = server.url("ol6-no-marker/" + PXE[1])
    run = boot(server, "ol6-no-marker", workdir, ramdisk=ramdisk, location=False)
    booted(run, "ol6-no-marker", *PXE)
    [warning] = warnings(run)
    assert server.url("ol6-no-marker/" + PXE[0]) in warning


def test_unknown_ramdisk_alone_takes_the_first_kernel_of_the_original_list(server, workdir):
    run = boot(server, "custom-ramdisk", workdir, ramdisk="custom/answers.cpio")
    booted(run, "custom-ramdisk", PXE[0], "custom/answers.cpio")
    [warning] = warnings(run)
    assert server.url("custom-ramdisk/" + PXE[0]) in warning
    assert "first kernel of the original xenpvnetboot's list" in warning


def test_ramdisk_alone_without_any_kernel_fails_in_one_line(server, workdir):
    run = boot(server, "empty", workdir, ramdisk="README")
    assert run.status == 1 and run.output_unchanged and run.leftovers == []
    assert "no kernel found: " in run.console and "Traceback" not in run.console


# -- a kernel without a ramdisk (item 2) ----------------------------------------------

def test_kernel_of_a_known_pair_brings_its_ramdisk_silently(server, workdir):
    run = boot(server, "ol6-no-marker", workdir, kernel=PXE[0])
    booted(run, "ol6-no-marker", *PXE)
    assert warnings(run) == []


def test_kernel_as_a_full_url_brings_its_ramdisk(server, workdir):
    run = boot(server, "ol6-no-marker", workdir, kernel=server.url("ol6-no-marker/" + PXE[0]),
               location=False)
    booted(run, "ol6-no-marker", *PXE)
    assert warnings(run) == []


def test_kernel_takes_the_ramdisk_named_after_it_in_its_directory(server, workdir):
    run = boot(server, "own-kernels", workdir, kernel="boot/vmlinuz-6.1.0-test")
    booted(run, "own-kernels", "boot/vmlinuz-6.1.0-test", "boot/initrd.img-6.1.0-test")
    [warning] = warnings(run)
    assert "initrd.img-6.1.0-test, found next to the kernel" in warning and "--no-ramdisk" in warning


def test_kernel_without_a_partner_takes_the_first_ramdisk_of_the_original_list(server, workdir):
    run = boot(server, "old-mixed", workdir, kernel=XEN[0])
    booted(run, "old-mixed", XEN[0], ISOLINUX_RAMDISK)
    [warning] = warnings(run)
    assert server.url("old-mixed/" + ISOLINUX_RAMDISK) in warning
    assert "first ramdisk of the original xenpvnetboot's list" in warning


def test_kernel_without_any_ramdisk_boots_alone_with_a_warning(server, workdir):
    run = boot(server, "own-kernels", workdir, kernel="mine/bzImage")
    booted(run, "own-kernels", "mine/bzImage", None)
    [warning] = warnings(run)
    assert "booting the kernel alone" in warning and server.url("own-kernels/mine/bzImage") in warning


@pytest.mark.parametrize("how", ["empty --ramdisk=", "--no-ramdisk"])
def test_kernel_alone_on_purpose(server, workdir, how):
    if how == "--no-ramdisk":
        run = boot(server, "ol6-no-marker", workdir, kernel=PXE[0], extra=["--no-ramdisk"])
    else:
        run = boot(server, "ol6-no-marker", workdir, kernel=PXE[0], ramdisk="")
    booted(run, "ol6-no-marker", PXE[0], None)
    assert warnings(run) == []


def test_no_ramdisk_with_a_detected_pair(server, workdir):
    run = boot(server, "ol6-no-marker", workdir, extra=["--no-ramdisk"])
    booted(run, "ol6-no-marker", PXE[0], None)
    assert warnings(run) == []


# -- trees without a complete pair (item 3) -------------------------------------------

def test_a_kernel_of_the_original_list_without_its_ramdisk_boots(server, workdir):
    run = boot(server, "old-kernel-only", workdir)
    booted(run, "old-kernel-only", XEN[0], None)
    [warning] = warnings(run)
    assert f"booting {XEN[0]} without a ramdisk" in warning


def test_a_mixed_pair_of_the_original_list_boots_with_both_named(server, workdir):
    run = boot(server, "old-mixed", workdir)
    booted(run, "old-mixed", XEN[0], ISOLINUX_RAMDISK)
    [warning] = warnings(run)
    assert f"booting {XEN[0]}" in warning and f"with {ISOLINUX_RAMDISK}" in warning


def test_never_mixed_when_a_complete_pair_exists(root, server, workdir):
    for location in (server.url("old-mixed-and-complete") + "/", os.path.join(root, "old-mixed-and-complete")):
        run = run_bootloader([f"--location={location}", *QUIET_OTHERS], workdir)
        booted(run, "old-mixed-and-complete", *PXE)
        assert warnings(run) == []


def test_mixing_is_warned_even_from_a_local_directory(root, workdir):
    run = run_bootloader([f"--location={os.path.join(root, 'old-mixed')}", *QUIET_OTHERS], workdir)
    booted(run, "old-mixed", XEN[0], ISOLINUX_RAMDISK)
    assert len(warnings(run)) == 1


# -- exit status, messages and -q (item 4) ----------------------------------------------

def test_nothing_found_is_one_short_line_and_exit_1(server, workdir):
    run = boot(server, "empty", workdir)
    assert run.status == 1 and run.output_unchanged
    [line] = [line for line in run.console.splitlines() if "no kernel found" in line]
    assert len(line) < 400 and "images/pxeboot/vmlinuz" not in line, line
    verbose = boot(server, "empty", workdir, extra=["-v"])
    assert verbose.status == 1
    assert "images/pxeboot/vmlinuz" in verbose.console and "boot/vmlinuz-virt" in verbose.console


def test_quiet_keeps_the_error_and_drops_the_warning(server, workdir):
    run = boot(server, "old-mixed", workdir, extra=["-q"])
    booted(run, "old-mixed", XEN[0], ISOLINUX_RAMDISK)
    assert run.console.strip() == ""
    failed = boot(server, "empty", workdir, extra=["-q"])
    assert failed.status == 1 and "no kernel found" in failed.console


# -- the four equivalent forms of the original documentation --------------------------

@pytest.mark.parametrize("form", ["location root", "location tree", "full URLs", "bootloader_args"])
def test_the_four_documented_forms(server, workdir, form):
    tree = "ol6-no-marker"
    if form == "location root":
        run = run_bootloader([f"--location={server.url('')}", *QUIET_OTHERS], workdir,
                             kernel=f"{tree}/{PXE[0]}", ramdisk=f"{tree}/{PXE[1]}")
    elif form == "location tree":
        run = boot(server, tree, workdir, kernel=PXE[0], ramdisk=PXE[1])
    elif form == "full URLs":
        run = run_bootloader(QUIET_OTHERS, workdir, kernel=server.url(f"{tree}/{PXE[0]}"),
                             ramdisk=server.url(f"{tree}/{PXE[1]}"))
    else:
        run = boot(server, tree, workdir, extra=["--kernel", PXE[0], "--ramdisk", PXE[1]])
    booted(run, tree, *PXE)
    assert warnings(run) == []
