"""The one parser of location and file strings; every usage error about them is raised here.

Forms of ``--location`` (those of the original tool, and NFS options):
``http://``, ``https://``, ``ftp://``, ``tftp://``, ``file:///path``,
``nfs:[OPTIONS:]host:/path``, ``nfs+iso:[OPTIONS:]host:/path/file.iso``, and
a local path naming a directory, an image file or a block device.  Messages
show the string with any password replaced by ``***``.
"""

from __future__ import annotations

import os
import re
from typing import Optional, Tuple
from urllib.parse import unquote, urlsplit

from ..errors import UsageError
from .model import IMAGE_SCHEMES, IMAGE_SUFFIXES, URL_KINDS, FileSpec, Kind, Location, redact_text

_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")
NFS_PREFIXES = ("nfs+iso:", "nfs:")
#: Longest location or path we accept; anything longer is a mistake or an attack.
MAX_SPEC_LENGTH = 4096


def check_spec(text: str, what: str) -> str:
    """Refuse strings no sane location contains (control characters, huge ones)."""
    if len(text) > MAX_SPEC_LENGTH:
        raise UsageError(f"{what} is longer than {MAX_SPEC_LENGTH} characters")
    if any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in text):
        raise UsageError(f"{what} {redact_text(text)!r} contains control characters")
    if not text.strip():
        raise UsageError(f"{what} is empty")
    return text


def url_scheme(text: str) -> Optional[str]:
    """The lower-case scheme of a ``scheme://`` string, else None."""
    match = _SCHEME.match(text)
    return match.group(1).lower() if match else None


def is_remote_spec(text: str) -> bool:
    """True for a full URL or NFS form: a string that names its own location."""
    return url_scheme(text) is not None or text.startswith(NFS_PREFIXES)


def file_url_path(url: str) -> str:
    """The local path of a ``file://`` URL (only this host's files)."""
    shown = redact_text(url)
    try:
        parts = urlsplit(url)
    except ValueError as exc:
        raise UsageError(f"invalid URL {shown!r}: {exc}") from None
    if parts.netloc not in ("", "localhost"):
        raise UsageError(f"{shown}: file:// URLs must name a local path (file:///path)")
    if not parts.path:
        raise UsageError(f"{shown}: no path")
    return unquote(parts.path)


def parse_location(text: str) -> Location:
    """Parse ``--location``; UsageError (naming it, password hidden) if malformed."""
    check_spec(text, "location")
    scheme = url_scheme(text)
    if scheme == "file":
        return Location(Kind.FILE_URL, "file", os.path.abspath(file_url_path(text)))
    if scheme is not None:
        return _parse_url(text, scheme)
    for prefix in NFS_PREFIXES:
        if text.startswith(prefix):
            return _parse_nfs(text, prefix)
    if ":" in text.split("/", 1)[0]:
        raise UsageError(
            f"unsupported location {redact_text(text)!r} (write ./{redact_text(text)} for a "
            "local file whose name holds a colon)"
        )
    return Location(Kind.LOCAL, "", os.path.abspath(text))


def _parse_url(text: str, scheme: str) -> Location:
    shown = redact_text(text)
    if scheme not in URL_KINDS:
        raise UsageError(f"unsupported location scheme {scheme!r} in {shown!r}")
    try:
        parts = urlsplit(text)
        port = parts.port
        host = parts.hostname
    except ValueError as exc:
        raise UsageError(f"invalid URL {shown!r}: {exc}") from None
    if not host:
        raise UsageError(f"{shown}: no host name")
    if parts.query or parts.fragment:
        raise UsageError(f"{shown}: a location cannot have a query or fragment")
    path = parts.path or "/"
    kind = Kind.URL
    if scheme in IMAGE_SCHEMES and path.lower().endswith(IMAGE_SUFFIXES):
        kind = Kind.REMOTE_IMAGE
    return Location(kind, scheme, path, host=host, port=port,
                    username=parts.username, password=parts.password)


def _parse_nfs(text: str, prefix: str) -> Location:
    from ..transports.nfs import parse_spec

    spec = parse_spec(text[len(prefix):])
    image = prefix == "nfs+iso:"
    return Location(Kind.NFS_IMAGE if image else Kind.NFS, prefix[:-1], spec.path,
                    host=spec.host, port=spec.port, nfs=spec)


def split_spec(spec: str) -> Tuple[str, str]:
    """Split a full URL/NFS/local file spec into its directory and file name."""
    shown = redact_text(spec)
    head, sep, name = spec.rpartition("/")
    if url_scheme(spec) is not None:
        try:
            parts = urlsplit(spec)
        except ValueError as exc:
            raise UsageError(f"invalid URL {shown!r}: {exc}") from None
        if parts.query or parts.fragment:
            raise UsageError(f"{shown}: query strings and fragments are not supported")
        if not parts.path.strip("/"):
            raise UsageError(f"{shown}: names no file")
    if not sep or not name:
        raise UsageError(f"{shown}: names no file")
    return head + "/", name


def parse_file_spec(text: str) -> FileSpec:
    """Parse a ``--kernel``/``--ramdisk`` value (see :class:`FileSpec`)."""
    check_spec(text, "kernel/ramdisk path")
    shown = redact_text(text)
    scheme = url_scheme(text)
    if scheme == "file":
        return FileSpec(shown, text, absolute=file_url_path(text), file_url=True)
    if is_remote_spec(text):
        head, name = split_spec(text)
        own = parse_location(head)
        # URL paths are percent-encoded; an NFS path is taken as written.
        return FileSpec(shown, text, own=own, name=unquote(name) if scheme else name)
    if text.startswith("/"):
        return FileSpec(shown, text, absolute=text)
    return FileSpec(shown, text, relative=text)


__all__ = ["MAX_SPEC_LENGTH", "NFS_PREFIXES", "check_spec", "file_url_path", "is_remote_spec",
           "parse_file_spec", "parse_location", "split_spec", "url_scheme"]
