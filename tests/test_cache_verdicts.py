"""The check's reports kept with the cache entries: a cached boot does not inspect again.

A report is kept keyed by the SHA-256 of the bytes it describes and by what
the check read; the guest type and architecture are applied to it at each
boot.  A record for other bytes, a damaged one, or one whose entry was
replaced or removed is never used.
"""

from __future__ import annotations

import gzip
import json
import os
import time

import pytest
from support import elfgen
from support.libxl import run_bootloader
from test_cache import server  # noqa: F401  (the fixture, serving this module's tree)

from xenpvnetboot.bootcheck import KernelReport, RamdiskReport, inspect_kernel
from xenpvnetboot.bootcheck._wire import WIRE_VERSION, report_from_wire, report_to_wire

REUSED = "checked already by a boot of the same bytes"
KERNEL = "images/pxeboot/vmlinuz"
RAMDISK = "images/pxeboot/initrd.img"


def pv_only() -> bytes:
    return elfgen.build_bzimage(elfgen.build_elf(elfgen.pv_notes()), "xz")


@pytest.fixture
def tree(tmp_path):
    """A tree of the generic layout: a PV-only kernel and a small initramfs."""
    root = tmp_path / "srv"
    for rel, data in ((KERNEL, pv_only()), (RAMDISK, gzip.compress(elfgen.initramfs()))):
        os.makedirs((root / rel).parent, exist_ok=True)
        (root / rel).write_bytes(data)
    return root


@pytest.fixture
def cache(tmp_path):
    from xenpvnetboot.cachedir import DEFAULT_LIMIT, init_cache

    path = tmp_path / "cache"
    init_cache(str(path), DEFAULT_LIMIT)
    return path


class Boots:
    """Boots of one tree through one cache, each in a directory of its own."""

    def __init__(self, server, cache, tmp_path) -> None:
        self.server, self.cache, self.tmp_path = server, cache, tmp_path
        self.count = 0

    def __call__(self, *extra: str):
        self.count += 1
        work = self.tmp_path / f"boot{self.count}"
        work.mkdir()
        run = run_bootloader([f"--location={self.server.url()}", f"--cache-dir={self.cache}",
                              "--verify=off", "-v", *extra], str(work))
        return run

    def records(self):
        """The check records of the cache, by file name."""
        found = {}
        for dirpath, _, names in os.walk(self.cache):
            for name in names:
                if name.endswith(".check"):
                    with open(os.path.join(dirpath, name)) as handle:
                        found[os.path.join(dirpath, name)] = json.load(handle)
        return found


@pytest.fixture
def boots(server, cache, tmp_path):
    return Boots(server, cache, tmp_path)


def reused(run, role: str) -> bool:
    return any(line.startswith(role) and REUSED in line for line in run.console.splitlines())


def test_second_boot_takes_the_kernel_report_from_the_cache(boots):
    first = boots()
    assert first.status == 0, first.console
    assert not reused(first, "kernel")
    second = boots()
    assert second.status == 0, second.console
    assert reused(second, "kernel")
    # what the report says is shown as when the kernel was inspected
    assert "PV: yes" in second.console and "PVH: no" in second.console
    records = boots.records()
    assert len(records) == 1  # the kernel's: the start of a ramdisk is read again
    assert set(next(iter(records.values()))["reports"]) == {"kernel"}


def test_guest_type_is_applied_to_the_kept_report(boots):
    assert boots().status == 0
    refused = boots("--check=strict", "--guest-type=pvh")
    assert refused.status == 1
    assert reused(refused, "kernel")
    assert "PVH entry point" in refused.error_lines[-1]


def test_strict_keeps_and_reuses_the_whole_ramdisk_check(boots):
    assert boots("--check=strict").status == 0
    kinds = set()
    for record in boots.records().values():
        kinds |= set(record["reports"])
    assert kinds == {"kernel", "ramdisk-full"}
    again = boots("--check=strict")
    assert again.status == 0
    assert reused(again, "kernel") and reused(again, "ramdisk")
    assert "checked to the end" in again.console
    # a warn boot reads only the start of the ramdisk: the full report is not its answer
    warn = boots()
    assert reused(warn, "kernel") and not reused(warn, "ramdisk")


def test_check_off_keeps_no_report(boots):
    assert boots("--check=off").status == 0
    assert boots.records() == {}
    later = boots()  # the first checking boot of a cached file inspects it, then keeps it
    assert later.status == 0 and not reused(later, "kernel")
    assert reused(boots(), "kernel")


def test_a_changed_file_is_inspected_again(boots, tree):
    assert boots().status == 0
    page = b"<!DOCTYPE html><html><title>403 Forbidden</title></html>"
    (tree / KERNEL).write_bytes(page)
    os.utime(tree / KERNEL, (time.time() + 10, time.time() + 10))
    run = boots()
    assert run.status == 0
    assert not reused(run, "kernel")
    assert any("HTML" in line for line in run.console.splitlines() if line.startswith("warning"))
    # the new entry's record is of the new bytes
    assert reused(boots(), "kernel")


def rewrite_records(boots, change) -> None:
    for path, record in boots.records().items():
        with open(path, "w") as handle:
            handle.write(change(record))


def test_a_record_of_other_bytes_is_not_used(boots):
    assert boots().status == 0

    def other_bytes(record):
        record["content_sha256"] = "0" * 64
        return json.dumps(record)

    rewrite_records(boots, other_bytes)
    run = boots()
    assert run.status == 0 and not reused(run, "kernel")


def test_a_record_saying_what_the_file_is_not_is_not_believed(boots, tree):
    """A record kept for a good kernel, moved next to an entry for a broken one."""
    assert boots().status == 0
    records = boots.records()
    good = next(iter(records.values()))
    (tree / KERNEL).write_bytes(b"<html><title>404 Not Found</title></html>")
    os.utime(tree / KERNEL, (time.time() + 10, time.time() + 10))
    assert boots().status == 0
    for path in boots.records():
        with open(path, "w") as handle:
            json.dump(good, handle)
    run = boots()
    assert not reused(run, "kernel")
    assert any("HTML" in line for line in run.console.splitlines() if line.startswith("warning"))


@pytest.mark.parametrize("damage", ["{not json", "[]", '{"content_sha256": 5}', "null"])
def test_a_damaged_record_means_inspecting_again(boots, damage):
    assert boots().status == 0
    rewrite_records(boots, lambda record: damage)
    run = boots()
    assert run.status == 0 and not reused(run, "kernel")
    assert "PV: yes" in run.console


def test_records_go_with_their_entries(boots):
    from xenpvnetboot.cache import Cache

    assert boots().status == 0
    assert len(boots.records()) == 1
    cache = Cache(str(boots.cache))
    try:
        cache.max_size = 0  # every entry is evicted, and its record with it
        cache.evict()
    finally:
        cache.close()
    leftovers = [name for _, _, names in os.walk(boots.cache) for name in names
                 if not name.endswith(".lock") and name != "CACHEDIR.TAG"]
    assert leftovers == []


def test_injected_ramdisk_is_never_recorded(boots, tmp_path):
    answers = tmp_path / "ks.cfg"
    answers.write_text("text\n")
    assert boots("--check=strict", f"--initrd-inject={answers}").status == 0
    assert boots("--check=strict", f"--initrd-inject={answers}").status == 0
    for record in boots.records().values():
        assert "ramdisk-full" not in record["reports"]


# -- the records themselves ----------------------------------------------------------------


@pytest.fixture
def kernel_report(tmp_path):
    path = tmp_path / "k"
    path.write_bytes(elfgen.build_bzimage(elfgen.build_elf(elfgen.pv_notes()
                                                           + elfgen.pvh_notes()), "gzip"))
    return inspect_kernel(str(path), "K")


def test_a_report_round_trips_through_json(kernel_report):
    wire = json.loads(json.dumps(report_to_wire(kernel_report)))
    back = report_from_wire(wire, KernelReport, 7, "another name")
    assert back is not None and back.path == 7 and back.name == "another name"
    assert back.xen_notes == kernel_report.xen_notes and back.pvh_entry == kernel_report.pvh_entry
    assert report_from_wire(wire, RamdiskReport, 7, "x") is None  # not a ramdisk's


@pytest.mark.parametrize("field, value", [
    ("pv", "yes"), ("bits", True), ("size", -0.5), ("faults", "none"), ("faults", [3]),
    ("xen_notes", {"x": "00"}), ("xen_notes", {"1": "zz"}), ("version", 12),
])
def test_a_field_of_the_wrong_type_voids_the_record(kernel_report, field, value):
    wire = json.loads(json.dumps(report_to_wire(kernel_report)))
    wire["facts"][field] = value
    assert report_from_wire(wire, KernelReport, 7, "K") is None


def test_another_version_or_a_missing_field_voids_the_record(kernel_report):
    wire = report_to_wire(kernel_report)
    assert report_from_wire({**wire, "wire": WIRE_VERSION + 1}, KernelReport, 7, "K") is None
    facts = dict(wire["facts"])
    del facts["pv"]
    assert report_from_wire({**wire, "facts": facts}, KernelReport, 7, "K") is None

