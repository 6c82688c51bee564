"""Shared benchmark helpers: the real Debian files, servers, alternating timings.

This machine is noisy, so absolute times mean little: every benchmark times our
tool and a reference tool in alternating runs within one process and reports
the ratio of medians.  Each script ends with machine-readable lines
``RESULT name=value`` (see :func:`result`), which ``run_all.py`` collects.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Callable, Dict, List, NamedTuple, Optional, Sequence, Tuple

DEBIAN_DI = "/usr/lib/debian-installer/images/12/amd64/text/debian-installer/amd64"
XENPVNETBOOT = [sys.executable, "-m", "xenpvnetboot"]
#: Where the benchmarks lay out the Debian pair below a server's root (a
#: Debian mirror's netboot directory, which the Debian layout recognises).
DEBIAN_TREE = "current/images/netboot/xen"
TREE_FILES = ("vmlinuz", "initrd.gz")
CURL = "curl (2 files, one process)"
GNU_TIME = "/usr/bin/time"
_RESULT = re.compile(r"^RESULT ([A-Za-z0-9_.-]+)=(\S+)$")
_MAXRSS = re.compile(r"Maximum resident set size \(kbytes\):\s*(\d+)")


def debian_pair() -> tuple:
    kernel = os.path.join(DEBIAN_DI, "linux")
    initrd = os.path.join(DEBIAN_DI, "initrd.gz")
    if not os.path.isfile(kernel):
        sys.exit("needs the Debian package debian-installer-12-netboot-amd64")
    return kernel, initrd


def debian_tree(root: str) -> str:
    """Copy the Debian pair to DEBIAN_TREE below *root* (as TREE_FILES); return that directory."""
    directory = os.path.join(root, DEBIAN_TREE)
    os.makedirs(directory, exist_ok=True)
    for name, source in zip(TREE_FILES, debian_pair()):
        shutil.copyfile(source, os.path.join(directory, name))
    return directory


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_port(port: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError(f"nothing listening on port {port}")


class Request(NamedTuple):
    """One line of the access log of an :class:`Nginx` started with ``access_log=True``."""

    method: str
    uri: str
    status: int
    body_bytes: int


class Nginx:
    """nginx serving *root* on a loopback port (Debian package nginx).

    With *access_log*, every request is logged as ``method uri status
    $body_bytes_sent`` (read back with :meth:`requests`); *limit_rate* (nginx
    syntax, e.g. ``12500k``) caps each connection's rate, to stand for a
    slower network than loopback.
    """

    def __init__(self, root: str, access_log: bool = False, limit_rate: str = "") -> None:
        self.dir = tempfile.mkdtemp(prefix="bench-nginx.")
        self.port = free_port()
        self.log = os.path.join(self.dir, "access.log")
        conf = os.path.join(self.dir, "nginx.conf")
        logging = (f"log_format bench '$request_method $uri $status $body_bytes_sent'; "
                   f"access_log {self.log} bench;" if access_log else "access_log off;")
        rate = f" limit_rate {limit_rate};" if limit_rate else ""
        with open(conf, "w") as handle:
            handle.write(
                "user root; worker_processes 1; daemon off; pid %s/nginx.pid; error_log %s/error.log;\n"
                "events { worker_connections 512; }\n"
                "http { %s sendfile on; tcp_nopush on; keepalive_timeout 30;%s\n"
                "  client_body_temp_path %s; proxy_temp_path %s; fastcgi_temp_path %s;\n"
                "  uwsgi_temp_path %s; scgi_temp_path %s;\n"
                "  server { listen 127.0.0.1:%d; root %s; disable_symlinks off; } }\n"
                % ((self.dir,) * 2 + (logging, rate) + (self.dir,) * 5 + (self.port, root))
            )
        nginx = shutil.which("nginx") or "/usr/sbin/nginx"
        self.proc = subprocess.Popen([nginx, "-c", conf, "-p", self.dir],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_port(self.port)

    def url(self, path: str = "") -> str:
        return f"http://127.0.0.1:{self.port}/{path.lstrip('/')}"

    def requests(self, since: int = 0, settle: float = 0.0) -> List[Request]:
        """Logged requests from number *since* on.

        nginx logs a request once its response is sent, which may be a moment
        after the client has it all: with *settle*, wait until the log has
        stopped growing for that long.
        """
        lines = self._log_lines()
        while settle:
            time.sleep(settle)
            again = self._log_lines()
            if len(again) == len(lines):
                break
            lines = again
        found = []
        for line in lines[since:]:
            method, uri, status, sent = line.split()
            found.append(Request(method, uri, int(status), int(sent)))
        return found

    def _log_lines(self) -> List[str]:
        try:
            with open(self.log) as handle:
                return handle.read().splitlines()
        except FileNotFoundError:
            return []

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGQUIT)
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        shutil.rmtree(self.dir, ignore_errors=True)


def time_command(argv: Sequence[str], env: Dict[str, str] = None) -> float:
    start = time.perf_counter()
    subprocess.run(list(argv), check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                   env=env)
    return time.perf_counter() - start


def parse_max_rss(text: str) -> int:
    """Peak RSS in KiB from the report of ``/usr/bin/time -v``."""
    match = _MAXRSS.search(text)
    if match is None:
        raise ValueError("no 'Maximum resident set size' in the report of /usr/bin/time -v")
    return int(match.group(1))


def time_and_rss(argv: Sequence[str]) -> Tuple[float, int]:
    """Wall time and peak RSS (KiB, from GNU time -v, Debian package time) of *argv*."""
    if not os.access(GNU_TIME, os.X_OK):
        sys.exit(f"needs {GNU_TIME} (Debian package time)")
    with tempfile.NamedTemporaryFile("r", prefix="bench-time.") as report_file:
        elapsed = time_command([GNU_TIME, "-v", "-o", report_file.name] + list(argv))
        return elapsed, parse_max_rss(report_file.read())


def clear_dir(path: str) -> None:
    for name in os.listdir(path):
        os.unlink(os.path.join(path, name))


class Command:
    """A contender for :func:`alternate`: runs *argv*, empties *out*, returns the wall time.

    With *rss* the command runs under GNU time and each run's peak RSS (KiB)
    is kept in :attr:`peaks`.
    """

    def __init__(self, argv: Sequence[str], out: Optional[str] = None, rss: bool = False) -> None:
        self.argv = list(argv)
        self.out = out
        self.rss = rss
        self.peaks: List[int] = []

    def __call__(self) -> float:
        if self.rss:
            elapsed, peak = time_and_rss(self.argv)
            self.peaks.append(peak)
        else:
            elapsed = time_command(self.argv)
        if self.out is not None:
            clear_dir(self.out)
        return elapsed


def boot_argv(location: str, out: str, result_file: str, *options: str) -> List[str]:
    """Our command line as libxl runs it (simple0 result, quiet), plus *options*."""
    return XENPVNETBOOT + [f"--location={location}", f"--output-directory={out}",
                           f"--output={result_file}", "--output-format=simple0", "-q",
                           *options, "/dev/null"]


def curl_argv(urls: Sequence[str], out: str) -> List[str]:
    """One curl process fetching every URL of *urls* into *out*."""
    argv = ["curl", "-sSf"]
    for number, url in enumerate(urls):
        argv += ["-o", os.path.join(out, f"file{number}"), url]
    return argv


def boot_vs_curl(base_url: str, work: str, runs: int, checks: Sequence[str] = ("off", "warn"),
                 rss: bool = False, options: Sequence[str] = (),
                 out: Optional[str] = None) -> Tuple[Dict[str, List[float]], Dict[str, Command]]:
    """Alternate curl fetching the Debian tree's two files with our boot, once per --check.

    *base_url* serves :data:`DEBIAN_TREE`; the files land in *out* (default:
    a fresh directory below *work*), emptied after each run.  Prints medians
    and ratios; returns the times and the contenders (labels: :data:`CURL`
    and ``--check=<mode>``).
    """
    if out is None:
        out = tempfile.mkdtemp(prefix="out.", dir=work)
    result_file = os.path.join(work, "result")
    urls = [f"{base_url.rstrip('/')}/{DEBIAN_TREE}/{name}" for name in TREE_FILES]
    contenders = {CURL: Command(curl_argv(urls, out), out, rss)}
    for check in checks:
        contenders[f"--check={check}"] = Command(
            boot_argv(base_url, out, result_file, "--no-cache", f"--check={check}", *options),
            out, rss)
    times = alternate(contenders, runs)  # type: ignore[arg-type]
    report(times, CURL)
    if rss:
        for name, command in contenders.items():
            print(f"  {name:40s} peak RSS median {median(command.peaks) / 1024:6.1f} MiB "
                  f"(max {max(command.peaks) / 1024:.1f})")
    return times, contenders


def alternate(contenders: Dict[str, Callable[[], float]], runs: int) -> Dict[str, List[float]]:
    """Run each contender once per round, in turn, *runs* rounds (after one warm-up)."""
    for measure in contenders.values():
        measure()
    times: Dict[str, List[float]] = {name: [] for name in contenders}
    for _ in range(runs):
        for name, measure in contenders.items():
            times[name].append(measure())
    return times


def median(values: Sequence[float]) -> float:
    return statistics.median(values)


def ratio(times: Dict[str, List[float]], name: str, reference: str) -> float:
    """Median time of *name* over median time of *reference* (below 1: *name* is faster)."""
    return median(times[name]) / median(times[reference])


def report(times: Dict[str, List[float]], reference: str) -> Dict[str, float]:
    """Print medians and ratios against *reference*; return the ratios."""
    ratios = {}
    for name, values in times.items():
        med = median(values)
        ratios[name] = ratio(times, name, reference)
        print(f"  {name:40s} median {med * 1000:8.1f} ms   ratio {ratios[name]:5.2f}x {reference}")
    return ratios


def result(name: str, value: float) -> None:
    """Print the machine-readable line run_all.py collects: ``RESULT name=value``."""
    print(f"RESULT {name}={value:.6g}", flush=True)


def parse_results(text: str) -> Dict[str, float]:
    """The ``RESULT name=value`` lines of a script's output (a later repeat wins)."""
    found = {}
    for line in text.splitlines():
        match = _RESULT.match(line.strip())
        if match:
            found[match.group(1)] = float(match.group(2))
    return found


def print_profile(argv: Sequence[str], top: int = 15, sort: str = "cumulative") -> None:
    """Run ``python -m cProfile`` on our command *argv* (after XENPVNETBOOT); print the top."""
    import pstats

    with tempfile.NamedTemporaryFile(prefix="bench-profile.", suffix=".prof") as stats_file:
        subprocess.run([sys.executable, "-m", "cProfile", "-o", stats_file.name, "-m", "xenpvnetboot",
                        *argv[len(XENPVNETBOOT):]], check=True, stdout=subprocess.DEVNULL)
        stats = pstats.Stats(stats_file.name, stream=sys.stdout)
        stats.strip_dirs().sort_stats(sort).print_stats(top)
