"""``--check``: inspect the fetched kernel and ramdisk before libxl gets them.

The kernel inspection (decompressing up to its Xen notes: about 0.4 s for a
Debian kernel) starts in a thread as soon as the kernel's last byte arrives,
so it overlaps the download of the larger ramdisk.  With ``warn`` (the
default) only the start of the ramdisk is read; ``strict`` decompresses all of
it, to catch a file cut short on the server, and refuses to boot on any
problem.
"""

from __future__ import annotations

import threading
from typing import Dict, Optional, Tuple

from .errors import BootError
from .transports import Sink
from .ui import UI


#: Modules the inspector imports on demand; loaded up front for a --runas child,
#: which may not be able to read the Python installation any more.
OPTIONAL_MODULES = ("zstandard", "lz4.block", "lz4.frame", "isal.isal_zlib")


def preload() -> None:
    import importlib

    from . import bootcheck  # noqa: F401

    for name in OPTIONAL_MODULES:
        try:
            importlib.import_module(name)
        except ImportError:
            pass


class BootChecker:
    """Runs the inspection for one boot and reports it through *ui*."""

    def __init__(self, policy: str, guest_type: str, arch: Optional[str], ui: UI) -> None:
        self.policy = policy
        self.guest_type = guest_type
        self.arch = arch
        self.ui = ui
        self._early: Dict[str, object] = {}
        self._thread: Optional[threading.Thread] = None

    @property
    def enabled(self) -> bool:
        return self.policy != "off"

    def kernel_complete(self, sink: Sink, fd: int) -> None:
        """Start inspecting the kernel now that all of it is on disk."""
        if not self.enabled:
            return
        from .bootcheck import inspect_kernel

        sink.fileobj.flush()

        def run() -> None:
            try:
                self._early["kernel"] = inspect_kernel(fd, sink.name)
            except Exception:  # the full check below runs it again and reports
                pass

        self._thread = threading.Thread(target=run, name="kernel-check", daemon=True)
        self._thread.start()

    def check(self, kernel: Tuple[int, str], ramdisk: Optional[Tuple[int, str]] = None) -> None:
        """Report problems (and details with -v); raise under ``strict``."""
        if not self.enabled:
            return
        from .bootcheck import check_boot_files

        if self._thread is not None:
            self._thread.join()
        result = check_boot_files(
            kernel[0], ramdisk[0] if ramdisk else None, guest_type=self.guest_type,
            policy=self.policy, arch=self.arch, kernel_name=kernel[1],
            ramdisk_name=ramdisk[1] if ramdisk else None,
            verify_ramdisk=self.policy == "strict",
            kernel_report=self._early.get("kernel"),  # type: ignore[arg-type]
        )
        for line in result.details:
            self.ui.debug(line)
        for line in result.problems:
            self.ui.warning(line)
        if result.refuse:
            more = len(result.problems) - 1
            raise BootError(result.problems[0] + (f" (and {more} more problems)" if more else "")
                            + "; not booting (--check=strict)")
