"""Shared benchmark helpers: the real Debian files, servers, alternating timings.

This machine is noisy, so absolute times mean little: every benchmark times our
tool and a reference tool in alternating runs within one process and reports
the ratio of medians.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Callable, Dict, List, Sequence

DEBIAN_DI = "/usr/lib/debian-installer/images/12/amd64/text/debian-installer/amd64"
XENPVNETBOOT = [sys.executable, "-m", "xenpvnetboot"]


def debian_pair() -> tuple:
    kernel = os.path.join(DEBIAN_DI, "linux")
    initrd = os.path.join(DEBIAN_DI, "initrd.gz")
    if not os.path.isfile(kernel):
        sys.exit("needs the Debian package debian-installer-12-netboot-amd64")
    return kernel, initrd


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


class Nginx:
    """nginx serving *root* on a loopback port (Debian package nginx)."""

    def __init__(self, root: str) -> None:
        self.dir = tempfile.mkdtemp(prefix="bench-nginx.")
        self.port = free_port()
        conf = os.path.join(self.dir, "nginx.conf")
        with open(conf, "w") as handle:
            handle.write(
                "user root; worker_processes 1; daemon off; pid %s/nginx.pid; error_log %s/error.log;\n"
                "events { worker_connections 64; }\n"
                "http { access_log off; sendfile on; tcp_nopush on; keepalive_timeout 30;\n"
                "  client_body_temp_path %s; proxy_temp_path %s; fastcgi_temp_path %s;\n"
                "  uwsgi_temp_path %s; scgi_temp_path %s;\n"
                "  server { listen 127.0.0.1:%d; root %s; disable_symlinks off; } }\n"
                % ((self.dir,) * 7 + (self.port, root))
            )
        nginx = shutil.which("nginx") or "/usr/sbin/nginx"
        self.proc = subprocess.Popen([nginx, "-c", conf, "-p", self.dir],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_port(self.port)

    def url(self, path: str = "") -> str:
        return f"http://127.0.0.1:{self.port}/{path.lstrip('/')}"

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


def alternate(contenders: Dict[str, Callable[[], float]], runs: int) -> Dict[str, List[float]]:
    """Run each contender once per round, in turn, *runs* rounds (after one warm-up)."""
    for measure in contenders.values():
        measure()
    times: Dict[str, List[float]] = {name: [] for name in contenders}
    for _ in range(runs):
        for name, measure in contenders.items():
            times[name].append(measure())
    return times


def report(times: Dict[str, List[float]], reference: str) -> Dict[str, float]:
    """Print medians and ratios against *reference*; return the ratios."""
    ref = statistics.median(times[reference])
    ratios = {}
    for name, values in times.items():
        med = statistics.median(values)
        ratios[name] = med / ref
        print(f"  {name:40s} median {med * 1000:8.1f} ms   ratio {med / ref:5.2f}x {reference}")
    return ratios
