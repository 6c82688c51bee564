#!/usr/bin/env python3
"""Images: reading the kernel pair out of ISO, ext4, squashfs, FAT and GPT disk
images, unmounted, against ``cp`` of the same two files.

Builds images holding the Debian 12 installer kernel + initrd (48 MB) with
the usual tools (xorriso, mke2fs -d, mksquashfs, mkfs.vfat + mcopy, sfdisk),
then times, in alternating rounds with everything in the page cache,
``open_image`` + ``fetch`` of both files into a directory against one ``cp``
of the two original files.  The image figures include opening and parsing
the image.  The squashfs image also holds a live system's worth of small
files (``--live-files``, in directories of 100), as a Debian live image's
filesystem.squashfs does: what opening such an image costs is timed on its
own too (open + stat of the pair, no data read).

    python3 bench/bench_images.py [--runs 7] [--live-files 20000]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Callable, Dict, List

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:0] = [HERE, os.path.join(HERE, "..", "src")]

from common import alternate, debian_pair, report, result  # noqa: E402
from xenpvnetboot.containers import open_image  # noqa: E402
from xenpvnetboot.transports.base import Sink, TransportOptions  # noqa: E402
from xenpvnetboot.transports.local import LocalSource  # noqa: E402

NAMES = ("vmlinuz", "initrd.gz")
#: Where the pair lies in every image (Debian media's directory).
DIRECTORY = "install.amd"
#: Bytes of each small file of the live tree.
LIVE_FILE = 200


def run(argv: List[str], stdin: bytes = b"") -> bytes:
    return subprocess.run(argv, check=True, capture_output=True, input=stdin).stdout


def pair_tree(work: str, kernel: str, initrd: str) -> str:
    root = os.path.join(work, "tree")
    os.makedirs(os.path.join(root, DIRECTORY))
    for name, original in zip(NAMES, (kernel, initrd)):
        shutil.copyfile(original, os.path.join(root, DIRECTORY, name))
    return root


def live_tree(work: str, pair: str, files: int) -> str:
    """The pair plus *files* small files below usr/, 100 to a directory."""
    root = os.path.join(work, "live")
    shutil.copytree(pair, root)
    for number in range(files):
        directory = os.path.join(root, "usr", "share", f"pkg{number // 100:04d}")
        if number % 100 == 0:
            os.makedirs(directory)
        with open(os.path.join(directory, f"file-{number:06d}.txt"), "wb") as out:
            out.write(b"%06d " % number * (LIVE_FILE // 7))
    return root


def gpt_disk(work: str, pair: str) -> str:
    """A GPT disk: an empty FAT EFI partition, then an ext4 one with the pair."""
    esp, ext4, disk = (os.path.join(work, name) for name in ("esp.img", "p2.ext4", "disk.img"))
    run(["mkfs.vfat", "-F", "32", "-C", esp, str(40 << 10)])
    run(["mke2fs", "-q", "-t", "ext4", "-d", pair, "-F", ext4, "80M"])
    sectors = [os.path.getsize(path) // 512 for path in (esp, ext4)]
    with open(disk, "wb") as out:
        out.truncate((sum(sectors) + 8192) * 512)
    table = "label: gpt\n" + "".join(f"size={count}, type=linux\n" for count in sectors)
    run(["sfdisk", "-q", "--no-reread", "--no-tell-kernel", disk], table.encode())
    parts = json.loads(run(["sfdisk", "-J", disk]))["partitiontable"]["partitions"]
    with open(disk, "r+b") as out:
        for path, part in zip((esp, ext4), parts):
            with open(path, "rb") as image:
                out.seek(part["start"] * 512)
                shutil.copyfileobj(image, out)
    return disk


def build_images(work: str, kernel: str, initrd: str, live_files: int) -> Dict[str, str]:
    pair = pair_tree(work, kernel, initrd)
    images = {name: os.path.join(work, f"debian.{name}") for name in ("iso", "ext4", "fat")}
    run(["xorriso", "-as", "mkisofs", "-quiet", "-o", images["iso"], pair])
    run(["mke2fs", "-q", "-t", "ext4", "-d", pair, "-F", images["ext4"], "80M"])
    run(["mkfs.vfat", "-F", "32", "-C", images["fat"], str(80 << 10)])
    run(["mcopy", "-i", images["fat"], "-s", os.path.join(pair, DIRECTORY), "::/"])
    images["squashfs"] = os.path.join(work, "live.squashfs")
    run(["mksquashfs", live_tree(work, pair, live_files), images["squashfs"], "-comp", "xz",
         "-noappend", "-quiet", "-no-progress"])
    images["gpt"] = gpt_disk(work, pair)
    return images


def clear(out: str) -> None:
    for name in os.listdir(out):
        os.unlink(os.path.join(out, name))


def timed(action: Callable[[], object], out: str) -> Callable[[], float]:
    """A contender for ``alternate``: empties *out*, then times *action*."""
    def measure() -> float:
        clear(out)
        start = time.perf_counter()
        action()
        return time.perf_counter() - start
    return measure


def extract(image: str, out: str) -> None:
    with open_image(LocalSource(image), TransportOptions()) as tree:
        for name in NAMES:
            target = os.path.join(out, name)
            with open(target, "wb") as fileobj:
                tree.fetch(f"{DIRECTORY}/{name}", Sink(fileobj, target))


def open_and_stat(image: str) -> None:
    with open_image(LocalSource(image), TransportOptions()) as tree:
        for name in NAMES:
            tree.stat(f"{DIRECTORY}/{name}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--live-files", type=int, default=20000,
                        help="small files in the squashfs image besides the pair")
    opts = parser.parse_args()
    kernel, initrd = debian_pair()
    total = os.path.getsize(kernel) + os.path.getsize(initrd)
    work = tempfile.mkdtemp(prefix="bench-images.")
    try:
        images = build_images(work, kernel, initrd, opts.live_files)
        out = os.path.join(work, "out")
        os.makedirs(out)
        contenders = {
            "cp of the two files": timed(
                lambda: subprocess.run(["cp", kernel, initrd, out], check=True), out),
        }
        for kind, image in images.items():
            contenders[f"{kind}: open_image + fetch"] = timed(
                lambda image=image: extract(image, out), out)
        contenders["squashfs: open_image + stat only"] = timed(
            lambda: open_and_stat(images["squashfs"]), out)
        times: Dict[str, List[float]] = alternate(contenders, opts.runs)
        print(f"Debian installer pair, {total / 1e6:.1f} MB, {opts.runs} alternating runs "
              f"(squashfs: {opts.live_files} more files):")
        ratios = report(times, "cp of the two files")
        for name, values in times.items():
            if name.endswith("fetch") or name.startswith("cp"):
                print(f"  {name:40s} {total / statistics.median(values) / 1e6:8.0f} MB/s")
        for kind in images:
            result(f"images.{kind}.ratio_cp", ratios[f"{kind}: open_image + fetch"])
        result("images.squashfs.open_ms",
               statistics.median(times["squashfs: open_image + stat only"]) * 1000)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
