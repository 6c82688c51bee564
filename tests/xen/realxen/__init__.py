"""The real-Xen harness: Xen 4.17 in QEMU, real libxl, our bootloader, real guests.

See tests/xen/README.md.  ``scenarios`` says what runs, ``prepare`` makes the
images (``media`` the guests' trees, ``steps`` the tools of both), ``servers`` serves the guest media, ``machine`` boots Xen once for a
whole job, ``judge`` reads the verdicts from what dom0 recorded, ``run``
puts it together.
"""

import os
import sys

#: tests/, for the test suite's servers and helpers (support/).
TESTS_DIR = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
if TESTS_DIR not in sys.path:
    sys.path.insert(0, TESTS_DIR)
