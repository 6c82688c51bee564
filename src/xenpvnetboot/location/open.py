"""Open what a parsed :class:`Location` names, and find the file a :class:`FileSpec` names.

A location becomes a :class:`Tree`: a directory here, a URL tree, an NFS
export, or the filesystem inside an image (local, on NFS, or read in place
from a web or FTP server by range requests).
"""

from __future__ import annotations

import os
import stat as stat_mod
from typing import Dict, Iterable, List, Optional, Tuple, Union
from urllib.parse import unquote

from ..errors import BootError, Interrupted, NotFound, TransientError, UsageError
from ..transports import URL_SCHEMES, TransportOptions, Tree, open_url_tree
from ..transports.base import ByteSource, OwningSource, clean_path
from ..transports.local import LocalSource, LocalTree
from .model import FileSpec, Kind, Location
from .parse import parse_file_spec, parse_location


def open_location(location: Union[Location, str], options: TransportOptions) -> Tree:
    """Open the tree *location* names (a string is parsed first)."""
    if isinstance(location, str):
        location = parse_location(location)
    if location.is_local:
        return open_local(location.path, options)
    if location.kind == Kind.REMOTE_IMAGE:
        return open_remote_image(location, options)
    if location.kind == Kind.URL:
        return open_url_tree(location, options)
    from ..transports import nfs

    assert location.nfs is not None
    return nfs.open_nfs(location.nfs, options, image=location.kind == Kind.NFS_IMAGE)


def open_remote_image(location: Location, options: TransportOptions) -> Tree:
    """An ``.iso``/``.img``/``.raw`` URL: an image read in place, or a directory so named.

    Mirrors unpack an ISO into a directory named after it; the server, not
    the name, decides: a redirect to ``name.iso/`` or an HTML answer is a
    directory, and so is a missing file when ``name.iso/`` exists.
    """
    from ..containers import take_image

    parent = open_url_tree(location.parent(), options)
    name = unquote(location.name)
    try:
        info = parent.stat(name)
        if info.directory:
            parent.close()
            return open_url_tree(location.as_tree(), options)
        source = OwningSource(parent.open_source(name, info), parent)
        source = _hooked(options, parent, name, source, remote=True)
    except NotFound as missing:
        parent.close()
        return _directory_instead(location, options, missing)
    except BaseException:
        parent.close()
        raise
    return take_image(source, options)


def _directory_instead(location: Location, options: TransportOptions, missing: NotFound) -> Tree:
    """``name.iso/`` when the server has no file ``name.iso``; the 404 otherwise.

    A directory the server refuses to list (403) is still there.
    """
    tree = open_url_tree(location.as_tree(), options)
    try:
        tree.stat("")
    except NotFound:
        tree.close()
        raise NotFound(f"{missing} (for a directory of that name, end the location with a /)") \
            from None
    except (Interrupted, TransientError):
        tree.close()
        raise
    except BootError:
        pass
    except BaseException:
        tree.close()
        raise
    return tree


#: The guest's disk, opened while still root (``--runas``), by path.
_PREOPENED: Dict[str, LocalSource] = {}


def preopen_disk(location: Location, disk: Optional[str]) -> bool:
    """Under ``--runas``, open a local location as root only if it is libxl's disk.

    libxl passes the guest's first disk as the last argument; the guest is
    given that file anyway, so reading it as root hands its owner nothing new
    (pygrub does the same).  Any other local path the configuration names is
    opened by the unprivileged child with that user's rights.
    """
    if disk is None or not location.is_local:
        return False
    try:
        if not os.path.samefile(location.path, disk):
            return False
        st = os.stat(location.path)
    except OSError:
        return False
    if not (stat_mod.S_ISREG(st.st_mode) or stat_mod.S_ISBLK(st.st_mode)):
        return False
    _PREOPENED[location.path] = LocalSource(location.path)
    return True


def modules_for(location: Location) -> List[str]:
    """The modules opening *location* will import (see :func:`preload`)."""
    if location.is_url:
        modules = [f"xenpvnetboot.transports.{URL_SCHEMES[location.scheme]}"]
        if location.kind == Kind.REMOTE_IMAGE:
            modules.append("xenpvnetboot.containers")
        return modules
    if location.is_nfs:
        return ["xenpvnetboot.transports.nfs", "xenpvnetboot.containers"]
    # A local path may be an image; finding out would look at it as root.
    return ["xenpvnetboot.containers"]


def preload(locations: Iterable[Optional[Location]]) -> None:
    """Import now what these locations will need, and each module's own lazy imports.

    A deprivileged child may not be able to read the Python installation
    (e.g. one below /root); everything it runs must already be in memory.
    """
    import importlib

    for location in locations:
        if location is None:
            continue
        for name in modules_for(location):
            module = importlib.import_module(name)
            hook = getattr(module, "preload", None)
            if hook is not None:
                hook()


def open_local(path: str, options: TransportOptions) -> Tree:
    """A directory, an image file or a block device on this host."""
    path = os.path.abspath(path)
    if path in _PREOPENED:
        from ..containers import take_image

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
        from ..containers import take_image

        source = LocalSource(path)
        directory, name = os.path.split(path)
        return take_image(_hooked(options, LocalTree(directory), name, source, remote=False),
                          options)
    raise BootError(f"{path}: not a directory, image file or block device")


def _hooked(options: TransportOptions, directory: Tree, name: str, source: ByteSource,
            remote: bool) -> ByteSource:
    """The source an image is read through: *options.image_hook*'s, if any.

    The guest's own disk (opened as root for a restricted worker) is not
    passed through it.  On failure the source is closed here.
    """
    if options.image_hook is None:
        return source
    try:
        return options.image_hook(directory, name, source, remote)
    except BaseException:
        source.close()
        raise


def _local_file(path: str, shown: str) -> Tuple[Tree, str, bool]:
    head, name = os.path.split(os.path.abspath(path))
    if not name:
        raise UsageError(f"{shown}: names no file")
    return LocalTree(head), name, True


def resolve_spec(
    spec: Union[FileSpec, str], location: Optional[Tree], options: TransportOptions
) -> Tuple[Tree, str, bool]:
    """Find the tree and path a ``--kernel``/``--ramdisk`` value names.

    Returns ``(tree, path, owned)``; *owned* says the caller must close the
    tree (it was opened for this spec alone).  A full URL or NFS form, a
    ``file://`` URL, or an absolute path when the location is not an image
    names a file of its own; anything else is relative to the location
    (inside it, for an image).
    """
    if isinstance(spec, str):
        spec = parse_file_spec(spec)
    if spec.own is not None:
        return open_location(spec.own, options), spec.name, True
    rooted = location is not None and getattr(location, "rooted", False)
    if spec.absolute is not None and (location is None or not rooted or spec.file_url):
        return _local_file(spec.absolute, spec.shown)
    text = spec.absolute if spec.absolute is not None else spec.relative
    assert text is not None
    if location is None:
        return _local_file(text, spec.shown)
    path = clean_path(text)
    if not path:
        raise UsageError(f"{spec.shown!r} names no file")
    return location, path, False


__all__ = ["modules_for", "open_local", "open_location", "open_remote_image", "preload",
           "preopen_disk", "resolve_spec"]
