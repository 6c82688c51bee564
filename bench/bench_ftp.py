#!/usr/bin/env python3
"""FTP: xenpvnetboot against curl, whole-process wall time, real Debian pair.

Serves the Debian 12 installer kernel + initrd (48 MB) from an anonymous,
read-only FTP server on 127.0.0.1 in a separate process -- vsftpd (Debian
package vsftpd, needs root) or pyftpdlib (``python3 -m pyftpdlib``) -- and
times ``xenpvnetboot --location=ftp://...`` as libxl runs it (no cache; into
/dev/shm when it is a tmpfs, as libxl's /var/run/libxl is), with
``--check=off`` and with the default ``--check=warn``, against one ``curl``
process fetching both files, next to the interpreter's start-up alone (curl
plus it is the best a Python bootloader can do).  Prints medians, ratios and
``RESULT ftp.*`` lines.

On pyftpdlib, curl fetching its second file over the same control
connection often (2 runs in 5 here) waits about a second before its passive
data connection goes through, which makes curl look slow: prefer vsftpd.

    python3 bench/bench_ftp.py [--runs 7] [--server auto|vsftpd|pyftpdlib] [--profile]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import debian_vs_curl, free_port, wait_port  # noqa: E402

VSFTPD = "/usr/sbin/vsftpd"


class FtpServer:
    """An anonymous read-only FTP server on 127.0.0.1 serving *root*, in its own process."""

    def __init__(self, kind: str, root: str, work: str) -> None:
        self.kind = kind
        self.port = free_port()
        self.log = open(os.path.join(work, f"{kind}.log"), "wb")
        if kind == "vsftpd":
            argv = [VSFTPD, self._vsftpd_config(root, work)]
        else:
            argv = [sys.executable, "-m", "pyftpdlib", "-i", "127.0.0.1", "-p", str(self.port),
                    "-d", root]
        self.proc = subprocess.Popen(argv, stdout=self.log, stderr=subprocess.STDOUT)
        try:
            wait_port(self.port)
        except RuntimeError:
            self.stop()
            raise

    def _vsftpd_config(self, root: str, work: str) -> str:
        empty = os.path.join(work, "vsftpd-empty")
        os.makedirs(empty, mode=0o755, exist_ok=True)
        path = os.path.join(work, "vsftpd.conf")
        settings = {
            "listen": "YES", "listen_ipv6": "NO", "listen_address": "127.0.0.1",
            "listen_port": str(self.port), "background": "NO",
            "anonymous_enable": "YES", "no_anon_password": "YES", "anon_root": root,
            "local_enable": "NO", "write_enable": "NO", "pasv_enable": "YES",
            "secure_chroot_dir": empty, "xferlog_enable": "NO", "use_sendfile": "YES",
            "seccomp_sandbox": "NO", "max_clients": "0", "max_per_ip": "0",
        }
        with open(path, "w") as handle:
            handle.writelines(f"{key}={value}\n" for key, value in settings.items())
        return path

    def url(self, path: str = "") -> str:
        return f"ftp://127.0.0.1:{self.port}/{path.lstrip('/')}"

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()


def choose_server(wanted: str) -> str:
    usable = os.access(VSFTPD, os.X_OK) and os.geteuid() == 0
    if wanted == "vsftpd" and not usable:
        sys.exit("needs root and vsftpd (Debian package vsftpd)")
    if wanted == "auto":
        if usable:
            return "vsftpd"
        print("vsftpd not usable (Debian package vsftpd, root): pyftpdlib instead; "
              "curl's runs may then include pyftpdlib's one-second stalls")
        return "pyftpdlib"
    return wanted


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--server", choices=("auto", "vsftpd", "pyftpdlib"), default="auto")
    parser.add_argument("--profile", action="store_true",
                        help="also print a cProfile of one boot with each --check")
    opts = parser.parse_args()
    kind = choose_server(opts.server)
    return debian_vs_curl("ftp", f"FTP from {kind}", opts.runs, opts.profile,
                          lambda root, work: FtpServer(kind, root, work))

if __name__ == "__main__":
    sys.exit(main())
