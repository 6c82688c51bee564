"""The one line an expected failure prints, shared by the parent and its worker.

It lives below the command line, the boot orchestration and the privilege
separation (which all report errors), so that none of them imports another
just to print.
"""

from __future__ import annotations

import os
import sys
import termios
from typing import Optional, TextIO


def report_error(exc: BaseException, stream: Optional[TextIO] = None) -> None:
    """One line on stderr (libxl's log), unless the error was shown already."""
    if getattr(exc, "silent", False):
        return
    stream = sys.stderr if stream is None else stream
    message = " ".join(str(exc).split())
    stream.write(f"xenpvnetboot: error: {message}{line_end(stream)}")
    stream.flush()


def line_end(stream: TextIO) -> str:
    """The line ending that returns the carriage on *stream*: CR LF on a terminal
    whose output processing (OPOST) is off, as on libxl's raw pty, else LF.

    Asked at each line, not once: libxl switches the pty to raw mode only
    after it has started the bootloader.
    """
    try:
        fd = stream.fileno()
        if not os.isatty(fd):
            return "\n"
        return "\n" if termios.tcgetattr(fd)[1] & termios.OPOST else "\r\n"
    except (AttributeError, ValueError, OSError, termios.error):
        return "\n"

