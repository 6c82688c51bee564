"""Builders of the filesystem images the container tests read.

Every image is made the way a distribution or an admin makes one (xorriso,
genisoimage, mke2fs -d, mkfs.vfat + mcopy, mksquashfs, sfdisk), as an
unprivileged user could: nothing is mounted.  Programs run from argument
lists, never through a shell.  A missing program skips the test naming its
Debian package (a failure in CI, see tests/conftest.py).
"""

from __future__ import annotations

import json
import multiprocessing
import os
import random
import resource
import struct
import subprocess
from dataclasses import dataclass, field
from typing import Callable, Dict, Iterator, List, Optional, Sequence, Tuple

import pytest

from xenpvnetboot.transports.base import ByteSource

from .env import need_program

#: Debian package of each program the builders run (for .ci/run).
PACKAGES = {
    "xorriso": "xorriso",
    "genisoimage": "genisoimage",
    "mke2fs": "e2fsprogs",
    "e2fsck": "e2fsprogs",
    "debugfs": "e2fsprogs",
    "mkfs.vfat": "dosfstools",
    "mcopy": "mtools",
    "mksquashfs": "squashfs-tools",
    "sfdisk": "fdisk",
    "losetup": "mount",
}

KERNEL = "images/pxeboot/vmlinuz"
INITRD = "images/pxeboot/initrd.img"
VERSIONED = "boot/vmlinuz-6.1.0-test"
SMALL = "small.txt"
IN_HTREE = "many/target-kernel"

#: Symlinks of the full tree: (link, target); the first two reach VERSIONED.
LINKS = [
    ("vmlinuz", VERSIONED),                   # relative, as Debian's /vmlinuz
    ("boot/vmlinuz.abs", "/" + VERSIONED),    # absolute, from a subdirectory
    ("boot/up", "../boot/vmlinuz-6.1.0-test"),  # climbs and comes back
    ("boot/escape", "../../etc/passwd"),      # leaves the image
    ("boot/abs-escape", "/../etc/passwd"),    # leaves it from the root
    ("boot/loop", "loop"),                    # never ends
]
ESCAPES = ["boot/escape", "boot/abs-escape"]
RESOLVING_LINKS = ["vmlinuz", "boot/vmlinuz.abs", "boot/up"]


def payload(seed: int, size: int) -> bytes:
    """Deterministic incompressible bytes, different for each seed."""
    return random.Random(seed).randbytes(size)


def run(argv: Sequence[str], stdin: Optional[bytes] = None, ok: Sequence[int] = (0,)) -> bytes:
    """Run a program (argument list), failing with its stderr if it fails."""
    program = need_program(argv[0], PACKAGES.get(argv[0], argv[0]))
    env = dict(os.environ, MTOOLS_SKIP_CHECK="1")
    done = subprocess.run([program, *argv[1:]], input=stdin, capture_output=True, env=env)
    if done.returncode not in ok:
        raise AssertionError(
            f"{' '.join(argv)} failed ({done.returncode}): {done.stderr.decode(errors='replace')}"
        )
    return done.stdout


@dataclass
class Content:
    """A directory tree to put into images, and what reading it must give."""

    root: str
    files: Dict[str, bytes] = field(default_factory=dict)

    def write(self, path: str, data: bytes) -> None:
        full = os.path.join(self.root, path)
        os.makedirs(os.path.dirname(full), exist_ok=True)
        with open(full, "wb") as out:
            out.write(data)
        self.files[path] = data


def full_content(root: str, scale: int = 1, many: int = 600, links: bool = True) -> Content:
    """Kernel, initrd, a versioned kernel behind symlinks, a tiny file (inline
    data on ext4) and a directory of *many* entries (an htree on ext4).

    Kernel and initrd are larger than the 1 MiB fetch block unless *scale*
    shrinks them (the fuzz tests want metadata to dominate).  FAT has no
    symlinks (and mcopy refuses them): *links* False leaves them out.
    """
    content = Content(root)
    content.write(KERNEL, payload(1, 1_300_000 // scale))
    content.write(INITRD, payload(2, 2_200_000 // scale))
    content.write(VERSIONED, payload(3, 700_000 // scale))
    content.write(SMALL, b"inline\n")
    for i in range(many):
        content.write(f"many/entry-with-a-long-name-{i:05d}", b"%d\n" % i)
    content.write(IN_HTREE, payload(4, 50_000))
    for link, target in LINKS if links else []:
        os.symlink(target, os.path.join(root, link))
    return content


def fat_content(root: str) -> Content:
    """Mixed-case and long names, to be found whatever case is asked for."""
    content = Content(root)
    content.write("Images/PXEBoot/vmlinuz", payload(5, 1_100_000))
    content.write("Images/PXEBoot/initrd.img", payload(6, 1_500_000))
    content.write("EFI/Boot/a rather long kernel name.efi", payload(7, 30_000))
    content.write("lower.txt", b"lower-case short name\n")
    return content


# -- images -------------------------------------------------------------------------


def build_iso(source: str, out: str, flavour: str) -> str:
    """``rockridge`` (xorriso default), ``joliet`` (Joliet without Rock
    Ridge) or ``plain`` (genisoimage without -r/-J: 8.3 upper-case names)."""
    if flavour == "rockridge":
        run(["xorriso", "-as", "mkisofs", "-quiet", "-o", out, source])
    elif flavour == "joliet":
        run(["xorriso", "-as", "mkisofs", "-quiet", "--norock", "-J", "-o", out, source])
    elif flavour == "plain":
        run(["genisoimage", "-quiet", "-o", out, source])
    else:
        raise ValueError(flavour)
    return out


def make_hybrid(iso: str) -> str:
    """Give an ISO the MBR an isohybrid image carries (one partition over it)."""
    size = os.path.getsize(iso)
    entry = struct.pack("<B3xB3xII", 0x80, 0x17, 0, size // 512)
    with open(iso, "r+b") as image:
        image.seek(446)
        image.write(entry)
        image.seek(510)
        image.write(b"\x55\xaa")
    return iso


def build_ext(source: str, out: str, fstype: str, size: str, features: Sequence[str] = (),
              options: Sequence[str] = ()) -> str:
    """mke2fs -d, then e2fsck -D: mke2fs writes large directories unindexed,
    e2fsck turns every directory of more than one block into an htree."""
    argv = ["mke2fs", "-q", "-t", fstype, "-d", source, "-F", *options]
    if features:
        argv += ["-O", ",".join(features)]
    run(argv + [out, size])
    run(["e2fsck", "-f", "-y", "-D", out], ok=(0, 1))
    return out


def build_fat(source: str, out: str, bits: int, size_kib: int) -> str:
    if os.path.exists(out):
        os.unlink(out)
    run(["mkfs.vfat", "-F", str(bits), "-C", out, str(size_kib)])
    entries = [os.path.join(source, name) for name in sorted(os.listdir(source))]
    run(["mcopy", "-i", out, "-s", *entries, "::/"])
    return out


def build_squashfs(source: str, out: str, compression: str) -> str:
    run(["mksquashfs", source, out, "-comp", compression, "-noappend", "-quiet", "-no-progress"])
    return out


#: GPT partition type GUIDs.
GPT_LINUX = "0FC63DAF-8483-4772-8E79-3D47D8E4DE47"
GPT_BASIC_DATA = "EBD0A0A2-B9E5-4433-87C0-68B6B72699C7"


def build_disk(out: str, label: str, parts: Sequence[Tuple[str, str]], logical: Sequence[str] = ()) -> str:
    """A partitioned disk: *parts* are (filesystem image, type) primaries,
    *logical* images go into an extended partition (MBR only)."""
    def sectors(path: str) -> int:
        return -(-os.path.getsize(path) // 512)

    lines = [f"label: {'gpt' if label == 'gpt' else 'dos'}"]
    total = 2048 + 34
    for number, (image, ptype) in enumerate(parts, 1):
        lines.append(f"{out}{number} : size={sectors(image)}, type={ptype}")
        total += sectors(image) + 2048
    if logical:
        extended = sum(sectors(image) + 4096 for image in logical)
        lines.append(f"{out}{len(parts) + 1} : size={extended}, type=5")
        lines += [f"{out}{5 + i} : size={sectors(image)}, type=83" for i, image in enumerate(logical)]
        total += extended + 2048
    with open(out, "wb") as disk:
        disk.truncate(total * 512)
    run(["sfdisk", "-q", "--no-reread", "--no-tell-kernel", out], stdin="\n".join(lines).encode() + b"\n")
    table = json.loads(run(["sfdisk", "-J", out]))["partitiontable"]["partitions"]
    data_parts = [p for p in table if p.get("type") not in ("5", "f", "85")]
    with open(out, "r+b") as disk:
        for image, part in zip(list(p for p, _ in parts) + list(logical), data_parts):
            with open(image, "rb") as fs:
                disk.seek(part["start"] * 512)
                disk.write(fs.read())
    return out


# -- the catalogue the tests iterate over ---------------------------------------------


@dataclass
class Case:
    """One kind of image: how to build it and what reading it must give."""

    name: str
    tree: str  # class name of the tree open_image must return
    build: Callable[["Catalog", str], str]
    expect: Callable[["Catalog"], Dict[str, bytes]]
    links: bool = False  # holds the LINKS of full_content
    corrupt: Sequence[Tuple[int, int]] = ()  # byte ranges the corruption test garbles


class Catalog:
    """Builds each image on first use, once per test session."""

    def __init__(self, workdir: str) -> None:
        self.workdir = workdir
        self._contents: Dict[str, Content] = {}
        self._images: Dict[str, str] = {}

    def content(self, name: str) -> Content:
        if name not in self._contents:
            root = os.path.join(self.workdir, "content-" + name)
            self._contents[name] = CONTENTS[name](root)
        return self._contents[name]

    def source_dir(self, name: str) -> str:
        return self.content(name).root

    def image(self, case: Case) -> str:
        if case.name not in self._images:
            out = os.path.join(self.workdir, case.name + ".img")
            self._images[case.name] = case.build(self, out)
        return self._images[case.name]


def plain_content(root: str) -> Content:
    """Names that fit ISO9660 level 1 (8.3), for the plain ISO."""
    content = Content(root)
    content.write(KERNEL, payload(1, 1_300_000))
    content.write(INITRD, payload(2, 2_200_000))
    content.write(SMALL, b"inline\n")
    return content


def first_partition_content(root: str) -> Content:
    """The FAT first partition of the disks: shadows SMALL of partition 2."""
    content = Content(root)
    content.write(SMALL, b"from partition 1\n")
    content.write("EFI/Boot/grubx64.efi", payload(8, 40_000))
    return content


def logical_content(root: str) -> Content:
    content = Content(root)
    content.write("logical-only.txt", b"in partition 5\n")
    return content


CONTENTS = {
    "full": full_content,
    "fat": fat_content,
    "plain": plain_content,
    "p1": first_partition_content,
    "logical": logical_content,
}


def full_expect(catalog: Catalog) -> Dict[str, bytes]:
    files = catalog.content("full").files
    expect = {path: files[path] for path in (KERNEL, INITRD, VERSIONED, SMALL, IN_HTREE)}
    expect["/" + KERNEL] = files[KERNEL]
    expect.update((link, files[VERSIONED]) for link in RESOLVING_LINKS)
    return expect


def joliet_expect(catalog: Catalog) -> Dict[str, bytes]:
    files = catalog.content("full").files
    expect = {path: files[path] for path in (KERNEL, INITRD, VERSIONED, SMALL, IN_HTREE)}
    expect["IMAGES/PXEBoot/VMLINUZ"] = files[KERNEL]
    return expect


def plain_expect(catalog: Catalog) -> Dict[str, bytes]:
    files = catalog.content("plain").files
    expect = dict(files)
    expect["/IMAGES/PXEBOOT/VMLINUZ"] = files[KERNEL]
    expect["Small.Txt"] = files[SMALL]
    return expect


def fat_expect(catalog: Catalog) -> Dict[str, bytes]:
    files = catalog.content("fat").files
    kernel, initrd = files["Images/PXEBoot/vmlinuz"], files["Images/PXEBoot/initrd.img"]
    long_name = files["EFI/Boot/a rather long kernel name.efi"]
    return {
        "Images/PXEBoot/vmlinuz": kernel,
        KERNEL: kernel,
        "IMAGES/PXEBOOT/INITRD.IMG": initrd,
        "EFI/Boot/a rather long kernel name.efi": long_name,
        "efi/boot/A Rather Long Kernel Name.EFI": long_name,
        "LOWER.TXT": files["lower.txt"],
    }


def disk_expect(catalog: Catalog) -> Dict[str, bytes]:
    expect = full_expect(catalog)
    expect[SMALL] = catalog.content("p1").files[SMALL]  # the first partition wins
    return expect


def mbr_expect(catalog: Catalog) -> Dict[str, bytes]:
    expect = disk_expect(catalog)
    expect["logical-only.txt"] = catalog.content("logical").files["logical-only.txt"]
    return expect


def _iso(flavour: str, content: str) -> Callable[[Catalog, str], str]:
    return lambda catalog, out: build_iso(catalog.source_dir(content), out, flavour)


def _ext(fstype: str, *features: str) -> Callable[[Catalog, str], str]:
    return lambda catalog, out: build_ext(catalog.source_dir("full"), out, fstype, "16M", features)


def _fat(bits: int, size_kib: int) -> Callable[[Catalog, str], str]:
    return lambda catalog, out: build_fat(catalog.source_dir("fat"), out, bits, size_kib)


def _squashfs(compression: str) -> Callable[[Catalog, str], str]:
    return lambda catalog, out: build_squashfs(catalog.source_dir("full"), out, compression)


def _hybrid(catalog: Catalog, out: str) -> str:
    return make_hybrid(build_iso(catalog.source_dir("full"), out, "rockridge"))


def _disk(label: str) -> Callable[[Catalog, str], str]:
    def build(catalog: Catalog, out: str) -> str:
        first = build_fat(catalog.source_dir("p1"), out + ".p1", 16, 20480)
        second = build_ext(catalog.source_dir("full"), out + ".p2", "ext4", "16M")
        if label == "gpt":
            return build_disk(out, "gpt", [(first, GPT_BASIC_DATA), (second, GPT_LINUX)])
        fifth = build_ext(catalog.source_dir("logical"), out + ".p5", "ext2", "1M")
        return build_disk(out, "dos", [(first, "6"), (second, "83")], [fifth])

    return build


_ISO_PVD = [(32774, 32768 + 2048)]
_EXT_SUPERBLOCK = [(1024, 1048), (1052, 1080)]  # all but the magic and block size
_FAT_BPB = [(14, 16), (17, 19), (22, 24), (36, 48)]

CASES = [
    Case("iso-rockridge", "IsoTree", _iso("rockridge", "full"), full_expect, True, _ISO_PVD),
    Case("iso-joliet", "IsoTree", _iso("joliet", "full"), joliet_expect, False, _ISO_PVD),
    Case("iso-plain", "IsoTree", _iso("plain", "plain"), plain_expect, False, _ISO_PVD),
    Case("iso-hybrid", "IsoTree", _hybrid, full_expect, True, _ISO_PVD),
    Case("ext2", "ExtTree", _ext("ext2"), full_expect, True, _EXT_SUPERBLOCK),
    Case("ext3", "ExtTree", _ext("ext3"), full_expect, True, _EXT_SUPERBLOCK),
    Case("ext4", "ExtTree", _ext("ext4"), full_expect, True, _EXT_SUPERBLOCK),
    Case("ext4-inline", "ExtTree", _ext("ext4", "inline_data"), full_expect, True, _EXT_SUPERBLOCK),
    Case("fat12", "TskTree", _fat(12, 4096), fat_expect, False, _FAT_BPB),
    Case("fat16", "TskTree", _fat(16, 20480), fat_expect, False, _FAT_BPB),
    Case("fat32", "TskTree", _fat(32, 40960), fat_expect, False, _FAT_BPB),
    Case("squashfs-gzip", "SquashfsTree", _squashfs("gzip"), full_expect, True, [(4, 96)]),
    Case("squashfs-xz", "SquashfsTree", _squashfs("xz"), full_expect, True, [(4, 96)]),
    Case("squashfs-zstd", "SquashfsTree", _squashfs("zstd"), full_expect, True, [(4, 96)]),
    Case("squashfs-lz4", "SquashfsTree", _squashfs("lz4"), full_expect, True, [(4, 96)]),
    Case("disk-mbr", "PartitionedTree", _disk("dos"), mbr_expect, True, [(446, 510)]),
    Case("disk-gpt", "PartitionedTree", _disk("gpt"), disk_expect, True, [(446, 510)]),
]


# -- helpers for tests ----------------------------------------------------------------


class BytesSource(ByteSource):
    """An image held in memory (the fuzz tests garble them without files)."""

    def __init__(self, data: bytes, name: str = "memory.img") -> None:
        self._data = data
        self.name = name
        self.closed = False

    @property
    def size(self) -> int:
        return len(self._data)

    def pread(self, offset: int, length: int) -> bytes:
        return self._data[offset:offset + length]

    def close(self) -> None:
        self.closed = True


class PaddedSource(BytesSource):
    """An image that claims *size* bytes, zeros after its real *data*.

    What a server that announces a large file (or a sparse file) looks like
    to a reader: the claimed size costs the one who claims it nothing.
    """

    def __init__(self, data: bytes, size: int, name: str = "padded.img") -> None:
        super().__init__(data, name)
        self._claimed = size

    @property
    def size(self) -> int:
        return self._claimed

    def pread(self, offset: int, length: int) -> bytes:
        end = min(offset + length, self._claimed)
        if offset < 0 or offset >= end:
            return b""
        head = self._data[offset:end]
        return head + bytes(end - offset - len(head))


#: CPU seconds a child of :func:`run_bounded` may use, and its address space.
WATCHDOG_CPU = 30
WATCHDOG_MEMORY = 2 << 30


def run_bounded(action: Callable[[], object], cpu: int = WATCHDOG_CPU) -> Tuple[str, str]:
    """Run *action* in a forked child; (outcome, detail).

    The outcome is "returned" (detail: the value's repr), the class name of
    what it raised (detail: the message), or "killed" when the child used up
    *cpu* seconds of CPU or died otherwise.  The CPU limit is a watchdog for
    a parser that would never stop (a C library spinning ignores signals),
    not a timing assertion: bounded code needs a small fraction of it.  The
    address space is limited too, so a runaway allocation fails in the child.
    """
    context = multiprocessing.get_context("fork")
    reader, writer = context.Pipe(duplex=False)

    def child() -> None:
        resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 5))
        resource.setrlimit(resource.RLIMIT_AS, (WATCHDOG_MEMORY, WATCHDOG_MEMORY))
        try:
            writer.send(("returned", repr(action())[:2000]))
        except BaseException as exc:  # reported to the parent, which asserts on it
            writer.send((type(exc).__name__, str(exc)[:2000]))

    process = context.Process(target=child, daemon=True)
    process.start()
    writer.close()
    process.join(cpu * 10 + 60)  # wall clock: only for a child that stopped using CPU
    if process.is_alive():
        process.kill()
        process.join()
    try:
        if reader.poll():
            return reader.recv()
    except EOFError:
        pass
    return "killed", f"exit status {process.exitcode} (more than {cpu} s of CPU?)"


def mountinfo() -> List[str]:
    with open("/proc/self/mountinfo") as info:
        return sorted(info.read().splitlines())


@pytest.fixture(scope="module", autouse=True)
def nothing_mounted() -> Iterator[None]:
    """Reading images must never mount anything (import this into a test module)."""
    before = mountinfo()
    yield
    assert mountinfo() == before


def loop_devices_of(path: str) -> str:
    """What ``losetup -j`` says about loop devices backed by *path*."""
    return run(["losetup", "-j", path]).decode().strip()
