"""Run a check inside a really dropped and contained process, as the worker is."""

from __future__ import annotations

import json
import os
from typing import Any, Callable, Dict


def run_dropped(uid: int, check: Callable[[], Dict[str, Any]], max_file_size: int = 1 << 20) -> Dict[str, Any]:
    """Fork, drop to *uid* with the worker's sandbox, run *check*, return its report.

    An exception in *check* comes back as ``{"error": repr}``, for the test's message.
    """
    from xenpvnetboot import sandbox

    library = sandbox.load_seccomp()
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.close(read_fd)
            sandbox.drop_privileges(uid, max_file_size, library)
            os.write(write_fd, json.dumps(check()).encode())
        except BaseException as exc:
            os.write(write_fd, json.dumps({"error": repr(exc)}).encode())
        finally:
            os._exit(0)
    os.close(write_fd)
    data = b""
    while True:
        chunk = os.read(read_fd, 65536)
        if not chunk:
            break
        data += chunk
    os.close(read_fd)
    os.waitpid(pid, 0)
    return json.loads(data)
