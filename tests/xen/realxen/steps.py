"""The small tools every preparation step uses (prepare.py, media.py).

Each piece of the work directory is made in a fresh ``<name>.tmp``
directory and renamed into place when complete, under a key of what it is
made from (:func:`digest`); older pieces of the same kind are pruned.
"""

from __future__ import annotations

import glob
import hashlib
import os
import shutil
import subprocess
from typing import Sequence

DEFAULT_WORK = "/var/tmp/xenpvnetboot-xen"


class Missing(Exception):
    """A program or package the run needs is not installed (a skip, or a failure in CI)."""


class PrepareError(Exception):
    """A preparation step failed; the message names the step and its output."""


def work_dir() -> str:
    path = os.environ.get("XENPVNETBOOT_XEN_WORK") or DEFAULT_WORK
    if any(char in path for char in " ,"):
        raise PrepareError(f"{path}: QEMU's multiboot module list cannot hold spaces or commas")
    os.makedirs(path, exist_ok=True)
    return path


def need(program: str, package: str) -> str:
    for candidate in (program, f"/usr/sbin/{program}", f"/sbin/{program}"):
        found = shutil.which(candidate)
        if found:
            return found
    raise Missing(f"needs {program} (Debian package {package})")


def digest(*parts: object) -> str:
    hasher = hashlib.sha256()
    for part in parts:
        hasher.update(part if isinstance(part, bytes) else str(part).encode())
        hasher.update(b"\0")
    return hasher.hexdigest()[:16]


def run(argv: Sequence[str], log: str, **kwargs) -> None:
    """Run one step with its output appended to *log*; a failure names the step."""
    with open(log, "ab") as out:
        out.write(("$ " + " ".join(argv) + "\n").encode())
        out.flush()
        status = subprocess.run(list(argv), stdout=out, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, **kwargs).returncode
    if status:
        with open(log, "rb") as handle:
            tail = handle.read()[-2500:].decode(errors="replace")
        raise PrepareError(f"{argv[0]} failed (status {status}); the end of {log}:\n{tail}")


def fresh(path: str) -> str:
    """An empty directory at *path* (what a failed earlier attempt left is removed)."""
    shutil.rmtree(path, ignore_errors=True)
    os.makedirs(path)
    return path


def prune(work: str, pattern: str, keep: str) -> None:
    for path in glob.glob(os.path.join(work, pattern)):
        if os.path.abspath(path) != os.path.abspath(keep):
            if os.path.isdir(path):
                shutil.rmtree(path, ignore_errors=True)
            else:
                os.unlink(path)


def link(source: str, target: str) -> None:
    """Hard-link *source* at *target*, making the directories on the way."""
    os.makedirs(os.path.dirname(target), exist_ok=True)
    os.link(source, target)
