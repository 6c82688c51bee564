#!/usr/bin/env python3
"""HTTP: xenpvnetboot against curl, whole-process wall time, real Debian pair.

Serves the Debian 12 installer kernel + initrd (48 MB) from nginx on loopback
and times ``xenpvnetboot`` fetching both as libxl runs it (no cache; into
/dev/shm when it is a tmpfs, as libxl's /var/run/libxl is), with the default
``--check=warn`` and with ``--check=off``, against one ``curl`` process
fetching the same two URLs, next to the interpreter's start-up alone (curl
plus it is the best a Python bootloader can do).  Prints medians and the
ratios, then ``RESULT http.*`` lines.

    python3 bench/bench_http.py [--runs 7] [--profile]
"""

from __future__ import annotations

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import Nginx, debian_vs_curl  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--profile", action="store_true",
                        help="also print a cProfile of one boot with each --check")
    opts = parser.parse_args()
    return debian_vs_curl("http", "HTTP from nginx", opts.runs, opts.profile,
                          lambda root, work: Nginx(root))


if __name__ == "__main__":
    sys.exit(main())
