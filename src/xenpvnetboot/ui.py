"""What the administrator sees on the guest console and in the bootloader log.

libxl hands the bootloader a pty whose output goes to ``xl create -c`` and to
/var/log/xen/bootloader.<domid>.log.  A carriage-return progress bar would fill
that log with thousands of redraws, so an updating line is used only on a real
interactive terminal; elsewhere progress is a plain line every few seconds or
every 10 %.

libxl also puts that pty in raw mode (no output processing), where a bare LF
moves down without returning the carriage and lines staircase across
``xl console``; so every line ends in CR LF whenever the stream is a terminal
without output processing (see :func:`line_end`), and in LF elsewhere.
"""

from __future__ import annotations

import os
import sys
import time
from typing import Optional, TextIO

from .reporting import line_end
from .transports.base import Sink

LINE_INTERVAL = 5.0  # seconds between progress lines in a log
QUIET_START = 2.0  # no progress lines for transfers shorter than this


def human_size(n: Optional[int]) -> str:
    if n is None:
        return "size unknown"
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{n} B"


class UI:
    """Messages (to stderr: stdout may carry the result) at three levels."""

    def __init__(
        self,
        quiet: bool = False,
        verbose: bool = False,
        stream: Optional[TextIO] = None,
        interactive: Optional[bool] = None,
    ) -> None:
        self.quiet = quiet
        self.verbose = verbose and not quiet
        self.stream = stream if stream is not None else sys.stderr
        if interactive is None:
            interactive = _is_tty(self.stream) and os.environ.get("TERM", "") not in ("", "dumb", "vt100")
        self.interactive = interactive

    def info(self, message: str) -> None:
        if not self.quiet:
            self._emit(message)

    def debug(self, message: str) -> None:
        if self.verbose:
            self._emit(message)

    def warning(self, message: str) -> None:
        if not self.quiet:
            self._emit(f"warning: {message}")

    def _emit(self, message: str) -> None:
        end = line_end(self.stream)
        self.stream.write(message.replace("\n", end) + end)
        self.stream.flush()

    def progress(self, label: str) -> Optional["Progress"]:
        return None if self.quiet else Progress(self, label)


class Progress:
    """Sink callback: cheap per chunk, prints only on size or time steps.

    In a log, a transfer that ends within :data:`QUIET_START` seconds shows
    only its summary line; a longer one adds a line every 10 % or every
    :data:`LINE_INTERVAL` seconds, whichever comes first.
    """

    def __init__(self, ui: UI, label: str) -> None:
        self.ui = ui
        self.label = label
        self.start = time.monotonic()
        self.last = self.start
        self.next_bytes = 0
        self.next_time = self.start + (0.2 if ui.interactive else QUIET_START)
        self.next_percent = 0

    def __call__(self, sink: Sink) -> None:
        now = self.last = time.monotonic()  # when the last byte came, for the rate
        if sink.written < self.next_bytes:
            return
        self.next_bytes = sink.written + (1 << 20)
        total = sink.expected
        percent = int(sink.written * 100 / total) if total else None
        if self.ui.interactive:
            if now >= self.next_time:
                self.next_time = now + 0.2
                self._redraw(sink, percent, now)
            return
        if now < self.start + QUIET_START:
            return
        due = now >= self.next_time or (percent is not None and percent >= self.next_percent)
        if due and (total is None or sink.written < total):
            self.next_time = now + LINE_INTERVAL
            if percent is not None:
                self.next_percent = (percent // 10 + 1) * 10
            shown = f"{percent}%, " if percent is not None else ""
            self.ui.info(f"  {self.label}: {shown}{human_size(sink.written)}")

    def _redraw(self, sink: Sink, percent: Optional[int], now: float) -> None:
        shown = f"{percent:3d}% " if percent is not None else ""
        rate = sink.written / max(now - self.start, 1e-6)
        self.ui.stream.write(
            f"\r  {self.label}: {shown}{human_size(sink.written)} at {human_size(int(rate))}/s\033[K"
        )
        self.ui.stream.flush()

    def done(self, sink: Sink) -> None:
        elapsed = max(self.last - self.start, 1e-3)
        if self.ui.interactive:
            self.ui.stream.write("\r\033[K")
        self.ui.info(
            f"  {self.label}: {human_size(sink.written)} in {elapsed:.2f} s "
            f"({human_size(int(sink.written / elapsed))}/s)"
        )


def _is_tty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False
