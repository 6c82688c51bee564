"""--check inspecting each file while it downloads (check.LiveInspection).

The inspection reads the output file through its own descriptor while a
Sink writes it; whatever the order of writes, rewinds and failures, its
report must be the one the complete file gives, or no report at all (the
file is then inspected once complete).
"""

from __future__ import annotations

import dataclasses
import gzip
import io
import os
import random
import threading

import pytest
from support import elfgen
from support.http_server import TestHTTPServer
from support.libxl import run_bootloader

from xenpvnetboot.bootcheck import inspect_kernel, inspect_ramdisk
from xenpvnetboot.bootcheck._growing import Abandoned, Arrivals, growing_file
from xenpvnetboot.check import PUBLISH_STEP, BootChecker
from xenpvnetboot.transports import Sink
from xenpvnetboot.ui import UI

#: Long enough for any inspection here on a busy machine; never reached when all is well.
PATIENCE = 120.0


def noise(size: int) -> bytes:
    """Incompressible bytes (the same every run): a compressed file as large as they are."""
    return random.Random(18).randbytes(size)


def good_kernel(fmt: str = "xz", tail: int = 3 * PUBLISH_STEP) -> bytes:
    """A PV+PVH bzImage whose notes lie at its start and whose payload goes on for *tail* bytes."""
    elf = elfgen.build_elf(elfgen.pv_notes() + elfgen.pvh_notes()) + noise(tail)
    return elfgen.build_bzimage(elf, fmt)


class Output:
    """An output file as the boot opens it: buffered writes, a second descriptor to read."""

    def __init__(self, path: str) -> None:
        self.path = path
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
        self.fileobj = os.fdopen(fd, "wb", buffering=1 << 20)
        self.read_fd = os.dup(fd)

    def close(self) -> None:
        self.fileobj.close()
        os.close(self.read_fd)


@pytest.fixture
def output(tmp_path):
    out = Output(str(tmp_path / "kernel"))
    yield out
    out.close()


def checker(policy: str = "warn") -> BootChecker:
    return BootChecker(policy, "pv", None, UI(quiet=True, stream=io.StringIO()))


def write(sink: Sink, data: bytes, step: int = 48 << 10) -> None:
    for start in range(0, len(data), step):
        assert sink.write(data[start:start + step]) == len(data[start:start + step])


def facts(report):
    """A report without the descriptor it was read through."""
    return dataclasses.replace(report, path=None)


def complete_report(path: str, role: str = "kernel", full: bool = False):
    if role == "kernel":
        return facts(inspect_kernel(path, "K"))
    return facts(inspect_ramdisk(path, "K", full))


# -- the file that grows ----------------------------------------------------------------


@pytest.fixture
def grown(tmp_path):
    """Open a file holding *data* as one that will have *size* bytes (closed after the test)."""
    opened = []

    def open_(data: bytes, size: int):
        path = tmp_path / f"f{len(opened)}"
        path.write_bytes(data)
        arrivals = Arrivals(size)
        opened.append(os.open(path, os.O_RDONLY))
        return growing_file(opened[-1], arrivals), arrivals

    yield open_
    for fd in opened:
        os.close(fd)


def test_a_read_waits_for_published_bytes(grown):
    view, arrivals = grown(b"0123456789", 10)
    got = []
    reader = threading.Thread(target=lambda: got.append(view.read(8)))
    try:
        reader.start()
        arrivals.publish(4)
        reader.join(0.2)
        assert reader.is_alive() and got == []  # 4 bytes are not the 8 asked for
        arrivals.publish(10)
        reader.join(PATIENCE)
        assert got == [b"01234567"]
    finally:
        arrivals.abandon()
        reader.join(PATIENCE)


def test_abandoning_wakes_a_waiting_reader(grown):
    view, arrivals = grown(b"01234", 100)
    failed = []

    def read() -> None:
        try:
            view.read(50)
        except Abandoned:
            failed.append(True)

    reader = threading.Thread(target=read)
    reader.start()
    arrivals.abandon()
    reader.join(PATIENCE)
    assert failed == [True]


def test_the_file_ends_at_its_announced_size(grown):
    view, arrivals = grown(b"abcdef", 6)
    arrivals.publish(6)
    assert view.seek(0, io.SEEK_END) == 6
    view.seek(2)
    assert view.read(100) == b"cdef" and view.read(1) == b""
    with pytest.raises(ValueError):
        view.seek(-1)


def test_bytes_announced_but_never_written_abandon(grown):
    view, arrivals = grown(b"abc", 6)
    arrivals.publish(6)  # a writer that lied: the transfer fails anyway
    with pytest.raises(Abandoned):
        view.read(6)


# -- inspecting while the Sink writes ------------------------------------------------------


def test_kernel_is_inspected_before_its_last_byte(output):
    data = good_kernel()
    check = checker()
    live = check.tap("kernel", output.read_fd, "K")
    sink = Sink(output.fileobj, "K", tap=live)
    sink.expect(len(data))
    write(sink, data[:-PUBLISH_STEP])
    assert live.wait(PATIENCE)  # the notes were found with a MiB still to come
    write(sink, data[-PUBLISH_STEP:])
    output.fileobj.flush()
    report = live.result()
    assert report is not None and report.pv and report.pvh
    assert facts(report) == complete_report(output.path)


@pytest.mark.parametrize("fmt", ["gzip", "xz", "bzip2", "lzma"])
def test_streamed_report_is_the_complete_files(output, fmt):
    data = good_kernel(fmt, tail=PUBLISH_STEP // 2)
    live = checker().tap("kernel", output.read_fd, "K")
    sink = Sink(output.fileobj, "K", tap=live)
    sink.expect(len(data))
    write(sink, data, step=5000)
    output.fileobj.flush()
    assert facts(live.result()) == complete_report(output.path)


@pytest.mark.parametrize("damage", ["html", "cut"])
def test_faults_are_found_while_streaming(output, damage):
    good = good_kernel("gzip", tail=2 * PUBLISH_STEP)
    data = (b"<!DOCTYPE html><html><title>502 Bad Gateway</title></html>" if damage == "html"
            else good[:len(good) // 2])
    live = checker().tap("kernel", output.read_fd, "K")
    sink = Sink(output.fileobj, "K", tap=live)
    sink.expect(len(data))
    write(sink, data)
    output.fileobj.flush()
    report = live.result()
    assert report.faults and facts(report) == complete_report(output.path)


def test_ramdisk_read_to_its_end_while_streaming_under_strict(output):
    data = gzip.compress(elfgen.initramfs(files=200)) + gzip.compress(elfgen.initramfs())
    live = checker("strict").tap("ramdisk", output.read_fd, "K")
    sink = Sink(output.fileobj, "K", tap=live)
    sink.expect(len(data))
    write(sink, data, step=1000)
    output.fileobj.flush()
    report = live.result()
    assert report.verified and len(report.members) == 2
    assert facts(report) == complete_report(output.path, "ramdisk", full=True)


def test_a_rewind_starts_the_inspection_over(output):
    page = b"<html><title>Service Unavailable</title></html>" + b" " * (3 * PUBLISH_STEP)
    data = good_kernel()
    live = checker().tap("kernel", output.read_fd, "K")
    sink = Sink(output.fileobj, "K", tap=live)
    sink.expect(len(page))
    write(sink, page[:2 * PUBLISH_STEP])
    sink.rewind()  # as a transfer restarted from its first byte does
    sink.expect(len(data))
    write(sink, data)
    output.fileobj.flush()
    report = live.result()
    assert not report.faults and report.pv
    assert facts(report) == complete_report(output.path)


def test_a_failed_transfer_leaves_no_report(output):
    data = good_kernel(tail=8 * PUBLISH_STEP)
    check = checker()
    live = check.tap("kernel", output.read_fd, "K")
    sink = Sink(output.fileobj, "K", tap=live)
    sink.expect(len(data) * 2)  # the notes are never reached by what arrives
    write(sink, data[:PUBLISH_STEP // 2])
    check.abandon()
    assert live.result() is None


def test_a_file_of_unknown_size_is_inspected_once_complete(output):
    data = good_kernel()
    check = checker()
    live = check.tap("kernel", output.read_fd, "K")
    sink = Sink(output.fileobj, "K", tap=live)  # no size announced
    write(sink, data)
    output.fileobj.flush()
    assert live.result() is None
    result = check.check((output.read_fd, "K"))
    assert result.kernel.pv and facts(result.kernel) == complete_report(output.path)


def test_check_off_taps_nothing(output):
    assert checker("off").tap("kernel", output.read_fd, "K") is None


# -- through a whole boot -------------------------------------------------------------------


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    root = tmp_path_factory.mktemp("srv")
    (root / "vmlinuz").write_bytes(good_kernel())
    (root / "initrd.gz").write_bytes(gzip.compress(elfgen.initramfs()))
    srv = TestHTTPServer(str(root)).start()
    yield srv
    srv.stop()


def test_boot_checks_while_fetching(server, workdir):
    run = run_bootloader(["--kernel", server.url("vmlinuz"), "--ramdisk", server.url("initrd.gz"),
                          "--verify=off", "--check=strict", "-v"], workdir)
    assert run.status == 0, run.console
    assert "PV: yes" in run.console and "checked to the end" in run.console


def test_injected_ramdisk_is_checked_as_booted(server, workdir, tmp_path):
    answers = tmp_path / "preseed.cfg"
    answers.write_text("d-i debian-installer/locale string en_US\n")
    run = run_bootloader(["--kernel", server.url("vmlinuz"), "--ramdisk", server.url("initrd.gz"),
                          "--verify=off", "--check=strict", "-v", f"--initrd-inject={answers}"],
                         workdir)
    assert run.status == 0, run.console
    # the archive appended after the download is part of what was inspected
    assert "gzip-compressed cpio + cpio" in run.console
