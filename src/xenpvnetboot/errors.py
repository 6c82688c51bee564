"""The two kinds of failure the command line distinguishes.

Every expected failure is raised as one of these and turned into one line on
stderr and an exit status by the CLI; anything else is a bug and keeps its
traceback.
"""

from __future__ import annotations


class XenPVNetBootError(Exception):
    """Base class; ``exit_status`` is what the process exits with."""

    exit_status = 1


class BootError(XenPVNetBootError):
    """The boot cannot be done (exit 1): missing file, network error, bad data."""

    exit_status = 1


class NotFound(BootError):
    """A file does not exist at the location (lets the layout search move on)."""


class TransientError(BootError):
    """A failure that trying again may cure (reset, timeout, HTTP 503, short transfer)."""


class UsageError(XenPVNetBootError):
    """The command line itself is wrong (exit 2)."""

    exit_status = 2


class Interrupted(BootError):
    """SIGTERM/SIGINT arrived; raised so that every cleanup handler runs."""

    def __init__(self, signum: int) -> None:
        import signal

        super().__init__(f"interrupted by {signal.Signals(signum).name}")
        self.signum = signum
