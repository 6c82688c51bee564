#!/usr/bin/env python3
"""HTTP: xenpvnetboot against curl, whole-process wall time, real Debian pair.

Serves the Debian 12 installer kernel + initrd (48 MB) from nginx on loopback
and times ``xenpvnetboot`` fetching both (as libxl runs it) against one
``curl`` process fetching the same two URLs.  Prints medians and the ratio.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import XENPVNETBOOT, Nginx, alternate, debian_pair, report, time_command  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=7)
    opts = parser.parse_args()
    kernel, initrd = debian_pair()
    work = tempfile.mkdtemp(prefix="bench-http.")
    try:
        root = os.path.join(work, "srv")
        xen = os.path.join(root, "current/images/netboot/xen")
        os.makedirs(xen)
        shutil.copy(kernel, os.path.join(xen, "vmlinuz"))
        shutil.copy(initrd, os.path.join(xen, "initrd.gz"))
        server = Nginx(root)
        out = os.path.join(work, "out")
        os.makedirs(out)

        def ours() -> float:
            elapsed = time_command(XENPVNETBOOT + [
                f"--location={server.url()}", f"--output-directory={out}",
                f"--output={work}/result", "--output-format=simple0", "-q", "/dev/null"])
            for name in os.listdir(out):
                os.unlink(os.path.join(out, name))
            return elapsed

        def curl() -> float:
            elapsed = time_command([
                "curl", "-sSf", "-o", f"{out}/k", server.url("current/images/netboot/xen/vmlinuz"),
                "-o", f"{out}/r", server.url("current/images/netboot/xen/initrd.gz")])
            for name in os.listdir(out):
                os.unlink(os.path.join(out, name))
            return elapsed

        print(f"HTTP, Debian 12 installer pair (48 MB) from nginx, {opts.runs} runs:")
        times = alternate({"curl (2 files, one process)": curl, "xenpvnetboot": ours}, opts.runs)
        report(times, "curl (2 files, one process)")
        server.stop()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
