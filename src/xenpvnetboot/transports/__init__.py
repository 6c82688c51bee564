"""Transports: how the bytes of a location are reached.

Each scheme maps to a module with an ``open_tree(url, options)`` function, and
is imported only when a location uses it, so that ``--version`` and an http
boot never pay for the NFS or TFTP code.  Adding a scheme is adding a module
and a line here.
"""

from __future__ import annotations

import importlib

from ..errors import UsageError
from .base import ByteSource, FileInfo, Sink, TransportOptions, Tree

#: URL scheme -> module below ``xenpvnetboot.transports`` serving it.
URL_SCHEMES = {
    "http": "curl",
    "https": "curl",
    "ftp": "curl",
    "tftp": "tftp",
}


def open_url_tree(url: str, scheme: str, options: TransportOptions) -> Tree:
    """Open the tree rooted at *url* with the transport of its scheme."""
    try:
        module_name = URL_SCHEMES[scheme]
    except KeyError:
        raise UsageError(f"unsupported location scheme {scheme!r} in {url!r}") from None
    module = importlib.import_module(f".{module_name}", __name__)
    return module.open_tree(url, options)


__all__ = [
    "ByteSource",
    "FileInfo",
    "Sink",
    "TransportOptions",
    "Tree",
    "URL_SCHEMES",
    "open_url_tree",
]
