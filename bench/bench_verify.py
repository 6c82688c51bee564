#!/usr/bin/env python3
"""What following the Debian signature chain costs (``--verify=auto``).

Lays out a Debian mirror holding the real Debian 12 installer pair (Debian
package debian-installer-12-netboot-amd64) below ``dists/bookworm/``, signed
with a key made here, serves it with nginx on loopback (the tests' Python
server when nginx is missing) and times, in alternating rounds, fresh
processes doing a boot's work on
``.../dists/bookworm/main/installer-amd64/``: open the location, choose the
pair, [follow InRelease -> SHA256SUMS and attach the hashes], stream both
files (through the SHA-256 check when verifying).  Three contenders: ``off``
(no check), ``hash`` (the right SHA-256 given by hand, as --kernel-sha256
does: the cost of hashing 48 MB alone) and ``auto`` (the chain).  Prints the medians, the
requests and bytes the chain adds (from the access log), and an in-process
breakdown: importing pysequoia, loading the real debian-archive-keyring,
verifying the real Debian InRelease apt keeps in /var/lib/apt/lists.
Ends with ``RESULT verify.*`` lines.

    python3 bench/bench_verify.py [--runs 7]
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import glob
import os
import shutil
import subprocess
import sys
import tempfile
import time
from typing import Callable, Dict, List

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:0] = [HERE, os.path.join(HERE, "..", "src"), os.path.join(HERE, "..", "tests")]
from common import BENCH_ENV, Nginx, alternate, debian_pair, median, report, result  # noqa: E402

INSTALLER = "debian/dists/bookworm/main/installer-amd64"
DEBIAN_KEYRING = "/usr/share/keyrings/debian-archive-keyring.gpg"


def child(mode: str, url: str, out: str, keyring: str) -> None:
    """One boot's work in this process (what a real boot would import and fetch)."""
    from xenpvnetboot.layout import select_files
    from xenpvnetboot.location import open_location, parse_location
    from xenpvnetboot.transports import Sink, TransportOptions

    options = TransportOptions()
    with contextlib.ExitStack() as stack:
        tree = stack.enter_context(open_location(url, options))
        selection = select_files(tree, None, None, options, stack, arch="x86_64")
        if mode == "hash":  # the streaming check alone, with the right hashes given by hand
            kernel_hex, ramdisk_hex = keyring.split(",")
            selection = dataclasses.replace(
                selection, kernel=dataclasses.replace(selection.kernel, sha256=kernel_hex),
                ramdisk=dataclasses.replace(selection.ramdisk, sha256=ramdisk_hex))
        if mode == "auto":
            from xenpvnetboot.verify import Origin, Verifier, read_keyrings

            verifier = Verifier("auto", read_keyrings([keyring]))
            origin = Origin(parse_location(url), tree, lambda loc: open_location(loc, options))
            report_ = verifier.check(selection, [origin])
            report_.enforce("auto", print)
            selection = report_.apply(selection)
        jobs = []
        handles = []
        for role, ref in (("kernel", selection.kernel), ("ramdisk", selection.ramdisk)):
            handle = open(os.path.join(out, role), "wb")
            handles.append(handle)
            jobs.append((ref.path, Sink(handle, ref.url, sha256=ref.sha256)))
        tree.fetch_many(jobs)
        for handle in handles:
            handle.close()


def measure(mode: str, url: str, out: str, keyring: str) -> Callable[[], float]:
    argv = [sys.executable, os.path.abspath(__file__), "--child", mode, url, out, keyring]

    def run() -> float:
        start = time.perf_counter()
        subprocess.run(argv, check=True, env=BENCH_ENV)
        return time.perf_counter() - start

    return run


def breakdown() -> Dict[str, float]:
    """In-process costs of the pieces, with the real Debian keyring and InRelease."""
    found: Dict[str, float] = {}
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", "import pysequoia, pysequoia.packet"], check=True)
    found["python + import pysequoia (s)"] = time.perf_counter() - start
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", "pass"], check=True)
    found["python alone (s)"] = time.perf_counter() - start
    lists = sorted(glob.glob("/var/lib/apt/lists/*_dists_bookworm_InRelease"))
    if not lists or not os.path.isfile(DEBIAN_KEYRING):
        return found
    from xenpvnetboot.verify.keyrings import read_keyrings
    from xenpvnetboot.verify.lists import parse_release
    from xenpvnetboot.verify.openpgp import KeyStore, verify_clearsigned

    with open(lists[0], "rb") as handle:
        data = handle.read()
    start = time.perf_counter()
    keys = KeyStore(read_keyrings(system_files=[DEBIAN_KEYRING]))
    keys.load()
    found["load debian-archive-keyring (s)"] = time.perf_counter() - start
    start = time.perf_counter()
    signed = verify_clearsigned(data, keys, lists[0])
    found["verify the real InRelease (s)"] = time.perf_counter() - start
    start = time.perf_counter()
    parse_release(signed.content, lists[0])
    found["parse its Release (s)"] = time.perf_counter() - start
    return found


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=7, help="alternating rounds (default 7)")
    parser.add_argument("--child", nargs=4, metavar=("MODE", "URL", "OUT", "KEYRING"),
                        help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(*args.child)
        return 0
    from support.pgp import Key, build_mirror, sha256_file

    kernel, initrd = debian_pair()
    work = tempfile.mkdtemp(prefix="bench-verify.")
    try:
        key = Key.make("Bench Archive Key <archive@example.org>")
        keyring = key.write_keyring(os.path.join(work, "keyring.gpg"))
        build_mirror(os.path.join(work, "root"), key, kernel, initrd, copy=True, filler=770)
        out = os.path.join(work, "out")
        os.makedirs(out)
        if shutil.which("nginx") or os.path.exists("/usr/sbin/nginx"):
            server = Nginx(os.path.join(work, "root"), access_log=True)
        else:
            from support.http_server import TestHTTPServer

            server = TestHTTPServer(os.path.join(work, "root")).start()
        try:
            url = server.url(INSTALLER)
            counts: Dict[str, List[int]] = {}
            for mode in ("off", "auto"):  # one boot each to count requests
                before = len(_requests(server))
                measure(mode, url, out, keyring)()
                done = _requests(server)[before:]
                counts[mode] = [len(done), sum(size for size in done)]
            hashes = ",".join(sha256_file(path) for path in (kernel, initrd))
            times = alternate({"off": measure("off", url, out, keyring),
                               "hash": measure("hash", url, out, hashes),
                               "auto": measure("auto", url, out, keyring)}, args.runs)
        finally:
            server.stop()
        print(f"Debian pair over http, {args.runs} rounds (fresh process each):")
        report(times, "off")
        added = median(times["auto"]) - median(times["off"])
        print(f"  requests: off {counts['off'][0]}, auto {counts['auto'][0]} "
              f"(+{counts['auto'][0] - counts['off'][0]}), body bytes added "
              f"{counts['auto'][1] - counts['off'][1]}")
        for name, seconds in breakdown().items():
            print(f"  {name:40s} {seconds * 1000:8.1f} ms")
        result("verify.auto_over_off", median(times["auto"]) / median(times["off"]))
        result("verify.added_seconds", added)
        result("verify.chain_seconds", median(times["auto"]) - median(times["hash"]))
        result("verify.added_requests", counts["auto"][0] - counts["off"][0])
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


def _requests(server) -> List[int]:
    """Body bytes of each request served so far (nginx's log or the test server's)."""
    if hasattr(server, "requests") and callable(server.requests):
        return [r.body_bytes for r in server.requests(settle=0.2)]
    return [0 for _ in server.requests]


if __name__ == "__main__":
    sys.exit(main())
