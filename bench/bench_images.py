#!/usr/bin/env python3
"""Images: reading the kernel pair out of an ISO and an ext4 image, unmounted,
against ``cp`` of the same two files.

Builds an ISO (xorriso) and an ext4 image (mke2fs -d) holding the Debian 12
installer kernel + initrd (48 MB), then times, in alternating rounds with
everything in the page cache, ``open_image`` + ``fetch`` of both files into
a directory against one ``cp`` of the two original files into a directory.
The image figures include opening and parsing the image.

    python3 bench/bench_images.py [--runs 7]
"""

from __future__ import annotations

import argparse
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


def build_images(work: str, kernel: str, initrd: str) -> Dict[str, str]:
    tree = os.path.join(work, "tree", "install.amd")
    os.makedirs(tree)
    for name, original in zip(NAMES, (kernel, initrd)):
        shutil.copyfile(original, os.path.join(tree, name))
    iso = os.path.join(work, "debian.iso")
    ext4 = os.path.join(work, "debian.ext4")
    for argv in (["xorriso", "-as", "mkisofs", "-quiet", "-o", iso, os.path.dirname(tree)],
                 ["mke2fs", "-q", "-t", "ext4", "-d", os.path.dirname(tree), "-F", ext4, "80M"]):
        subprocess.run(argv, check=True, capture_output=True)
    return {"iso": iso, "ext4": ext4}


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
                tree.fetch("install.amd/" + name, Sink(fileobj, target))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=7)
    opts = parser.parse_args()
    kernel, initrd = debian_pair()
    total = os.path.getsize(kernel) + os.path.getsize(initrd)
    work = tempfile.mkdtemp(prefix="bench-images.")
    try:
        images = build_images(work, kernel, initrd)
        out = os.path.join(work, "out")
        os.makedirs(out)
        contenders = {
            "cp of the two files": timed(
                lambda: subprocess.run(["cp", kernel, initrd, out], check=True), out),
        }
        for kind, image in images.items():
            contenders[f"{kind}: open_image + fetch"] = timed(
                lambda image=image: extract(image, out), out)
        times: Dict[str, List[float]] = alternate(contenders, opts.runs)
        print(f"Debian installer pair, {total / 1e6:.1f} MB, {opts.runs} alternating runs:")
        ratios = report(times, "cp of the two files")
        for name, values in times.items():
            print(f"  {name:40s} {total / statistics.median(values) / 1e6:8.0f} MB/s")
        for kind in images:
            result(f"images.{kind}.ratio_cp", ratios[f"{kind}: open_image + fetch"])
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
