"""Importing ahead of a privilege drop.

The deprivileged worker may not be able to read the Python installation (one
below /root, say), so every module it will import lazily is imported before
it drops.  Optional accelerators that are not installed are simply absent.
"""

from __future__ import annotations

import importlib
from typing import Iterable


def import_optional(names: Iterable[str]) -> None:
    """Import each module that is installed; a missing one is not an error."""
    for name in names:
        try:
            importlib.import_module(name)
        except ImportError:
            pass


__all__ = ["import_optional"]
