"""The result libxl reads: kernel, ramdisk and command line in one of three formats."""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from typing import List, Optional, Tuple

from .errors import BootError

FORMATS = ("sxp", "simple", "simple0")


@dataclass(frozen=True)
class BootResult:
    kernel: str
    ramdisk: Optional[str]
    args: str


def _items(result: BootResult) -> List[Tuple[str, str]]:
    items = [("kernel", result.kernel)]
    if result.ramdisk:
        items.append(("ramdisk", result.ramdisk))
    if result.args:
        items.append(("args", result.args))
    return items


def _sxp_string(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def format_result(result: BootResult, fmt: str) -> bytes:
    """Serialise the result, refusing a value that would corrupt the format.

    libxl splits ``simple0`` at NUL and ``simple`` at newline; a value holding
    its separator would be read as two items, so it is an error, not a guess.
    """
    if fmt == "sxp":
        for key, value in _items(result):
            if "\n" in value or "\0" in value:
                raise BootError(f"{key} {value!r} contains a newline or NUL byte")
        text = f"linux (kernel {result.kernel})"
        if result.ramdisk:
            text += f"(ramdisk {result.ramdisk})"
        if result.args:
            text += f"(args {_sxp_string(result.args)})"
        return (text + "\n").encode()
    separator = {"simple": "\n", "simple0": "\0"}.get(fmt)
    if separator is None:
        raise BootError(f"unknown output format {fmt!r}")
    out = []
    for key, value in _items(result):
        if separator in value or "\0" in value:
            name = "NUL byte" if separator == "\0" or "\0" in value else "newline"
            raise BootError(f"{key} {value!r} contains a {name}, which the {fmt} format cannot carry")
        out.append(f"{key} {value}{separator}")
    out.append(separator)
    return "".join(out).encode()


def write_result(data: bytes, output: Optional[str]) -> None:
    """Write to the file libxl pre-created (truncating it), or to stdout."""
    if output in (None, "-"):
        sys.stdout.flush()
        sys.stdout.buffer.write(data)
        sys.stdout.buffer.flush()
        return
    assert output is not None
    try:
        fd = os.open(output, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
    except OSError as exc:
        raise BootError(f"{output}: cannot write the result: {exc.strerror or exc}") from None
