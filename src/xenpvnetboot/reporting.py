"""The one line an expected failure prints, shared by the parent and its worker.

It lives below the command line, the boot orchestration and the privilege
separation (which all report errors), so that none of them imports another
just to print.
"""

from __future__ import annotations

import sys
from typing import Optional, TextIO


def report_error(exc: BaseException, stream: Optional[TextIO] = None) -> None:
    """One line on stderr (libxl's log), unless the error was shown already."""
    if getattr(exc, "silent", False):
        return
    stream = sys.stderr if stream is None else stream
    message = " ".join(str(exc).split())
    stream.write(f"xenpvnetboot: error: {message}\n")
    stream.flush()
