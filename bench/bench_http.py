#!/usr/bin/env python3
"""HTTP: xenpvnetboot against curl, whole-process wall time, real Debian pair.

Serves the Debian 12 installer kernel + initrd (48 MB) from nginx on loopback
and times ``xenpvnetboot`` fetching both (as libxl runs it, without the
cache), with the default ``--check=warn`` and with ``--check=off``, against
one ``curl`` process fetching the same two URLs.  Prints medians and the
ratios, then ``RESULT http.<check>.ratio_curl=...`` lines.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import CURL, Nginx, boot_vs_curl, debian_tree, ratio, result  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=7)
    opts = parser.parse_args()
    work = tempfile.mkdtemp(prefix="bench-http.")
    try:
        root = os.path.join(work, "srv")
        debian_tree(root)
        server = Nginx(root)
        try:
            print(f"HTTP, Debian 12 installer pair (48 MB) from nginx, {opts.runs} runs:")
            times, _ = boot_vs_curl(server.url(), work, opts.runs)
        finally:
            server.stop()
        for check in ("off", "warn"):
            result(f"http.{check}.ratio_curl", ratio(times, f"--check={check}", CURL))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
