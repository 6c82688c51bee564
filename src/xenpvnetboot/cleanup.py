"""Everything a run creates is registered here and removed unless kept.

libxl may SIGTERM the bootloader at any moment (domain destroyed, restrict
timeout).  The signal handler therefore does the cleanup itself and exits at
once: unwinding through libcurl callbacks or a blocked child would be slower
and less certain than removing a short list of paths we already know.
"""

from __future__ import annotations

import os
import signal
import sys
from typing import List

HANDLED_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)


class Cleanup:
    """Paths and child processes to remove/stop when the run does not succeed."""

    def __init__(self) -> None:
        self.files: List[str] = []
        self.dirs: List[str] = []
        self.children: List[int] = []

    def add_file(self, path: str) -> str:
        self.files.append(path)
        return path

    def add_dir(self, path: str) -> str:
        self.dirs.append(path)
        return path

    def add_child(self, pid: int) -> int:
        self.children.append(pid)
        return pid

    def forget_child(self, pid: int) -> None:
        if pid in self.children:
            self.children.remove(pid)

    def keep(self, path: str) -> None:
        """The path is part of a successful result: leave it for libxl."""
        while path in self.files:
            self.files.remove(path)

    def forget(self, path: str) -> None:
        """The path is gone already (renamed or removed)."""
        self.keep(path)

    def run(self) -> None:
        """Stop children, remove files and directories; safe to call twice."""
        for pid in self.children[:]:
            try:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
            except (ProcessLookupError, ChildProcessError):
                pass
            self.children.remove(pid)
        for path in self.files[:]:
            try:
                os.unlink(path)
            except FileNotFoundError:
                pass
            except OSError as exc:
                from .reporting import line_end

                sys.stderr.write(f"xenpvnetboot: warning: cannot remove {path}: {exc}"
                                 f"{line_end(sys.stderr)}")
            self.files.remove(path)
        if self.dirs:
            import shutil

            for path in reversed(self.dirs[:]):
                shutil.rmtree(path, ignore_errors=True)
                self.dirs.remove(path)


#: The registry of this process.
CLEANUP = Cleanup()


def _on_signal(signum: int, frame: object) -> None:
    CLEANUP.run()
    try:
        from .reporting import line_end

        sys.stderr.write(
            f"xenpvnetboot: error: interrupted by {signal.Signals(signum).name}; "
            f"removed the partial files{line_end(sys.stderr)}"
        )
        sys.stderr.flush()
    finally:
        os._exit(1)


def install_signal_handlers() -> None:
    """SIGTERM, SIGINT and SIGHUP clean up and exit 1 (a boot that was not done)."""
    for signum in HANDLED_SIGNALS:
        signal.signal(signum, _on_signal)
