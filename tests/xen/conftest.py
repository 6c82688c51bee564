"""tests/xen: the real-Xen harness (see README.md here).

test_real_xen.py boots Xen in QEMU and takes minutes: it is collected only
when XENPVNETBOOT_XEN_TEST=1 (``make xen-test`` sets it), so that the unit
suite neither runs nor skips it.  The other tests here are cheap and run
with the unit suite.
"""

from __future__ import annotations

import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
if HERE not in sys.path:
    sys.path.insert(0, HERE)

if os.environ.get("XENPVNETBOOT_XEN_TEST") != "1":
    collect_ignore = ["test_real_xen.py"]


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    """The per-scenario times of a real-Xen run, after the test results."""
    run = getattr(config, "xenpvnetboot_xen_run", None)
    if run is None:
        return
    from realxen.run import format_summary

    terminalreporter.section("real Xen")
    for line in format_summary(run):
        terminalreporter.write_line(line)
