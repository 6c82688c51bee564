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
from typing import Callable, Dict, List, NamedTuple, Optional, Protocol, Sequence, Tuple

DEBIAN_DI = "/usr/lib/debian-installer/images/12/amd64/text/debian-installer/amd64"
XENPVNETBOOT = [sys.executable, "-m", "xenpvnetboot"]
#: Where the benchmarks lay out the Debian pair below a server's root (a
#: Debian mirror's netboot directory, which the Debian layout recognises).
DEBIAN_TREE = "current/images/netboot/xen"
TREE_FILES = ("vmlinuz", "initrd.gz")
CURL = "curl (2 files, one process)"
PYTHON_START = "python3 -c pass (start-up alone)"
#: The --check modes the benchmarks compare: none, and the default.
CHECKS = ("off", "warn")
GNU_TIME = "/usr/bin/time"
#: Timed commands run with their bytecode cached, as an installed package has
#: it, even where PYTHONDONTWRITEBYTECODE is set: in a directory of its own
#: (PYTHONPYCACHEPREFIX), filled by the warm-up round, not in the source tree.
BENCH_ENV = {key: value for key, value in os.environ.items() if key != "PYTHONDONTWRITEBYTECODE"}
BENCH_ENV["PYTHONPYCACHEPREFIX"] = os.path.join(tempfile.gettempdir(), "xenpvnetboot-bench-pycache")
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


class Server(Protocol):
    """What the benchmarks need of a server: its URL, and a way to stop it."""

    def url(self, path: str = "") -> str: ...

    def stop(self) -> None: ...


class Request(NamedTuple):
    """One line of the access log of an :class:`Nginx` started with ``access_log=True``.

    ``end`` (nginx's ``$msec``: when the response was sent, in seconds),
    ``seconds`` (``$request_time``: from the request's first byte to then)
    and ``connection`` (nginx's serial number of the connection) are only
    known with ``timed=True``: otherwise 0.
    """

    method: str
    uri: str
    status: int
    body_bytes: int
    end: float = 0.0
    seconds: float = 0.0
    connection: int = 0

    @property
    def start(self) -> float:
        """When nginx read the request's first byte (millisecond resolution)."""
        return self.end - self.seconds


class Nginx:
    """nginx serving *root* on a loopback port (Debian package nginx).

    With *access_log*, every request is logged as ``method uri status
    $body_bytes_sent`` (read back with :meth:`requests`), with *timed* also
    ``$msec $request_time $connection``; *limit_rate* (nginx syntax, e.g.
    ``12500k``) caps each connection's rate, to stand for a slower network
    than loopback.  *host*/*port* choose another address, *prefix* runs nginx
    through a command (``ip netns exec NS``) and *ready* replaces the wait
    for its port on 127.0.0.1 (which another namespace cannot see).
    """

    def __init__(self, root: str, access_log: bool = False, limit_rate: str = "",
                 host: str = "127.0.0.1", port: int = 0, prefix: Sequence[str] = (),
                 timed: bool = False, ready: Optional[Callable[["Nginx"], None]] = None) -> None:
        self.dir = tempfile.mkdtemp(prefix="bench-nginx.")
        self.host = host
        self.port = port or free_port()
        self.log = os.path.join(self.dir, "access.log")
        conf = os.path.join(self.dir, "nginx.conf")
        fields = "$request_method $uri $status $body_bytes_sent"
        fields += " $msec $request_time $connection" if timed else ""
        logging = (f"log_format bench '{fields}'; "
                   f"access_log {self.log} bench;" if access_log else "access_log off;")
        rate = f" limit_rate {limit_rate};" if limit_rate else ""
        with open(conf, "w") as handle:
            handle.write(
                "user root; worker_processes 1; daemon off; pid %s/nginx.pid;\n"
                "error_log %s/error.log;\n"
                "events { worker_connections 512; }\n"
                "http { %s sendfile on; tcp_nopush on; keepalive_timeout 30;%s\n"
                "  client_body_temp_path %s; proxy_temp_path %s; fastcgi_temp_path %s;\n"
                "  uwsgi_temp_path %s; scgi_temp_path %s;\n"
                "  server { listen %s:%d; root %s; disable_symlinks off; } }\n"
                % ((self.dir,) * 2 + (logging, rate) + (self.dir,) * 5 + (host, self.port, root))
            )
        nginx = shutil.which("nginx") or "/usr/sbin/nginx"
        self.proc = subprocess.Popen([*prefix, nginx, "-c", conf, "-p", self.dir],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        if ready is None:
            wait_port(self.port)
        else:
            ready(self)

    def url(self, path: str = "") -> str:
        return f"http://{self.host}:{self.port}/{path.lstrip('/')}"

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
            method, uri, status, sent, *timing = line.split()
            extra = (float(timing[0]), float(timing[1]), int(timing[2])) if timing else ()
            found.append(Request(method, uri, int(status), int(sent), *extra))
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


def time_command(argv: Sequence[str], env: Optional[Dict[str, str]] = None) -> float:
    """Wall time of *argv* (which must succeed), by default in BENCH_ENV."""
    start = time.perf_counter()
    subprocess.run(list(argv), check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                   env=BENCH_ENV if env is None else env)
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


def _hwm_kib(pid: int) -> int:
    """The peak RSS so far (VmHWM, KiB) of a live process; 0 once it is gone."""
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return 0


def _children(pid: int) -> List[int]:
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as handle:
            return [int(word) for word in handle.read().split()]
    except (OSError, ValueError):
        return []


def time_and_tree_rss(argv: Sequence[str], interval: float = 0.005
                      ) -> Tuple[float, int, Dict[str, int]]:
    """Wall time, the peak RSS of the process tree and that of each of its processes.

    The tree's figure is the kernel's (``ru_maxrss`` of wait4, the largest of
    the process and its waited-for descendants: what GNU time prints).  The
    per-process figures (KiB) sample each process's VmHWM every *interval*
    seconds: ``parent`` for *argv*'s process, ``worker`` for the largest of
    its descendants (our boot's worker).  A peak reached in a process's last
    *interval* before it exits is missed by the sampling, not by the tree's.
    """
    peaks = {"parent": 0, "worker": 0}
    start = time.perf_counter()
    proc = subprocess.Popen(list(argv), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            env=BENCH_ENV)
    while True:
        waited, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if waited:
            break
        peaks["parent"] = max(peaks["parent"], _hwm_kib(proc.pid))
        pending = _children(proc.pid)
        while pending:
            pid = pending.pop()
            peaks["worker"] = max(peaks["worker"], _hwm_kib(pid))
            pending += _children(pid)
        time.sleep(interval)
    elapsed = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise subprocess.CalledProcessError(proc.returncode, list(argv))
    return elapsed, usage.ru_maxrss, peaks


def clear_dir(path: str) -> None:
    for name in os.listdir(path):
        os.unlink(os.path.join(path, name))


class Command:
    """A contender for :func:`alternate`: runs *argv*, empties *out*, returns the wall time.

    With *rss* the command runs under GNU time and each run's peak RSS (KiB)
    is kept in :attr:`peaks`; with *per_process* as well, without GNU time,
    and each run's peaks per process go to :attr:`process_peaks` (see
    :func:`time_and_tree_rss`).  *env* replaces BENCH_ENV (not with *rss*).
    """

    def __init__(self, argv: Sequence[str], out: Optional[str] = None, rss: bool = False,
                 env: Optional[Dict[str, str]] = None, per_process: bool = False) -> None:
        self.argv = list(argv)
        self.out = out
        self.rss = rss
        self.env = env
        self.per_process = per_process
        self.peaks: List[int] = []
        self.process_peaks: List[Dict[str, int]] = []

    def __call__(self) -> float:
        if self.per_process:
            elapsed, peak, each = time_and_tree_rss(self.argv)
            self.peaks.append(peak)
            self.process_peaks.append(each)
        elif self.rss:
            elapsed, peak = time_and_rss(self.argv)
            self.peaks.append(peak)
        else:
            elapsed = time_command(self.argv, self.env)
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


def tmpfs_dir(path: str) -> bool:
    """True if *path* is the mount point of a tmpfs."""
    with open("/proc/mounts") as mounts:
        return any(line.split()[1:3] == [path, "tmpfs"] for line in mounts)


def output_dir(work: str, room: int = 256 << 20, parent: str = "") -> str:
    """A new directory for the fetched files, below *parent* if given.

    Else below /dev/shm when it is a tmpfs with *room* bytes free, as libxl's
    /var/run/libxl is on Debian (on ext4, renaming a file over another makes
    the kernel flush it first: a cost a tmpfs output never has), else below
    *work*.  The caller removes it.
    """
    if not parent:
        usable = tmpfs_dir("/dev/shm") and shutil.disk_usage("/dev/shm").free > room + (256 << 20)
        parent = "/dev/shm" if usable else work
    return tempfile.mkdtemp(prefix="bench-out.", dir=parent)


def boot_vs_curl(base_url: str, work: str, runs: int, checks: Sequence[str] = CHECKS,
                 rss: bool = False, options: Sequence[str] = (),
                 out: Optional[str] = None) -> Tuple[Dict[str, List[float]], Dict[str, Command]]:
    """Alternate curl fetching the Debian tree's two files with our boot, once per --check.

    *base_url* serves :data:`DEBIAN_TREE`; the files land in *out* (default:
    a fresh :func:`output_dir`, removed at the end), emptied after each run.  The
    interpreter's start-up alone (:data:`PYTHON_START`) runs in the same
    rounds: curl's time plus it is as fast as any Python bootloader can be.
    Prints medians and ratios; returns the times and the contenders (labels:
    :data:`CURL`, :data:`PYTHON_START` and ``--check=<mode>``).
    """
    own = out is None
    out = output_dir(work) if out is None else out
    print(f"  (files written below {os.path.dirname(out)})")
    result_file = os.path.join(work, "result")
    urls = [f"{base_url.rstrip('/')}/{DEBIAN_TREE}/{name}" for name in TREE_FILES]
    contenders = {CURL: Command(curl_argv(urls, out), out, rss),
                  PYTHON_START: Command([sys.executable, "-c", "pass"], None, rss)}
    for check in checks:
        contenders[f"--check={check}"] = Command(
            boot_argv(base_url, out, result_file, "--no-cache", f"--check={check}", *options),
            out, rss, per_process=rss)
    try:
        times = alternate(contenders, runs)  # type: ignore[arg-type]
    finally:
        if own:
            shutil.rmtree(out, ignore_errors=True)
    report(times, CURL)
    print(f"  floor for a Python process: (curl + start-up) / curl = {floor_ratio(times):.2f}x")
    if rss:
        for name, command in contenders.items():
            print(f"  {name:40s} peak RSS median {median(command.peaks) / 1024:6.1f} MiB "
                  f"(max {max(command.peaks) / 1024:.1f})")
            for role in ("parent", "worker"):
                if command.process_peaks:
                    peaks = [each[role] for each in command.process_peaks]
                    print(f"    {role:38s} peak RSS median {median(peaks) / 1024:6.1f} MiB "
                          f"(max {max(peaks) / 1024:.1f}, sampled)")
    return times, contenders


def curl_results(name: str, times: Dict[str, List[float]], checks: Sequence[str] = CHECKS) -> None:
    """The RESULT lines of :func:`boot_vs_curl`'s *times*, named ``<name>.*``."""
    for check in checks:
        result(f"{name}.{check}.ratio_curl", ratio(times, f"--check={check}", CURL))
    result(f"{name}.floor_ratio_curl", floor_ratio(times))


def profile_boots(base_url: str, work: str, checks: Sequence[str] = CHECKS,
                  options: Sequence[str] = ()) -> None:
    """Print a cProfile of one boot from *base_url* (no cache) per --check mode."""
    out = tempfile.mkdtemp(prefix="profile.", dir=work)
    for check in checks:
        print(f"cProfile of one boot, --check={check} (main thread only):")
        print_profile(boot_argv(base_url, out, os.path.join(work, "result"), "--no-cache",
                                f"--check={check}", *options))
    shutil.rmtree(out, ignore_errors=True)


def debian_vs_curl(name: str, title: str, runs: int, profile: bool,
                   serve: Callable[[str, str], "Server"]) -> int:
    """The whole benchmark of bench_http.py and bench_ftp.py: lays out the Debian
    pair below a temporary directory, serves it with ``serve(root, work)``,
    runs :func:`boot_vs_curl` (and :func:`profile_boots` with *profile*) and
    prints the RESULT lines named ``<name>.*``."""
    work = tempfile.mkdtemp(prefix=f"bench-{name}.")
    try:
        os.chmod(work, 0o755)  # for servers that drop privileges (vsftpd)
        root = os.path.join(work, "srv")
        debian_tree(root)
        server = serve(root, work)
        try:
            print(f"{title}, Debian 12 installer pair (48 MB), {runs} runs:")
            times, _ = boot_vs_curl(server.url(), work, runs)
            if profile:
                profile_boots(server.url(), work)
        finally:
            server.stop()
        curl_results(name, times)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


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


def paired_ratio(times: Dict[str, List[float]], name: str, reference: str) -> float:
    """Median of the per-round ratios *name* / *reference* of :func:`alternate`'s times.

    Both ran in the same round, one just after the other, so a slow moment
    of a busy machine weighs on both sides of each ratio.
    """
    return median([mine / theirs for mine, theirs in zip(times[name], times[reference])])


def prepared_cache(path: str, size: int = 4 << 30) -> str:
    """*path* made (again) a cache directory the way an administrator prepares one.

    A boot uses only such a directory (see xenpvnetboot.cachedir): an
    emptied or new one must be prepared before it caches anything.
    """
    from xenpvnetboot.cachedir import init_cache

    shutil.rmtree(path, ignore_errors=True)
    init_cache(path, size)
    return path


def floor_ratio(times: Dict[str, List[float]]) -> float:
    """(curl + interpreter start-up) / curl, from the times of :func:`boot_vs_curl`."""
    return 1 + ratio(times, PYTHON_START, CURL)


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
        subprocess.run([sys.executable, "-m", "cProfile", "-o", stats_file.name,
                        *argv[len(XENPVNETBOOT) - 2:]], check=True, stdout=subprocess.DEVNULL,
                       env=BENCH_ENV)
        stats = pstats.Stats(stats_file.name, stream=sys.stdout)
        stats.strip_dirs().sort_stats(sort).print_stats(top)
