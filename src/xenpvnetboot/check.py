"""``--check``: inspect the fetched kernel and ramdisk before libxl gets them.

The kernel inspection decompresses the kernel up to its Xen notes (about
24 MB of xz for a Debian kernel: 0.4 s or more of CPU).  Done after the
download, that would be added to every boot; so each file is inspected
*while it arrives*: its :class:`~.transports.Sink` has a tap
(:class:`LiveInspection`) that publishes the bytes as they reach the output
file, and a thread reads them through the file's own descriptor, waiting
where it is ahead of the network (:mod:`.bootcheck._growing`).  liblzma and
zlib release the GIL while they work, so on a dom0 with two CPUs the
inspection runs beside the transfer, and is over soon after the last byte.
A file whose size is not announced is inspected once it is complete, as is
a ramdisk that ``--initrd-inject`` changes after its download.

With ``warn`` (the default) only the start of the ramdisk is read;
``strict`` decompresses all of it, to catch a file cut short on the server,
and refuses to boot on any problem.  A file the shared cache already holds
with its report (see :mod:`.cache`) is not inspected again.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, BinaryIO, Callable, Dict, Optional, Tuple, Union

from .errors import BootError
from .transports import Sink
from .ui import UI

if TYPE_CHECKING:
    from .bootcheck import CheckResult, KernelReport, RamdiskReport
    from .bootcheck._growing import Arrivals
    from .cache import Entry

    Report = Union[KernelReport, RamdiskReport]


#: Modules the inspector imports on demand; loaded up front for a --runas child,
#: which may not be able to read the Python installation any more.
OPTIONAL_MODULES = ("zstandard", "lz4.block", "lz4.frame", "isal.isal_zlib")
#: Bytes written between two publications to the inspecting thread: the
#: output file's buffer size (boot.WRITE_BUFFER), so the tap adds no write.
PUBLISH_STEP = 1 << 20


def preload() -> None:
    """Import the check and its decompressors now (see :mod:`xenpvnetboot.preloading`)."""
    from . import bootcheck  # noqa: F401
    from .bootcheck import _growing, _wire  # noqa: F401  (the live check, the kept reports)
    from .preloading import import_optional

    import_optional(OPTIONAL_MODULES)


class LiveInspection:
    """Inspects one file on a thread while a :class:`Sink` writes it (a ``SinkTap``).

    *inspect* is given the file (a view of *read_fd* that waits for its
    bytes) and its announced size.  The thread starts at the first write
    after the size is known; a rewind abandons it and starts again from the
    first byte.  :meth:`result` is the report, or None when there is none
    for the complete file (the caller then inspects the file as it is).
    """

    def __init__(self, read_fd: int, inspect: Callable[[Tuple[BinaryIO, int]], "Report"]) -> None:
        self._fd = read_fd
        self._inspect = inspect
        self._arrivals: Optional["Arrivals"] = None
        self._thread: Optional[threading.Thread] = None
        self._published = 0
        self._box: Dict[str, "Report"] = {}
        #: The inspection read all it needed: the tap has nothing more to do.
        self._finished = False

    def wrote(self, sink: Sink) -> None:
        if self._finished:
            return
        if self._arrivals is None:
            if sink.expected is None:
                return
            self._start(sink.expected)
        assert self._arrivals is not None
        if sink.written - self._published >= PUBLISH_STEP or sink.written >= self._arrivals.size:
            try:
                sink.fileobj.flush()
            except OSError:  # the Sink's next write fails and says why; a Sink never raises
                self.abandon()
                return
            self._published = sink.written
            self._arrivals.publish(sink.written)

    def rewound(self, sink: Sink) -> None:
        self.abandon()
        self._arrivals, self._thread, self._published = None, None, 0
        self._box, self._finished = {}, False

    def _start(self, size: int) -> None:
        from .bootcheck import _growing

        arrivals = self._arrivals = _growing.Arrivals(size)
        box = self._box

        def run() -> None:
            try:
                box["report"] = self._inspect((_growing.growing_file(self._fd, arrivals), size))
            except BaseException:  # abandoned, or a bug: the file is inspected again
                pass
            finally:
                if self._arrivals is arrivals:
                    self._finished = True

        self._thread = threading.Thread(target=run, name="live-check", daemon=True)
        self._thread.start()

    def abandon(self) -> None:
        """The transfer failed: wake the thread and let it stop."""
        if self._arrivals is not None:
            self._arrivals.abandon()

    def wait(self, timeout: float) -> bool:
        """Wait at most *timeout* s for the inspection; whether it read all it needed."""
        if self._thread is not None:
            self._thread.join(timeout)
        return self._finished

    def result(self) -> Optional["Report"]:
        """The report of the complete file, once the thread is done; None if there is none."""
        if self._thread is None or self._arrivals is None or self._arrivals.abandoned:
            return None
        # The download is over: what the file holds is all it will hold (a
        # file shorter than announced ends the inspection without a report).
        self._arrivals.publish(self._arrivals.size)
        self._thread.join()
        return self._box.get("report")


class BootChecker:
    """Runs the inspection for one boot and reports it through *ui*."""

    def __init__(self, policy: str, guest_type: str, arch: Optional[str], ui: UI) -> None:
        self.policy = policy
        self.guest_type = guest_type
        self.arch = arch
        self.ui = ui
        self._live: Dict[str, LiveInspection] = {}
        self._known: Dict[str, "Report"] = {}

    @property
    def enabled(self) -> bool:
        return self.policy != "off"

    def verdict_kind(self, role: str) -> str:
        """What a stored report of *role* must have been made for: the ramdisk
        is read to its end only under ``strict``."""
        if role == "ramdisk":
            return "ramdisk-full" if self.policy == "strict" else "ramdisk-head"
        return role

    def keeps(self, role: str) -> bool:
        """Whether *role*'s report is worth keeping in the cache: the kernel's
        (decompressing it is what the check costs), the ramdisk's only under
        ``strict`` (``warn`` reads its first kilobytes again in no time)."""
        return self.enabled and (role == "kernel" or self.policy == "strict")

    def tap(self, role: str, read_fd: int, name: str) -> Optional[LiveInspection]:
        """A tap that inspects *role* (``kernel`` or ``ramdisk``) while it downloads."""
        if not self.enabled or role in self._known:
            return None
        from .bootcheck import inspect_kernel, inspect_ramdisk

        inspect: Callable[[Tuple[BinaryIO, int]], "Report"]
        if role == "kernel":
            def inspect(opened: Tuple[BinaryIO, int]) -> "Report":
                return inspect_kernel(read_fd, name, opened)
        else:
            full = self.policy == "strict"

            def inspect(opened: Tuple[BinaryIO, int]) -> "Report":
                return inspect_ramdisk(read_fd, name, full, opened)
        live = self._live[role] = LiveInspection(read_fd, inspect)
        return live

    def recall(self, role: str, entry: "Entry", digest: Optional[str], read_fd: int,
               name: str) -> None:
        """Take *role*'s report from its cache *entry*, if one was kept for its
        bytes, whose SHA-256 is *digest*."""
        if not self.enabled or digest is None:
            return
        from .bootcheck import KernelReport, RamdiskReport
        from .bootcheck._wire import report_from_wire

        wire = entry.verdict(self.verdict_kind(role), digest)
        kind = KernelReport if role == "kernel" else RamdiskReport
        report = report_from_wire(wire, kind, read_fd, name) if wire is not None else None
        if report is not None:
            self._known[role] = report
            self.ui.debug(f"{role} {name}: checked already by a boot of the same bytes "
                          f"(SHA-256 {digest})")

    def remember(self, result: Optional["CheckResult"],
                 kept: Dict[str, Tuple["Entry", Optional[str]]]) -> None:
        """Keep the reports of *result* with the cache entries *kept* (role ->
        entry, digest of the bytes checked) for the next boot of the same bytes.

        Only complete answers are kept: a report that could not look at
        everything it wanted (a missing module, a bound of work, a read
        error) may come out otherwise next time.  The start of a ramdisk,
        all that ``warn`` reads, costs nothing to read again.
        """
        if result is None:
            return
        from .bootcheck._wire import report_to_wire

        for role, (entry, digest) in kept.items():
            report = result.kernel if role == "kernel" else result.ramdisk
            if (report is None or digest is None or role in self._known or report.not_checked
                    or any(fault.startswith("cannot be read") for fault in report.faults)):
                continue
            try:
                entry.keep_verdict(self.verdict_kind(role), digest, report_to_wire(report))
            except OSError:  # the cache only saves time
                pass

    def abandon(self) -> None:
        """The boot failed: stop the inspections still waiting for bytes."""
        for live in self._live.values():
            live.abandon()

    def _report(self, role: str) -> Optional["Report"]:
        if role in self._known:
            return self._known[role]
        live = self._live.get(role)
        return live.result() if live is not None else None

    def check(self, kernel: Tuple[int, str],
              ramdisk: Optional[Tuple[int, str]] = None) -> Optional["CheckResult"]:
        """Report problems (and details with -v); raise under ``strict``.

        Returns the result (its reports, to keep in the cache), None when off.
        """
        if not self.enabled:
            return None
        from .bootcheck import check_boot_files

        result = check_boot_files(
            kernel[0], ramdisk[0] if ramdisk else None, guest_type=self.guest_type,
            policy=self.policy, arch=self.arch, kernel_name=kernel[1],
            ramdisk_name=ramdisk[1] if ramdisk else None,
            verify_ramdisk=self.policy == "strict",
            kernel_report=self._report("kernel"),  # type: ignore[arg-type]
            ramdisk_report=self._report("ramdisk") if ramdisk else None,  # type: ignore[arg-type]
        )
        for line in result.details:
            self.ui.debug(line)
        for line in result.problems:
            self.ui.warning(line)
        if result.refuse:
            more = len(result.problems) - 1
            raise BootError(result.problems[0] + (f" (and {more} more problems)" if more else "")
                            + "; not booting (--check=strict)")
        return result
