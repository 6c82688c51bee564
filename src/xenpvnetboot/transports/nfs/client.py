"""One connection to the server: the version it speaks, the calls it makes, where it connects to."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from typing import Any, Callable, Optional, Sequence

from ...errors import BootError
from ..base import TransportOptions
from .library import _boot_error, _is_transient
from .spec import NfsSpec


#: Characters the library takes literally in the path of its nfs:// URL (it
#: neither decodes %XX nor allows space, ``?`` or ``#``); NFSv3 mount paths
#: must stay within them, NFSv4 paths never go through the URL.
_URL_PATH_SAFE = re.compile(r"^[A-Za-z0-9._~/!$&'()*+,;=:@%-]*$")


class Connection:
    """A connected client and the version it speaks.

    Every call goes through :meth:`call`, which repeats transient failures
    and turns the library's exceptions into ours, so that nothing above it
    sees an ``nfs_rs`` type.
    """

    def __init__(self, lib: Any, client: Any, spec: NfsSpec, options: TransportOptions) -> None:
        self.lib = lib
        self.client = client
        self.spec = spec
        self.options = options
        self.version = str(client.version.value)

    def _retrying(self, function: Callable[..., Any], *args: Any) -> Any:
        """Call *function*, repeating it on transient failures (``--retries``)."""
        attempts = max(0, self.options.retries) + 1
        for attempt in range(attempts):
            try:
                return function(*args)
            except self.lib.NfsError as exc:
                if attempt + 1 >= attempts or not _is_transient(self.lib, exc):
                    raise
        raise AssertionError("unreachable")

    def call(self, where: str, function: Callable[..., Any], *args: Any) -> Any:
        try:
            return self._retrying(function, *args)
        except self.lib.NfsError as exc:
            raise _boot_error(exc, where, self.options.timeout) from None

    def stat(self, parts: Sequence[str], where: str) -> "Entry":
        if not parts and self.version != "3":
            return ROOT  # NFSv4 cannot look up "." at the root; it is a directory
        return Entry.of(self.call(where, self.client.stat, _join(parts)))

    def probe(self, parts: Sequence[str], where: str) -> "Optional[Entry]":
        """What *parts* is, or None when a symlink on the way stopped the
        server's lookup (NFSv4 says so, NFSv3 says "not a directory")."""
        try:
            return Entry.of(self._retrying(self.client.stat, _join(parts)))
        except self.lib.NfsError as exc:
            if isinstance(exc, NotADirectoryError) or exc.code_name == "NFS4ERR_SYMLINK":
                return None
            raise _boot_error(exc, where, self.options.timeout) from None

    def readlink(self, parts: Sequence[str], where: str) -> str:
        return self.call(where, self.client.readlink, _join(parts))

    def open(self, parts: Sequence[str], where: str) -> Any:
        return self.call(where, self.client.open, _join(parts), "rb")

    def close(self) -> None:
        """Disconnect; a dead server cannot make this fail (it is bounded by
        the operation timeout)."""
        try:
            self.client.close()
        except self.lib.NfsError:
            pass


@dataclass(frozen=True)
class Entry:
    """What a lookup says about one path: the library's attributes, trimmed."""

    #: "file", "directory", "symlink", ... (nfs_rs.FileType values).
    kind: str
    size: int = 0
    mtime_ns: int = 0

    @classmethod
    def of(cls, info: Any) -> "Entry":
        return cls(str(info.type.value), info.size, info.mtime)


#: The NFSv4 server root, which cannot be looked up by name.
ROOT = Entry("directory")


def _join(parts: Sequence[str]) -> str:
    return "/".join(parts) or "."


def _connect_version(
    lib: Any, spec: NfsSpec, version: str, directory: str, remaining: float,
    options: TransportOptions,
) -> Connection:
    """Connect with one version; the client's root is the server root (v4) or
    the mounted *directory* (v3)."""
    host = connect_address(spec, version, options)
    if version == "3":
        if ":" in host:
            raise _Skip("the NFSv3 client of nfs-rs cannot use IPv6 addresses")
        if not _URL_PATH_SAFE.match(directory):
            raise _Skip(f"nfs-rs cannot mount {directory!r} with NFSv3 (unusual characters)")
        url = f"nfs://{host}{directory}"
    else:
        url = f"nfs://{_bracketed(host)}/"
    kwargs: dict = {
        "versions": [version],
        # Reserved source ports need root; knfsd's default "secure" export
        # option wants them, so use them whenever we can.
        "noresvport": os.geteuid() != 0,
        "connect_timeout": max(remaining, 0.001),
        "operation_timeout": options.timeout,
    }
    if spec.port is not None:
        kwargs["nfs_port"] = spec.port
    if spec.mount_port is not None and version == "3":
        kwargs["mount_port"] = spec.mount_port
    return Connection(lib, lib.Client.connect(url, **kwargs), spec, options)


class _Skip(Exception):
    """This version cannot be tried with this location (reason in the text)."""


def _bracketed(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def connect_address(spec: NfsSpec, version: str, options: TransportOptions) -> str:
    """The address to connect to: the host resolved here, checked against the
    address policy (see :mod:`.peers`), so the library never resolves a name.

    NFSv3 prefers an IPv4 address (the library's v3 client has no IPv6).
    """
    import socket

    where = spec.location()
    policy = options.peers_for(spec.host)
    try:
        infos = socket.getaddrinfo(spec.host, spec.port or 2049, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError):
        raise BootError(f"{where}: cannot resolve the host name {spec.host}") from None
    addresses = [str(info[4][0]).split("%", 1)[0] for info in infos]
    if version == "3":
        addresses.sort(key=lambda address: ":" in address)
    allowed = [address for address in addresses if policy.permits(address)]
    if not allowed:
        policy.check(addresses[0], where)
    return allowed[0]
