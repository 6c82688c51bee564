"""The parsed forms of ``--location`` and of ``--kernel``/``--ramdisk``.

A location string is parsed once, into a :class:`Location`, and the rest of
the program decides from its fields: which transport, whether it is an
image, which modules a deprivileged child must load first, which address
classes the configuration named.  Credentials stay out of ``repr`` and out of
every message: :meth:`Location.display` is the form shown, :meth:`Location.url`
the one handed to a transport.
"""

from __future__ import annotations

import enum
import posixpath
import re
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Optional

if TYPE_CHECKING:
    from ..transports.nfs import NfsSpec


class Kind(enum.Enum):
    """What a location names, which decides how it is opened."""

    LOCAL = "local path"
    FILE_URL = "file URL"
    URL = "URL tree"
    REMOTE_IMAGE = "remote image"
    NFS = "NFS directory"
    NFS_IMAGE = "NFS image"


#: URL schemes read through a transport, and those of them that can carry an image.
URL_KINDS = ("http", "https", "ftp", "tftp")
IMAGE_SCHEMES = ("http", "https", "ftp")
#: A URL location ending so is probably an image to read in place (the server decides).
IMAGE_SUFFIXES = (".iso", ".img", ".raw")

_USERINFO = re.compile(r"(?P<head>[A-Za-z][A-Za-z0-9+.-]*://[^/@?#]*?):[^/@?#]*@")


def redact_text(text: str) -> str:
    """*text* with the password of any ``scheme://user:password@`` hidden.

    Used on strings that failed to parse, so it is a pattern, not a parser.
    """
    return _USERINFO.sub(lambda match: match.group("head") + ":***@", text)


@dataclass(frozen=True)
class Location:
    """An install tree, image or directory, as the configuration named it.

    ``path`` is absolute for local kinds, the export path for NFS, and the
    URL path as written (percent-encoded) for URLs.
    """

    kind: Kind
    #: "http", "https", "ftp", "tftp", "nfs", "nfs+iso", "file" or "" (a local path).
    scheme: str
    path: str
    host: str = ""
    port: Optional[int] = None
    username: Optional[str] = field(default=None, repr=False)
    password: Optional[str] = field(default=None, repr=False)
    #: The parsed NFS form (options, versions) of the NFS kinds.
    nfs: Optional["NfsSpec"] = field(default=None, repr=False, compare=False)

    # -- what it is ----------------------------------------------------------------

    @property
    def is_local(self) -> bool:
        return self.kind in (Kind.LOCAL, Kind.FILE_URL)

    @property
    def is_url(self) -> bool:
        return self.kind in (Kind.URL, Kind.REMOTE_IMAGE)

    @property
    def is_nfs(self) -> bool:
        return self.kind in (Kind.NFS, Kind.NFS_IMAGE)

    @property
    def url_host(self) -> str:
        """The host as written in a URL (an IPv6 address in brackets)."""
        return f"[{self.host}]" if ":" in self.host else self.host

    # -- its text ------------------------------------------------------------------

    def _netloc(self, secret: bool) -> str:
        userinfo = ""
        if self.username is not None or self.password is not None:
            userinfo = self.username or ""
            if self.password is not None:
                userinfo += ":" + (self.password if secret else "***")
            userinfo += "@"
        port = f":{self.port}" if self.port is not None else ""
        return f"{userinfo}{self.url_host}{port}"

    def _text(self, secret: bool) -> str:
        if self.kind == Kind.LOCAL:
            return self.path
        if self.kind == Kind.FILE_URL:
            return f"file://{self.path}"
        if self.is_nfs:
            assert self.nfs is not None
            return self.nfs.location(scheme=self.scheme)
        return f"{self.scheme}://{self._netloc(secret)}{self.path}"

    def display(self) -> str:
        """The location for messages and logs: any password is ``***``."""
        return self._text(secret=False)

    def url(self) -> str:
        """The location with its credentials, for the transport alone."""
        return self._text(secret=True)

    def __str__(self) -> str:
        return self.display()

    # -- related locations ---------------------------------------------------------

    @property
    def name(self) -> str:
        """The last component of the path (an image's file name)."""
        return posixpath.basename(self.path.rstrip("/"))

    def parent(self) -> "Location":
        """The directory holding this location (a remote image's server directory)."""
        head = posixpath.dirname(self.path.rstrip("/"))
        if not head.endswith("/"):
            head += "/"
        kind = Kind.URL if self.is_url else Kind.NFS if self.is_nfs else self.kind
        scheme = "nfs" if self.is_nfs else self.scheme
        nfs = self.nfs.with_path(head.rstrip("/") or "/") if self.nfs is not None else None
        return replace(self, kind=kind, scheme=scheme, path=head, nfs=nfs)

    def as_tree(self) -> "Location":
        """This URL taken as a directory (``name.iso/``), not as an image file."""
        path = self.path if self.path.endswith("/") else self.path + "/"
        return replace(self, kind=Kind.URL, path=path)


@dataclass(frozen=True)
class FileSpec:
    """A ``--kernel``/``--ramdisk`` value.

    Exactly one form: ``own`` (a full URL or NFS form naming a file of its
    own: the directory ``own`` and the file ``name``), ``absolute`` (a path
    from the root: inside an image location, else a local file), or
    ``relative`` (inside the location; a local path without one).
    """

    shown: str
    #: The value as given (with any password), to derive a partner's spec from.
    raw: str = field(default="", repr=False)
    own: Optional[Location] = None
    name: str = ""
    absolute: Optional[str] = None
    relative: Optional[str] = None
    #: ``absolute`` came from a ``file://`` URL: a file of this host even
    #: when the location is an image.
    file_url: bool = False

    @property
    def names_location(self) -> bool:
        """True for a full URL or NFS form: it brings a location (and modules) of its own."""
        return self.own is not None

    def __str__(self) -> str:
        return self.shown


__all__ = ["FileSpec", "IMAGE_SCHEMES", "IMAGE_SUFFIXES", "Kind", "Location", "URL_KINDS",
           "redact_text"]
