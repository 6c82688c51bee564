#!/usr/bin/env python3
"""A big ramdisk over HTTP: wall time against curl and our peak memory.

Serves the Debian 12 installer kernel (8 MB) and a ramdisk of --size MiB of
random bytes (default 1024: 1 GiB, generated in a temporary directory) from
nginx on loopback, and times, in alternating rounds, ``xenpvnetboot`` as
libxl runs it (no cache) with ``--check=off`` and with the default
``--check=warn`` against one ``curl`` process fetching both files, with
each one's peak RSS: curl's from GNU time (Debian package time), ours from
the kernel's ``ru_maxrss`` of the waited-for process (the very figure GNU
time prints), which is the largest of its processes: the root parent and
the worker it forks.  Each of those two is also sampled on its own from
/proc/PID/status (VmHWM) as it runs, printed as ``parent`` and ``worker``.
The files are written below /dev/shm when it is a tmpfs (as libxl's
/var/run/libxl is on Debian), else in the temporary directory;
--output-parent chooses.  Prints medians, ratios and
``RESULT big.*`` lines (time ratios against curl, the largest peak RSS of
the runs in MiB: ``big.<check>.rss_mib`` the tree's, ``.parent_rss_mib``
and ``.worker_rss_mib`` each process's).

    python3 bench/bench_big.py [--runs 5] [--size 1024] [--output-parent DIR] [--profile]
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import (CHECKS, CURL, TREE_FILES, Nginx, boot_vs_curl,  # noqa: E402
                    curl_results, debian_tree, output_dir, profile_boots, result)

MiB = 1 << 20


def write_random(path: str, size: int) -> None:
    with open(path, "wb") as handle:
        for _ in range(size // MiB):
            handle.write(os.urandom(MiB))
        handle.write(os.urandom(size % MiB))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--size", type=int, default=1024, help="ramdisk size in MiB (default 1024)")
    parser.add_argument("--output-parent", default="", metavar="DIR",
                        help="put the fetched files below DIR (default: /dev/shm when it is a "
                        "tmpfs, as libxl's /run is, else the temporary directory)")
    parser.add_argument("--profile", action="store_true",
                        help="also print a cProfile of one boot with --check=off")
    opts = parser.parse_args()
    size = opts.size * MiB
    work = tempfile.mkdtemp(prefix="bench-big.")
    out = None
    try:
        # The served ramdisk, our copy and curl's (each emptied after its run).
        need = 3 * size + 256 * MiB
        free = shutil.disk_usage(work).free
        if free < need:
            sys.exit(f"{work}: needs {need / MiB:.0f} MiB free, has {free / MiB:.0f} MiB")
        out = output_dir(work, 2 * size, opts.output_parent)
        root = os.path.join(work, "srv")
        directory = debian_tree(root)
        write_random(os.path.join(directory, TREE_FILES[1]), size)
        # A ramdisk over the default --max-size of 1G needs a larger limit.
        options = [f"--max-size={opts.size + 1}M"] if size > 1 << 30 else []
        server = Nginx(root)
        try:
            print(f"HTTP from nginx, Debian kernel (8 MB) + {opts.size} MiB random ramdisk, "
                  f"{opts.runs} runs, each under GNU time -v:")
            times, contenders = boot_vs_curl(server.url(), work, opts.runs, rss=True,
                                             options=options, out=out)
            if opts.profile:
                profile_boots(server.url(), work, ("off",), options)
        finally:
            server.stop()
        curl_results("big", times)
        for check in CHECKS:
            command = contenders[f"--check={check}"]
            result(f"big.{check}.rss_mib", max(command.peaks) / 1024)
            for role in ("parent", "worker"):
                result(f"big.{check}.{role}_rss_mib",
                       max(each[role] for each in command.process_peaks) / 1024)
        result("big.curl.rss_mib", max(contenders[CURL].peaks) / 1024)
    finally:
        shutil.rmtree(work, ignore_errors=True)
        if out is not None:
            shutil.rmtree(out, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
