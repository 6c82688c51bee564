"""What ``--dry-run`` prints: the decision, without fetching anything."""

from __future__ import annotations

from typing import List, Optional

from ..ui import human_size
from .model import FileRef, Selection


def _size(ref: FileRef) -> str:
    size = ref.info.size
    return "size unknown" if size is None else f"{size} bytes, {human_size(size)}"


def _file_line(role: str, ref: Optional[FileRef]) -> List[str]:
    if ref is None:
        return [f"{role}: none"]
    lines = [f"{role}: {ref.url} ({_size(ref)})"]
    if ref.sha256:
        lines.append(f"{role} SHA-256: {ref.sha256} (checked after download)")
    return lines


def describe(selection: Selection, cmdline: str) -> str:
    """The dry-run report: distribution, files, sizes and kernel arguments."""
    lines = [f"Found: {selection.reason}"]
    lines += _file_line("Kernel", selection.kernel)
    lines += _file_line("Ramdisk", selection.ramdisk)
    for ref in selection.ramdisks:
        lines += _file_line("Ramdisk, then", ref)
    if selection.menu_args:
        lines.append(f"Menu arguments: {selection.menu_args}")
    lines.append(f"Arguments: {cmdline}" if cmdline else "Arguments: (none)")
    if selection.install_args:
        added = all(word in cmdline.split() for word in selection.install_args.split())
        state = "added" if added else "not added: --no-install-args, or given in --args"
        lines.append(f"Installer source: {selection.install_args} ({state})")
    return "\n".join(lines) + "\n"
