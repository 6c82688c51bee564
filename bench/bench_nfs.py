#!/usr/bin/env python3
"""How fast an NFS location delivers the real Debian installer pair.

Serves linux and initrd.gz of Debian's debian-installer-12-netboot-amd64
from an nfs-ganesha on 127.0.0.1 and times, alternating and taking the
median of --runs rounds, our fetch of both files (connection included)
against ``nfs-cp`` of Debian's libnfs-utils (one process per file, NFSv3 as
it defaults to, and NFSv4 with ``?version=4``).  With --block-sizes it also
compares fetch block sizes.  Needs root (ganesha's VFS backend), like the
tests.

    python3 bench/bench_nfs.py [--runs 7] [--block-sizes 1,2,4,8,16]
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
sys.path[:0] = [HERE, os.path.join(HERE, "..", "src"), os.path.join(HERE, "..", "tests")]

from common import ratio, result  # noqa: E402
from support.env import DEBIAN_DI_DIR  # noqa: E402
from support.libxl import sha256_file  # noqa: E402
from support.nfs_server import NFS_PORT, Export, GaneshaServer, Rpcbind, make_export_dir  # noqa: E402

from xenpvnetboot.transports import nfs  # noqa: E402
from xenpvnetboot.transports.base import Sink, TransportOptions  # noqa: E402

NAMES = ("linux", "initrd.gz")
MiB = 1 << 20


def ours(server: GaneshaServer, out: str, vers: str = "") -> Callable[[], None]:
    options = {"vers": vers} if vers else {}
    spec = server.spec("/export/debian", **options)

    def run() -> None:
        with nfs.open_nfs(spec, TransportOptions(), image=False) as tree:
            for name in NAMES:
                with open(os.path.join(out, name), "wb") as handle:
                    tree.fetch(name, Sink(handle, tree.url(name)))

    return run


def nfs_cp(server: GaneshaServer, out: str, version: str = "") -> Callable[[], None]:
    program = shutil.which("nfs-cp")
    if program is None:
        raise SystemExit("needs nfs-cp (Debian package libnfs-utils)")
    query = []
    if version:
        query.append(f"version={version}")
    if server.port != NFS_PORT:
        query.append(f"nfsport={server.port}")
    suffix = "?" + "&".join(query) if query else ""

    def run() -> None:
        for name in NAMES:
            url = f"nfs://127.0.0.1/export/debian/{name}{suffix}"
            subprocess.run([program, url, os.path.join(out, name)], check=True,
                           stdout=subprocess.DEVNULL)

    return run


def measure(contenders: Dict[str, Callable[[], None]], runs: int, out: str,
            want: Dict[str, str]) -> Dict[str, List[float]]:
    """Alternate the contenders round by round; check every copy."""
    times: Dict[str, List[float]] = {label: [] for label in contenders}
    for _ in range(runs):
        for label, run in contenders.items():
            for name in NAMES:
                target = os.path.join(out, name)
                if os.path.exists(target):
                    os.unlink(target)
            started = time.perf_counter()
            run()
            times[label].append(time.perf_counter() - started)
            for name in NAMES:
                if sha256_file(os.path.join(out, name)) != want[name]:
                    raise SystemExit(f"{label}: {name} differs from the original")
    return times


def report(times: Dict[str, List[float]], total: int, baseline: str) -> None:
    base = statistics.median(times[baseline])
    for label, values in times.items():
        median = statistics.median(values)
        print(f"  {label:<28} median {median * 1000:7.1f} ms  "
              f"{total / median / 1e6:6.0f} MB/s  x{median / base:.2f} of {baseline}  "
              f"(min {min(values) * 1000:.1f} ms)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--block-sizes", default="", help="MiB values to compare, e.g. 1,2,4,8")
    args = parser.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("needs root (nfs-ganesha's VFS backend)")
    work = tempfile.mkdtemp(prefix="bench-nfs-")
    rpcbind = server = None
    try:
        export = make_export_dir(os.path.join(work, "export"))
        debian = make_export_dir(os.path.join(export, "debian"))
        for name in NAMES:
            shutil.copyfile(os.path.join(DEBIAN_DI_DIR, name), os.path.join(debian, name))
        want = {name: sha256_file(os.path.join(debian, name)) for name in NAMES}
        total = sum(os.path.getsize(os.path.join(debian, name)) for name in NAMES)
        out = make_export_dir(os.path.join(work, "out"))
        rpcbind = Rpcbind(work)
        server = GaneshaServer(make_export_dir(os.path.join(work, "ganesha")),
                               [Export(export, "/export")]).start()
        print(f"Debian pair: {total} bytes; ganesha on 127.0.0.1:{server.port}; "
              f"block {nfs.BLOCK // MiB} MiB; {args.runs} alternating rounds")
        contenders = {
            "xenpvnetboot (negotiated)": ours(server, out),
            "xenpvnetboot vers=3": ours(server, out, "3"),
            "nfs-cp (NFSv3)": nfs_cp(server, out),
            "nfs-cp ?version=4": nfs_cp(server, out, "4"),
        }
        times = measure(contenders, args.runs, out, want)
        report(times, total, "nfs-cp (NFSv3)")
        for name, ours_label, theirs in (
                ("negotiated.ratio_nfscp3", "xenpvnetboot (negotiated)", "nfs-cp (NFSv3)"),
                ("v3.ratio_nfscp3", "xenpvnetboot vers=3", "nfs-cp (NFSv3)"),
                ("negotiated.ratio_nfscp4", "xenpvnetboot (negotiated)", "nfs-cp ?version=4")):
            result(f"nfs.{name}", ratio(times, ours_label, theirs))
        if args.block_sizes:
            sweep = {}
            for size in (int(value) for value in args.block_sizes.split(",")):
                sweep[f"block {size} MiB"] = block_size_run(ours(server, out), size * MiB)
            print("fetch block sizes (negotiated version):")
            report(measure(sweep, args.runs, out, want), total, next(iter(sweep)))
    finally:
        if server is not None:
            server.stop()
        if rpcbind is not None:
            rpcbind.stop()
        shutil.rmtree(work, ignore_errors=True)


def block_size_run(run: Callable[[], None], size: int) -> Callable[[], None]:
    def sized() -> None:
        saved, nfs.tree.BLOCK = nfs.tree.BLOCK, size
        try:
            run()
        finally:
            nfs.tree.BLOCK = saved

    return sized


if __name__ == "__main__":
    main()
