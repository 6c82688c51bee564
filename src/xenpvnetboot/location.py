"""Turn the location strings of xl.cfg into trees, and kernel specs into files.

Forms accepted for ``--location`` (those of the original tool):
``http://``, ``https://``, ``ftp://``, ``tftp://``, ``file:///path``,
``nfs:host:/path``, ``nfs+iso:host:/path/file.iso``, and a local path naming a
directory, an ISO or filesystem image, or a block device.
"""

from __future__ import annotations

import os
import re
import stat as stat_mod
from typing import Dict, List, Optional, Sequence, Tuple
from urllib.parse import unquote

from .errors import BootError, NotFound, UsageError
from .transports import URL_SCHEMES, TransportOptions, Tree, open_url_tree
from .transports.base import OwningSource, split_url
from .transports.local import LocalSource, LocalTree

_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")
_NFS_PREFIXES = ("nfs+iso:", "nfs:")
#: A URL location ending so names an image to read in place, not a tree.
IMAGE_SUFFIXES = (".iso", ".img", ".raw")
#: Longest location or path we accept; anything longer is a mistake or an attack.
MAX_SPEC_LENGTH = 4096


def check_spec(text: str, what: str) -> str:
    """Refuse strings no sane location contains (control characters, huge ones)."""
    if len(text) > MAX_SPEC_LENGTH:
        raise UsageError(f"{what} is longer than {MAX_SPEC_LENGTH} characters")
    if any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in text):
        raise UsageError(f"{what} {text!r} contains control characters")
    if not text.strip():
        raise UsageError(f"{what} is empty")
    return text


def url_scheme(text: str) -> Optional[str]:
    """The lower-case scheme of a ``scheme://`` string, else None."""
    match = _SCHEME.match(text)
    return match.group(1).lower() if match else None


def is_remote_spec(text: str) -> bool:
    """True for a full URL or NFS form: a spec that names its own location."""
    return url_scheme(text) is not None or text.startswith(_NFS_PREFIXES)


def file_url_path(url: str) -> str:
    """The local path of a ``file://`` URL (only this host's files)."""
    parts = split_url(url)
    if parts.netloc not in ("", "localhost"):
        raise UsageError(f"{url}: file:// URLs must name a local path (file:///path)")
    if not parts.path:
        raise UsageError(f"{url}: no path")
    return unquote(parts.path)


def open_location(text: str, options: TransportOptions) -> Tree:
    """Open the tree a ``--location`` names."""
    check_spec(text, "location")
    scheme = url_scheme(text)
    if scheme is not None:
        split_url(text)
    if scheme == "file":
        return open_local(file_url_path(text), options)
    if scheme is not None:
        if is_image_url(text):
            return open_remote_image(text, scheme, options)
        return open_url_tree(text, scheme, options)
    for prefix in _NFS_PREFIXES:
        if text.startswith(prefix):
            from .transports import nfs

            return nfs.open_nfs(text[len(prefix):], options, image=prefix == "nfs+iso:")
    if ":" in text.split("/", 1)[0] and not os.path.exists(text):
        raise UsageError(f"unsupported location {text!r}")
    return open_local(text, options)


#: Image files and block devices opened while still root (``--runas``).
_PREOPENED: Dict[str, LocalSource] = {}


def preopen_local(text: str) -> None:
    """Open a local image or block device location now, before privileges drop.

    A block device is usually readable by root only; the unprivileged child
    then reads it through this descriptor.
    """
    scheme = url_scheme(text)
    if scheme not in (None, "file") or text.startswith(_NFS_PREFIXES):
        return
    path = os.path.abspath(file_url_path(text) if scheme == "file" else text)
    try:
        st = os.stat(path)
    except OSError:
        return
    if stat_mod.S_ISREG(st.st_mode) or stat_mod.S_ISBLK(st.st_mode):
        _PREOPENED[path] = LocalSource(path)


def modules_for(text: str) -> List[str]:
    """The modules a location or file spec will import (see :func:`preload`)."""
    scheme = url_scheme(text)
    if scheme in URL_SCHEMES:
        return [f"xenpvnetboot.transports.{URL_SCHEMES[scheme]}"]
    if text.startswith(_NFS_PREFIXES):
        return ["xenpvnetboot.transports.nfs", "xenpvnetboot.containers"]
    path = file_url_path(text) if scheme == "file" else text
    return [] if os.path.isdir(path) else ["xenpvnetboot.containers"]


def preload(specs: Sequence[Optional[str]]) -> None:
    """Import now what these specs will need, and each module's own lazy imports.

    A deprivileged child may not be able to read the Python installation
    (e.g. one below /root); everything it runs must already be in memory.
    """
    import importlib

    for spec in specs:
        if not spec:
            continue
        for name in modules_for(spec):
            module = importlib.import_module(name)
            hook = getattr(module, "preload", None)
            if hook is not None:
                hook()


def is_image_url(url: str) -> bool:
    """An http(s)/ftp location naming an image file rather than a tree."""
    parts = split_url(url)
    return (url_scheme(url) in ("http", "https", "ftp")
            and parts.path.lower().endswith(IMAGE_SUFFIXES))


def open_remote_image(url: str, scheme: str, options: TransportOptions) -> Tree:
    """An ISO or disk image on a web or FTP server, read in place by range requests."""
    from .containers import take_image

    head, name = split_spec(url)
    parent = open_url_tree(head, scheme, options)
    try:
        source = OwningSource(parent.open_source(unquote(name)), parent)
    except BaseException:
        parent.close()
        raise
    return take_image(source, options)


def open_local(path: str, options: TransportOptions) -> Tree:
    """A directory, an image file or a block device on this host."""
    path = os.path.abspath(path)
    if path in _PREOPENED:
        from .containers import take_image

        return take_image(_PREOPENED.pop(path), options)
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise BootError(f"{path}: no such file or directory") from None
    except OSError as exc:
        raise BootError(f"{path}: {exc.strerror or exc}") from None
    if stat_mod.S_ISDIR(st.st_mode):
        return LocalTree(path)
    if stat_mod.S_ISREG(st.st_mode) or stat_mod.S_ISBLK(st.st_mode):
        from .containers import take_image

        return take_image(LocalSource(path), options)
    raise BootError(f"{path}: not a directory, image file or block device")


def split_spec(spec: str) -> Tuple[str, str]:
    """Split a full URL/NFS/local file spec into its directory and file name."""
    head, sep, name = spec.rpartition("/")
    scheme = url_scheme(spec)
    if scheme is not None:
        parts = split_url(spec)
        if parts.query or parts.fragment:
            raise UsageError(f"{spec}: query strings and fragments are not supported")
        if not parts.path.strip("/"):
            raise UsageError(f"{spec}: names no file")
    if not sep or not name:
        raise UsageError(f"{spec}: names no file")
    return head + "/", name


def resolve_spec(
    spec: str, location: Optional[Tree], options: TransportOptions
) -> Tuple[Tree, str, bool]:
    """Find the tree and path a ``--kernel``/``--ramdisk`` value names.

    Returns ``(tree, path, owned)``; *owned* says the caller must close the
    tree (it was opened for this spec alone).  A full URL or NFS form, or an
    absolute path when the location is not an image, names a file of its own;
    anything else is relative to the location (inside it, for an image).
    """
    check_spec(spec, "kernel/ramdisk path")
    scheme = url_scheme(spec)
    if scheme == "file":
        spec = file_url_path(spec)
    elif is_remote_spec(spec):
        head, name = split_spec(spec)
        # URL paths are percent-encoded; an NFS path is taken as written.
        return open_location(head, options), unquote(name) if scheme else name, True
    rooted = location is not None and getattr(location, "rooted", False)
    if location is None or (spec.startswith("/") and not rooted):
        path = os.path.abspath(spec)
        head, name = os.path.split(path)
        if not name:
            raise UsageError(f"{spec}: names no file")
        return LocalTree(head), name, True
    from .transports.base import clean_path

    path = clean_path(spec)
    if not path:
        raise UsageError(f"{spec!r} names no file")
    return location, path, False


__all__ = [
    "NotFound",
    "check_spec",
    "is_remote_spec",
    "open_location",
    "resolve_spec",
    "url_scheme",
]
