"""Stream the selected files into the output directory, atomically and cleanly.

Each file is written to a hidden ``.part`` name and renamed to its final
``xenpvboot.<name>.<random>`` name only once complete, so libxl can never be
handed a truncated kernel; every path is registered for cleanup until the
result has been written.
"""

from __future__ import annotations

import os
import re
import tempfile
from dataclasses import dataclass
from typing import BinaryIO, Dict, List, Optional, Tuple

from .cleanup import CLEANUP
from .errors import BootError
from .layout import FileRef, Selection
from .transports import Sink, TransportOptions, Tree
from .ui import UI, human_size

PREFIX = "xenpvboot."
WRITE_BUFFER = 1 << 20


def safe_basename(path: str, fallback: str) -> str:
    """A short, harmless file name derived from a remote path."""
    name = path.rstrip("/").rsplit("/", 1)[-1]
    name = re.sub(r"[^A-Za-z0-9._+-]", "_", name).lstrip(".")[:64]
    return name or fallback


def prepare_output_directory(directory: str) -> str:
    """Create the output directory (mode 0700) if it does not exist yet."""
    directory = os.path.abspath(directory)
    try:
        os.makedirs(directory, mode=0o700, exist_ok=True)
    except OSError as exc:
        raise BootError(f"{directory}: cannot create output directory: {exc.strerror or exc}") from None
    if not os.path.isdir(directory):
        raise BootError(f"{directory}: output directory is not a directory")
    if not os.access(directory, os.W_OK | os.X_OK):
        raise BootError(f"{directory}: output directory is not writable")
    return directory


def check_free_space(directory: str, refs: List[FileRef]) -> None:
    """Fail before downloading when the known sizes cannot fit (a small /run)."""
    need = sum(ref.info.size or 0 for ref in refs)
    try:
        st = os.statvfs(directory)
    except OSError:
        return
    free = st.f_bavail * st.f_frsize
    if need > free:
        raise BootError(
            f"{directory}: the kernel and ramdisk need {human_size(need)} but only "
            f"{human_size(free)} are free; choose another place with --output-directory"
        )


@dataclass
class Target:
    """An output file being written: its final name and its temporary one."""

    final: str
    partial: str
    fileobj: BinaryIO

    @classmethod
    def create(cls, directory: str, basename: str) -> "Target":
        try:
            fd, final = tempfile.mkstemp(prefix=f"{PREFIX}{basename}.", dir=directory)
            os.close(fd)
            CLEANUP.add_file(final)
            fd, partial = tempfile.mkstemp(prefix=f".{PREFIX}{basename}.", suffix=".part", dir=directory)
        except OSError as exc:
            raise BootError(f"{directory}: cannot create a file: {exc.strerror or exc}") from None
        CLEANUP.add_file(partial)
        return cls(final, partial, os.fdopen(fd, "wb", buffering=WRITE_BUFFER))

    def discard(self) -> None:
        """Close without caring about unflushed data (the file is being removed)."""
        try:
            self.fileobj.close()
        except OSError:
            pass

    def commit(self) -> str:
        try:
            self.fileobj.close()
        except OSError as exc:
            raise BootError(f"{self.final}: cannot write: {exc.strerror or exc}") from None
        os.replace(self.partial, self.final)
        CLEANUP.forget(self.partial)
        return self.final


def fetch_selection(
    selection: Selection, directory: str, options: TransportOptions, ui: UI
) -> Tuple[str, Optional[str]]:
    """Fetch kernel (and ramdisk) into *directory*; return their final paths."""
    refs: List[Tuple[str, FileRef]] = [("kernel", selection.kernel)]
    if selection.ramdisk is not None:
        refs.append(("ramdisk", selection.ramdisk))
    targets: List[Target] = []
    sinks: List[Sink] = []
    progress = []
    by_tree: Dict[int, List[Tuple[Tree, str, Sink]]] = {}
    check_free_space(directory, [ref for _, ref in refs])
    for role, ref in refs:
        ui.info(f"Fetching {role} {ref.url} ({human_size(ref.info.size)})")
        target = Target.create(directory, safe_basename(ref.path, role))
        bar = ui.progress(role)
        sink = Sink(target.fileobj, ref.url, max_size=options.max_size, progress=bar,
                    sha256=ref.sha256)
        targets.append(target)
        sinks.append(sink)
        sink.expect(ref.info.size)
        progress.append(bar)
        by_tree.setdefault(id(ref.tree), []).append((ref.tree, ref.path, sink))
    try:
        for jobs in by_tree.values():
            jobs[0][0].fetch_many([(path, sink) for _, path, sink in jobs])
    except BaseException:
        for target in targets:
            target.discard()
        raise
    paths = []
    for target, sink, bar in zip(targets, sinks, progress):
        paths.append(target.commit())
        if bar is not None:
            bar.done(sink)
    return paths[0], paths[1] if len(paths) > 1 else None
