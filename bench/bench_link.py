#!/usr/bin/env python3
"""A real 1 Gbit/s link: whole boots from a Debian mirror against curl.

Loopback hides what a user feels: there the interpreter's start-up
dominates, on a link the transfer, the round trips and any work left after
the last byte do.  This builds two network namespaces of its own joined by
a veth (MTU 1500, addresses of the benchmarking range 198.18.0.0/15 that
exist only inside them), shapes the server's side with ``tc qdisc ... tbf
rate 1gbit burst 256kb latency 50ms`` (--rate sets another rate), runs
nginx in the server namespace on a Debian mirror tree holding the real
Debian 12 installer pair (Debian
package debian-installer-12-netboot-amd64) at
``debian/dists/bookworm/main/installer-amd64/current/images/netboot/xen/``,
signed with a key made here, and times whole processes in the client
namespace (``ip netns exec``), in alternating rounds:

* ``curl`` fetching both files (one process): the reference;
* ``python3 -c pass``: the start-up floor of any Python process;
* our boot as libxl runs it, ``--no-cache``: the default ``--check=warn``
  and ``--check=off``, each with ``--verify=off`` (what the check costs
  alone) and with the default ``--verify=auto`` trusting the key made here
  (``--keyring``: the signature chain, two small requests more, and the
  SHA-256 of both files);
* a second boot from a warm ``--cache-dir`` (unchanged tree), with the
  default check and with ``--check=off``, ``--verify=off``, and with the
  defaults.

Each figure is the median of the per-round ratios against curl (both ran
in the same round); the CPU time of the kernel check alone (measured in this
process) is printed beside them, since the check overlaps the transfer and
can only add what it takes beyond it.  Then it counts, for one boot of each kind, the requests
and the sequential round trips before the first body byte of the kernel or
ramdisk, from nginx's access log (``$msec - $request_time`` is when nginx
read a request).  A round trip on this veth takes some 0.1 ms, below the
log's millisecond, and this kernel has no ``netem`` to lengthen it, so for
that count the requests reach nginx through a proxy in the server namespace
that holds each piece of a request for --delay-ms (default 20 ms) before
passing it on, and a new connection's first for as long again (its
handshake): requests that nginx reads within half that delay of each
other were in flight together, one that comes later waited for an answer,
and a wave that opened a connection waited for its handshake as well.
Needs root; prints why and exits 0 elsewhere.  Ends with ``RESULT link.*``
lines.

    python3 bench/bench_link.py [--runs 9] [--delay-ms 20] [--rate 1gbit]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from typing import Dict, List, Optional, Sequence, Tuple

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:0] = [HERE, os.path.join(HERE, "..", "tests")]
from common import (CURL, PYTHON_START, Command, Nginx, Request, alternate,  # noqa: E402
                    boot_argv, curl_argv, debian_pair, median, output_dir, paired_ratio,
                    prepared_cache, result)

INSTALLER = "debian/dists/bookworm/main/installer-amd64"
FILES = ("current/images/netboot/xen/vmlinuz", "current/images/netboot/xen/initrd.gz")
#: The server side's qdisc; the rate is --rate.
SHAPE = ("tbf", "rate", "{rate}", "burst", "256kb", "latency", "50ms")
PORT, PROXY_PORT = 80, 8080
QUIET = ("--verify=off",)
#: label -> (options, cached?)
BOOTS: Dict[str, Tuple[Tuple[str, ...], bool]] = {
    "default, --verify=off": (QUIET, False),
    "--check=off, --verify=off": (QUIET + ("--check=off",), False),
    "default (--verify=auto)": ((), False),
    "--check=off, --verify=auto": (("--check=off",), False),
    "cached, default, --verify=off": (QUIET, True),
    "cached, --check=off, --verify=off": (QUIET + ("--check=off",), True),
    "cached, defaults": ((), True),
}


def missing() -> Optional[str]:
    """Why this benchmark cannot run here, or None."""
    if os.geteuid() != 0:
        return "needs root (network namespaces, tc)"
    for program, package in (("ip", "iproute2"), ("tc", "iproute2"), ("nginx", "nginx"),
                             ("curl", "curl")):
        if not (shutil.which(program) or os.path.exists(f"/usr/sbin/{program}")):
            return f"needs {program} (Debian package {package})"
    try:
        import pysequoia  # noqa: F401
    except ImportError:
        return "needs the Python package pysequoia (to sign the mirror)"
    return None


class Link:
    """The two namespaces and the shaped veth between them (see the module docstring)."""

    def __init__(self, rate: str = "1gbit") -> None:
        from support.tftp_servers import LossyLink

        self._pair = LossyLink(per_mille=0)
        self.shape = [word.format(rate=rate) for word in SHAPE]
        self.server = self._pair.SERVER_ADDR
        self.server_ns = self._pair.server_ns
        self.client_ns = self._pair.client_ns

    def __enter__(self) -> "Link":
        self._pair.__enter__()
        try:
            subprocess.run(self.server_side(["tc", "qdisc", "add", "dev", self._pair.server_if,
                                             "root", *self.shape]), check=True, timeout=20)
        except BaseException:
            self._pair.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self._pair.close()

    def server_side(self, argv: Sequence[str]) -> List[str]:
        return self._pair.exec_argv(self.server_ns, argv)

    def client_side(self, argv: Sequence[str]) -> List[str]:
        return self._pair.exec_argv(self.client_ns, argv)

    def wait_for(self, port: int, timeout: float = 10.0) -> None:
        """Until something listens on the server's *port*, as seen from the client side."""
        from support.netns import entered

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with entered(self.client_ns):
                sock = socket.socket()
            with sock:
                if sock.connect_ex((self.server, port)) == 0:
                    return
            time.sleep(0.05)
        raise RuntimeError(f"nothing listening on {self.server}:{port}")


class DelayProxy:
    """Forwards TCP connections to nginx, holding each piece of a request for *delay* s.

    It runs on a thread of its own that entered the server namespace, so its
    sockets live there; answers go back at once.  See the module docstring.
    """

    def __init__(self, link: Link, delay: float) -> None:
        self.link = link
        self.delay = delay
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="delay-proxy")
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("the delaying proxy did not start")

    def _run(self) -> None:
        from support.netns import entered

        with entered(self.link.server_ns):
            server = self._loop.run_until_complete(asyncio.start_server(
                self._connection, self.link.server, PROXY_PORT))
            self._ready.set()
            try:
                self._loop.run_forever()
            finally:
                server.close()

    async def _connection(self, reader: asyncio.StreamReader,
                          writer: asyncio.StreamWriter) -> None:
        # A new connection's handshake is a round trip of its own.
        await asyncio.sleep(self.delay)
        up_reader, up_writer = await asyncio.open_connection(self.link.server, PORT)
        await asyncio.gather(self._pump(reader, up_writer, self.delay),
                             self._pump(up_reader, writer, 0.0), return_exceptions=True)

    @staticmethod
    async def _pump(source: asyncio.StreamReader, sink: asyncio.StreamWriter,
                    delay: float) -> None:
        loop = asyncio.get_running_loop()
        try:
            while True:
                data = await source.read(1 << 16)
                if not data:
                    break
                if delay:
                    due = loop.time() + delay
                    await asyncio.sleep(max(0.0, due - loop.time()))
                sink.write(data)
                await sink.drain()
        finally:
            sink.close()

    def url(self, path: str) -> str:
        return f"http://{self.link.server}:{PROXY_PORT}/{path}"

    def stop(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)


def waves(requests: Sequence[Request], delay: float) -> List[List[Request]]:
    """*requests* grouped by round trip: nginx read a wave's requests within *delay*/2."""
    found: List[List[Request]] = []
    for request in sorted(requests, key=lambda r: r.start):
        if found and request.start - found[-1][0].start < delay / 2:
            found[-1].append(request)
        else:
            found.append([request])
    return found


def before_first_body(requests: Sequence[Request], delay: float) -> Tuple[int, int, int]:
    """(requests, sequential round trips) before the wave that brings the first
    byte of the kernel or ramdisk, and all requests of the boot.

    A wave that had to open a connection (nginx saw a connection number it
    had not seen) waited for a handshake too: a round trip more.  The first
    wave's is not counted, as curl's own is not either.
    """
    grouped = waves(requests, delay)
    seen = {r.connection for r in grouped[0]} if grouped else set()
    trips = 0
    for number, wave in enumerate(grouped):
        fresh = {r.connection for r in wave} - seen
        seen |= fresh
        trips += bool(number and fresh)
        if any(r.method == "GET" and r.uri.endswith(FILES) and r.status in (200, 206)
               and r.body_bytes for r in wave):
            return sum(len(w) for w in grouped[:number]), trips + number, len(requests)
    return len(requests), trips + len(grouped), len(requests)


class Bench:
    """The link, the mirror, nginx and the contenders of one run."""

    def __init__(self, link: Link, work: str) -> None:
        from support.pgp import Key, build_mirror

        self.link = link
        self.work = work
        root = os.path.join(work, "srv")
        key = Key.make("Bench Archive Key <archive@example.org>")
        self.keyring = key.write_keyring(os.path.join(work, "keyring.gpg"))
        kernel, initrd = debian_pair()
        build_mirror(root, key, kernel, initrd, copy=True, filler=770)
        self.nginx = Nginx(root, access_log=True, host=link.server, port=PORT,
                           prefix=link.server_side([]), timed=True,
                           ready=lambda server: link.wait_for(PORT))
        self.out = output_dir(work)
        self.cache = prepared_cache(os.path.join(work, "cache"))

    def boot(self, base: str, options: Sequence[str], cached: bool) -> List[str]:
        store = (f"--cache-dir={self.cache}",) if cached else ("--no-cache",)
        return self.link.client_side(boot_argv(
            f"{base.rstrip('/')}/{INSTALLER}", self.out, os.path.join(self.work, "result"),
            *store, f"--keyring={self.keyring}", *options))

    def contenders(self) -> Dict[str, Command]:
        urls = [self.nginx.url(f"{INSTALLER}/{name}") for name in FILES]
        found = {CURL: Command(self.link.client_side(curl_argv(urls, self.out)), self.out),
                 PYTHON_START: Command(self.link.client_side([sys.executable, "-c", "pass"]))}
        for label, (options, cached) in BOOTS.items():
            found[label] = Command(self.boot(self.nginx.url(), options, cached), self.out)
        return found

    def count(self, delay: float) -> Dict[str, Tuple[int, int, int]]:
        """Requests before the first body byte, per kind of boot, through the delaying proxy."""
        proxy = DelayProxy(self.link, delay)
        counts = {}
        try:
            for label, (options, cached) in BOOTS.items():
                boot = Command(self.boot(proxy.url(""), options, cached), self.out)
                if cached:
                    boot()  # fills the cache for this URL
                mark = len(self.nginx.requests())
                boot()
                counts[label] = before_first_body(self.nginx.requests(mark, settle=0.2), delay)
        finally:
            proxy.stop()
        return counts

    def close(self) -> None:
        self.nginx.stop()
        shutil.rmtree(self.out, ignore_errors=True)


def kernel_check_cpu() -> float:
    """CPU seconds of inspecting the Debian kernel once, in this process (median of 3)."""
    from xenpvnetboot.bootcheck import inspect_kernel

    spent = []
    for _ in range(3):
        start = time.thread_time()
        inspect_kernel(debian_pair()[0])
        spent.append(time.thread_time() - start)
    return median(spent)


def report_times(times: Dict[str, List[float]]) -> Dict[str, float]:
    ratios = {}
    for name, values in times.items():
        ratios[name] = paired_ratio(times, name, CURL)
        print(f"  {name:40s} median {median(values) * 1000:8.1f} ms   "
              f"{ratios[name]:5.2f}x curl (median of per-round ratios)")
    return ratios


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=9)
    parser.add_argument("--delay-ms", type=float, default=20.0,
                        help="request delay of the round-trip count (default 20)")
    parser.add_argument("--rate", default="1gbit",
                        help="the link's rate, in tc's syntax (default 1gbit)")
    opts = parser.parse_args()
    why = missing()
    if why:
        print(f"bench_link.py skipped: {why}")
        return 0
    work = tempfile.mkdtemp(prefix="bench-link.")
    try:
        with Link(opts.rate) as link:
            bench = Bench(link, work)
            try:
                print(f"Debian 12 installer pair (48 MB) over a veth shaped to "
                      f"{' '.join(link.shape)}, nginx in a namespace, {opts.runs} rounds:")
                times = alternate(bench.contenders(), opts.runs)  # type: ignore[arg-type]
                ratios = report_times(times)
                counts = bench.count(opts.delay_ms / 1000)
            finally:
                bench.close()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    default, off = ratios["default, --verify=off"], ratios["--check=off, --verify=off"]
    check_cost = paired_ratio(times, "default, --verify=off", "--check=off, --verify=off")
    print(f"  default / --check=off: {check_cost:.3f}x; "
          f"start-up floor (curl + python3 -c pass) / curl: {1 + ratios[PYTHON_START]:.2f}x")
    auto_cost = median(times["default (--verify=auto)"]) - median(times["default, --verify=off"])
    print(f"  --verify=auto costs {auto_cost * 1000:.0f} ms over --verify=off (default check)")
    cpu = kernel_check_cpu()
    transfer = median(times[CURL]) - median(times[PYTHON_START])
    print(f"  the kernel check alone: {cpu * 1000:.0f} ms of CPU (in this process, median of 3); "
          f"curl's transfer beyond a process start-up: ~{transfer * 1000:.0f} ms.  The check "
          "overlaps the transfer from the kernel's first byte, so it can only add what it "
          "takes beyond the transfer")
    print(f"Requests before the first body byte (round trips of {opts.delay_ms:g} ms added):")
    for label, (before, trips, total) in counts.items():
        if label.startswith("cached"):  # no body byte: revalidation alone
            print(f"  {label:40s} {total:3d} requests in {trips} sequential round trips "
                  "(no body byte: all of the boot's)")
        else:
            print(f"  {label:40s} {before:3d} requests in {trips} sequential round trips "
                  f"before it, {total} requests in all")
    result("link.default.ratio_curl", default)
    result("link.off.ratio_curl", off)
    result("link.default_vs_off", check_cost)
    result("link.auto.ratio_curl", ratios["default (--verify=auto)"])
    result("link.auto_off.ratio_curl", ratios["--check=off, --verify=auto"])
    result("link.auto.added_ms", auto_cost * 1000)
    result("link.cached.ratio_curl", ratios["cached, default, --verify=off"])
    result("link.cached_off.ratio_curl", ratios["cached, --check=off, --verify=off"])
    result("link.cached_auto.ratio_curl", ratios["cached, defaults"])
    result("link.floor_ratio_curl", 1 + ratios[PYTHON_START])
    result("link.kernel_check_cpu_ms", cpu * 1000)
    for label, key in (("default, --verify=off", "off"), ("default (--verify=auto)", "auto")):
        result(f"link.rtt_before_body.{key}", counts[label][1])
        result(f"link.requests_before_body.{key}", counts[label][0])
    return 0


if __name__ == "__main__":
    sys.exit(main())
