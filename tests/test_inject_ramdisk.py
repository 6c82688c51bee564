"""--initrd-inject, the ramdisk: the archive written, and the ramdisk it is
appended to, read back by GNU cpio, by the project's ramdisk inspector and by
a reader written here from the newc format alone."""

from __future__ import annotations

import gzip
import os
import resource
import signal
import stat
import subprocess
import time
from typing import List, Tuple

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from support import elfgen
from support import env as test_env
from xenpvnetboot import sandbox, worker
from xenpvnetboot.bootcheck import inspect_ramdisk
from xenpvnetboot.errors import BootError
from xenpvnetboot.inject import (MAX_APPENDED, MAX_FILE_SIZE, MAX_FILES, MAX_TOTAL_SIZE,
                                 AnswerFile, append_archive, gap_before, load_answer_files,
                                 name_problem, newc_archive, private_descriptor)

NOBODY = 65534
PRESEED = os.path.join(os.path.dirname(__file__), "data", "preseed-lang.cfg")
FILES = (AnswerFile("ks.cfg", 0o600, b"text\nrootpw --lock\nreboot\n"),
         AnswerFile("late.sh", 0o755, b"#!/bin/sh\necho done\n"),
         AnswerFile("empty", 0o644, b""),
         AnswerFile("odd-length.bin", 0o640, bytes(range(251))))


# -- a reader of the newc format, independent of the code under test ---------------


def read_newc(data: bytes, start: int = 0) -> Tuple[List[Tuple[str, int, bytes]], int]:
    """(name, st_mode, contents) of each entry before TRAILER!!!, and the offset after it."""
    assert start % 4 == 0
    entries = []
    inodes = set()
    pos = start
    while True:
        header = data[pos:pos + 110]
        assert header[:6] == b"070701", f"no newc header at {pos}"
        fields = [int(header[6 + 8 * i:14 + 8 * i], 16) for i in range(13)]
        mode, nlink, mtime, size, namesize, check = (fields[1], fields[4], fields[5], fields[6],
                                                     fields[11], fields[12])
        name_end = pos + 110 + namesize
        assert data[name_end - 1] == 0
        name = data[pos + 110:name_end - 1].decode("utf-8", "surrogateescape")
        body = (name_end + 3) & ~3
        assert data[name_end:body] == bytes(body - name_end)
        after = (body + size + 3) & ~3
        assert data[body + size:after] == bytes(after - body - size)
        assert (fields[2], fields[3], mtime, check) == (0, 0, 0, 0)  # root, time 0, no sum
        if name == "TRAILER!!!":
            assert size == 0
            return entries, after
        assert nlink == 1 and fields[0] not in inodes | {0}  # Linux never links such entries
        inodes.add(fields[0])
        entries.append((name, mode, data[body:body + size]))
        pos = after


def expected(files) -> List[Tuple[str, int, bytes]]:
    return [(f.name, stat.S_IFREG | f.mode, f.data) for f in files]


def cpio(*args: str, data: bytes, cwd=None) -> str:
    program = test_env.need_program("cpio", "cpio")
    done = subprocess.run([program, *args], input=data, capture_output=True, cwd=cwd,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout.decode()


def listing(data: bytes) -> List[Tuple[str, str]]:
    """(permissions, name) of each entry as ``cpio -tv`` shows them."""
    rows = []
    for line in cpio("-t", "-v", "--quiet", data=data).splitlines():
        fields = line.split()
        rows.append((fields[0], fields[-1]))
    return rows


def make_ramdisk(tmp_path, data: bytes, name: str = "ramdisk") -> str:
    path = os.path.join(str(tmp_path), name)
    with open(path, "wb") as fileobj:
        fileobj.write(data)
    return path


def inject(path: str, files=FILES):
    fd = os.open(path, os.O_RDWR)
    try:
        return append_archive(fd, newc_archive(files), path)
    finally:
        os.close(fd)


# -- the archive ---------------------------------------------------------------------


def test_the_archive_reads_back_with_names_modes_and_contents():
    archive = newc_archive(FILES)
    assert len(archive) % 4 == 0
    entries, end = read_newc(archive)
    assert entries == expected(FILES) and end == len(archive)
    assert newc_archive(FILES) == archive  # deterministic


def test_gnu_cpio_lists_and_extracts_it(tmp_path):
    archive = newc_archive(FILES)
    assert listing(archive) == [("-rw-------", "ks.cfg"), ("-rwxr-xr-x", "late.sh"),
                                ("-rw-r--r--", "empty"), ("-rw-r-----", "odd-length.bin")]
    out = tmp_path / "out"
    out.mkdir()
    cpio("-i", "-d", "-v", "--quiet", "--no-absolute-filenames", data=archive, cwd=str(out))
    assert sorted(os.listdir(str(out))) == sorted(f.name for f in FILES)
    for f in FILES:
        path = out / f.name
        assert path.read_bytes() == f.data
        assert stat.S_IMODE(os.stat(str(path)).st_mode) == f.mode


def test_the_inspector_counts_every_entry(tmp_path):
    report = inspect_ramdisk(make_ramdisk(tmp_path, newc_archive(FILES)))
    assert (report.format, report.faults, report.verified) == ("cpio", [], True)
    assert report.members[0].entries == len(FILES) + 1


def test_the_gap_ends_on_a_multiple_of_four_and_holds_a_zero_word():
    for size in range(64):
        gap = gap_before(size)
        assert (size + len(gap)) % 4 == 0 and 4 <= len(gap) <= 7 and not any(gap)


def test_the_largest_archive_fits_the_stated_bound():
    names = [("n%02d" % i).ljust(255, "x") for i in range(MAX_FILES)]
    per_file = MAX_TOTAL_SIZE // MAX_FILES
    files = [AnswerFile(name, 0o644, bytes(per_file - 1)) for name in names]
    assert len(gap_before(1)) + len(newc_archive(files)) <= MAX_APPENDED
    assert MAX_APPENDED < MAX_TOTAL_SIZE + (64 << 10)


# -- appended to ramdisks --------------------------------------------------------------


@pytest.mark.parametrize("kind", ["cpio", "microcode + gzip", "gzip", "xz", "lzma", "bzip2",
                                  "zstd"])
def test_an_injected_ramdisk_is_the_original_then_a_valid_archive(tmp_path, kind):
    if kind == "microcode + gzip":
        original = elfgen.microcode_cpio() + gzip.compress(elfgen.initramfs(), mtime=0)
    else:
        initramfs = elfgen.initramfs(files=7, size=1001)
        original = initramfs if kind == "cpio" else elfgen.compress(initramfs, kind)
    path = make_ramdisk(tmp_path, original)
    done = inject(path)
    data = open(path, "rb").read()
    assert data[:len(original)] == original
    assert done.offset % 4 == 0 and done.size == len(data) and done.note is None
    assert data[len(original):done.offset] == gap_before(len(original))
    assert read_newc(data, done.offset) == (expected(FILES), len(data))
    assert [name for _, name in listing(data[done.offset:])] == [f.name for f in FILES]
    report = inspect_ramdisk(path)
    assert report.faults == [] and report.verified
    assert report.members[-1].offset == done.offset
    assert (report.members[-1].compression, report.members[-1].entries) == (None, len(FILES) + 1)


def test_gzip_original_still_lists_with_zcat_and_cpio(tmp_path):
    initramfs = elfgen.initramfs(files=3)
    path = make_ramdisk(tmp_path, gzip.compress(initramfs, mtime=0) + b"\0" * 3)
    done = inject(path)
    data = open(path, "rb").read()
    unpacked = subprocess.run(["gzip", "-dc"], input=data, capture_output=True).stdout
    assert unpacked.startswith(initramfs)  # gzip warns about the trailing archive, as it should
    assert [name for _, name in listing(unpacked)] == ["bin", "init", "lib/mod0.ko",
                                                       "lib/mod1.ko", "lib/mod2.ko"]
    assert [name for _, name in listing(data[done.offset:])] == [f.name for f in FILES]


def test_the_real_debian_initrd_with_a_preseed(tmp_path):
    _, initrd = test_env.debian_installer_files()
    original = open(initrd, "rb").read()
    preseed = tmp_path / "preseed.cfg"  # debian-installer reads this name only
    preseed.write_bytes(open(PRESEED, "rb").read())
    files = load_answer_files([str(preseed)])
    path = make_ramdisk(tmp_path, original, "initrd.gz")
    done = inject(path, files)
    data = open(path, "rb").read()
    assert data[:len(original)] == original
    report = inspect_ramdisk(path)
    assert report.faults == [] and report.verified
    assert report.format == "gzip-compressed cpio + cpio"
    assert report.members[1].offset == done.offset
    unpacked = subprocess.run(["gzip", "-dc"], input=data, capture_output=True, timeout=120).stdout
    names = [name for _, name in listing(unpacked)]
    assert "lib/debian-installer-startup.d/S30initrd-preseed" in names  # who reads /preseed.cfg
    assert "preseed.cfg" not in names
    assert listing(data[done.offset:]) == [("-rw-r--r--", "preseed.cfg")]
    out = tmp_path / "out"
    out.mkdir()
    cpio("-i", "-d", "--quiet", data=data[done.offset:], cwd=str(out))
    assert (out / "preseed.cfg").read_bytes() == open(PRESEED, "rb").read()


def test_the_preseed_answers_language_country_and_keyboard():
    lines = [line.split(None, 3) for line in open(PRESEED, encoding="utf-8")
             if line.strip() and not line.startswith("#")]
    answered = {question: (kind, value.strip()) for owner, question, kind, value in lines
                if owner == "d-i"}
    assert answered == {"debian-installer/language": ("string", "de"),
                        "debian-installer/country": ("string", "DE"),
                        "debian-installer/locale": ("select", "de_DE.UTF-8"),
                        "keyboard-configuration/xkb-keymap": ("select", "de")}


def _templates(tmp_path) -> dict:
    """Template name -> its fields, from the real Debian installer's initrd."""
    _, initrd = test_env.debian_installer_files()
    unpacked = subprocess.run(["gzip", "-dc", initrd], capture_output=True, timeout=120).stdout
    out = tmp_path / "di"
    out.mkdir()
    cpio("-i", "-d", "--quiet", "var/lib/dpkg/info/*.templates", data=unpacked, cwd=str(out))
    templates = {}
    for path in (out / "var" / "lib" / "dpkg" / "info").iterdir():
        for block in path.read_text(encoding="utf-8").split("\n\n"):
            fields = dict(line.split(": ", 1) for line in block.splitlines() if ": " in line
                          and not line.startswith(" "))
            if "Template" in fields:
                templates[fields["Template"]] = fields
    return templates


def test_the_preseed_answers_questions_the_real_installer_asks(tmp_path):
    templates = _templates(tmp_path)
    for line in open(PRESEED, encoding="utf-8"):
        if line.strip() and not line.startswith("#"):
            _, question, kind, value = line.split(None, 3)
            assert question in templates, question
            assert templates[question]["Type"] == kind
            if "Choices-C" in templates[question] and "$" not in templates[question]["Choices-C"]:
                assert value.strip() in templates[question]["Choices-C"].split(", ")
    # What a console that took the answers shows next, and what one that did not shows first.
    assert templates["debian-installer/netcfg/title"]["Description-de.UTF-8"] == \
        "Netzwerk einrichten"
    assert templates["netcfg/no_interfaces"]["Description-de.UTF-8"] == \
        "Es wurde keine Netzwerk-Schnittstelle gefunden"
    assert templates["debian-installer/localechooser/title"]["Description"] == "Choose language"


def test_an_lz4_ramdisk_gets_a_warning(tmp_path):
    original = elfgen.compress(elfgen.initramfs(files=3), "lz4")
    path = make_ramdisk(tmp_path, original)
    done = inject(path)
    assert "lz4-compressed" in done.note and "5.14" in done.note
    data = open(path, "rb").read()
    assert data[len(original):len(original) + 4] == bytes(4)  # the zero block size that ends it
    assert read_newc(data, done.offset)[0] == expected(FILES)


@pytest.mark.xfail(strict=True, reason="the inspector reads an lz4 legacy stream to the end of "
                   "the file; Linux >= 5.14 ends it at a zero block size")
def test_the_inspector_reads_past_an_lz4_ramdisk(tmp_path):
    original = elfgen.compress(elfgen.initramfs(files=3), "lz4")
    path = make_ramdisk(tmp_path, original)
    inject(path)
    assert inspect_ramdisk(path).faults == []


@pytest.mark.parametrize("packed", [False, True])
def test_an_old_style_image_is_refused(tmp_path, packed):
    """Linux loads a filesystem image as a RAM disk and would ignore anything appended."""
    mke2fs = test_env.need_program("mke2fs", "e2fsprogs")
    image = os.path.join(str(tmp_path), "initrd.img")
    subprocess.run([mke2fs, "-q", "-F", "-t", "ext2", image, "512"], check=True,
                   capture_output=True)
    if packed:
        data = open(image, "rb").read()
        make_ramdisk(tmp_path, gzip.compress(data), "initrd.img")
    before = open(image, "rb").read()
    with pytest.raises(BootError, match=r"initrd.img: the ramdisk is a filesystem image "
                                        r"\(ext2/3/4, an old-style initrd\)"):
        inject(image)
    assert open(image, "rb").read() == before


# -- never through the cache's inode; only through writable descriptors ---------------


def test_a_ramdisk_linked_with_the_cache_is_copied_first(tmp_path):
    original = gzip.compress(elfgen.initramfs(files=3), mtime=0)
    entry = make_ramdisk(tmp_path, original, "cache-entry")
    partial = os.path.join(str(tmp_path), ".xenpvboot.ramdisk.part")
    os.link(entry, partial)
    fd = os.open(partial, os.O_RDONLY)  # a cache hit is read back read-only
    with pytest.raises(BootError, match="has 2 names"):
        append_archive(fd, newc_archive(FILES), "http://h/initrd.gz")
    private = private_descriptor(fd, partial, "http://h/initrd.gz")
    assert private != fd
    os.close(fd)
    done = append_archive(private, newc_archive(FILES), "http://h/initrd.gz")
    os.close(private)
    assert open(entry, "rb").read() == original
    assert os.stat(entry).st_nlink == 1
    data = open(partial, "rb").read()
    assert data[:len(original)] == original and len(data) == done.size
    assert sorted(os.listdir(str(tmp_path))) == [".xenpvboot.ramdisk.part", "cache-entry"]


def test_a_private_writable_descriptor_is_used_as_it_is(tmp_path):
    path = make_ramdisk(tmp_path, elfgen.initramfs(files=1))
    fd = os.open(path, os.O_RDWR)
    try:
        assert private_descriptor(fd, path, path) == fd
        read_only = os.open(path, os.O_RDONLY)
        with pytest.raises(BootError, match="open read-only"):
            append_archive(read_only, newc_archive(FILES), path)
        os.close(read_only)
    finally:
        os.close(fd)


def test_a_failed_write_leaves_the_original_size(tmp_path):
    """A real EFBIG from the file size limit, in a child so the limit stays there."""
    original = gzip.compress(elfgen.initramfs(files=3), mtime=0)
    path = make_ramdisk(tmp_path, original)
    pid = os.fork()
    if pid == 0:
        try:
            signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
            resource.setrlimit(resource.RLIMIT_FSIZE, (len(original) + 100,) * 2)
            try:
                inject(path)
            except BootError as exc:
                os._exit(3 if "File too large" in str(exc) else 4)
            os._exit(0)
        except BaseException:
            os._exit(1)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 3
    assert open(path, "rb").read() == original


def test_root_reads_the_file_an_unprivileged_child_appends(tmp_path):
    """The --runas flow: root loads a root-only file, the dropped child writes by descriptor."""
    test_env.need_root()
    seccomp = sandbox.load_seccomp()
    if seccomp is None:
        pytest.skip("needs libseccomp and the Python package pyseccomp")
    os.chmod(str(tmp_path), 0o755)
    answer = make_ramdisk(tmp_path, b"rootpw --lock\n", "ks.cfg")
    os.chmod(answer, 0o600)
    files = load_answer_files([answer])
    original = gzip.compress(elfgen.initramfs(files=3), mtime=0)
    ramdisk = make_ramdisk(tmp_path, original)
    fd = os.open(ramdisk, os.O_RDWR)

    def work():
        assert os.geteuid() == NOBODY
        try:
            open(answer, "rb")
        except PermissionError:
            pass
        else:
            raise AssertionError("the child could read the root-only file")
        done = append_archive(fd, newc_archive(files), "http://h/initrd.gz")
        return {"size": done.size, "offset": done.offset}

    try:
        report = worker.run_worker(work, time.monotonic() + 120, uid=NOBODY,
                                   max_file_size=len(original) + MAX_APPENDED, seccomp=seccomp)
    finally:
        os.close(fd)
    data = open(ramdisk, "rb").read()
    assert report["size"] == len(data)
    assert read_newc(data, report["offset"])[0] == [("ks.cfg", 0o100600, b"rootpw --lock\n")]


# -- any valid set of files round-trips -------------------------------------------------

_names = st.text(st.characters(blacklist_categories=("Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp")),
                 min_size=1, max_size=40).filter(lambda name: not name_problem(name))
_files = st.lists(st.tuples(_names, st.integers(0, 0o7777), st.binary(max_size=600)),
                  max_size=12, unique_by=lambda row: row[0])


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows=_files, head=st.binary(max_size=9))
def test_any_valid_files_round_trip(tmp_path, rows, head):
    files = [AnswerFile(name, mode & 0o755, data) for name, mode, data in rows]
    archive = newc_archive(files)
    entries, end = read_newc(archive)
    assert entries == expected(files) and end == len(archive)
    original = gzip.compress(elfgen.newc_cpio([("init", head)], pad_to=4), mtime=0)
    path = make_ramdisk(tmp_path, original, "prop")
    done = inject(path, files)
    data = open(path, "rb").read()
    assert data[:len(original)] == original
    assert read_newc(data, done.offset) == (expected(files), len(data))
    report = inspect_ramdisk(path)
    assert report.faults == [] and report.verified
    assert report.members[-1].entries == len(files) + 1
