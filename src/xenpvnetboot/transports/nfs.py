"""NFS locations, read in userspace: nothing is mounted, no kernel client needed.

Location forms (the first two are those of the original tool)::

    nfs:HOST:/PATH                  a directory tree on an NFS export
    nfs+iso:HOST:/PATH/IMAGE        an ISO or filesystem image on an export,
                                    read in place by offset
    nfs:OPTIONS:HOST:/PATH          either of the above with options,
    nfs+iso:OPTIONS:HOST:/PATH      as in Anaconda's ``inst.repo=nfs:...``

``HOST`` is a host name, an IPv4 address or a bracketed IPv6 address
(``nfs:[::1]:/srv/install``).  ``OPTIONS`` is a comma-separated list of
``key=value`` items, told from a host name by its ``=`` (host names never
contain one):

``vers=3``, ``vers=4``, ``vers=4.0``, ``vers=4.1`` (or ``nfsvers=``)
    Use only this NFS version (``4``: 4.1, else 4.0).  Without it the
    versions are negotiated as ``mount -t nfs`` does: 4.1, then 4.0, then 3.
``port=N``
    The NFS service port (default 2049; NFSv3 asks rpcbind when absent).
``mountport=N``
    The NFSv3 MOUNT service port (default: ask rpcbind on port 111).

Example: ``nfs:vers=3,port=2050:[fd00::1]:/srv/install``.

NFSv4 paths are walked from the server's root (pseudo) filesystem, following
symlinks in the location path the way a mount does.  NFSv3 mounts the
location directory itself through the MOUNT protocol (nfs-rs cannot do
NFSv3 over IPv6, so such locations use NFSv4 only).  Below the location,
symlinks are resolved here, one component at a time, and may not lead out
of it: neither ``..`` nor a link reaches other files of the server, and
absolute link targets (which name files of whatever host mounts the
export) are refused.

Connecting, all versions together, takes at most ``--timeout`` seconds, and
so does each later call; its error names the server, the path and what each
version answered.  A missing file is :class:`NotFound`; a server that went
silent or away mid-session is :class:`TransientError`.

The client library, ``nfs-rs`` (Python >= 3.11, Linux x86_64), is imported
only when an NFS location is used.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import os
import posixpath
import re
import time
from collections import deque
from dataclasses import dataclass
from typing import Any, Callable, Deque, List, Optional, Sequence, Tuple, Union

from ..errors import BootError, Interrupted, NotFound, TransientError, UsageError
from .base import ByteSource, FileInfo, Sink, TransportOptions, Tree, clean_path

#: Bytes asked for per read call.  The library splits a call into up to eight
#: concurrent RPCs of the negotiated size (1 MiB with NFSv4.1 sessions), so a
#: block of a few MiB keeps several requests in flight; see bench/bench_nfs.py.
BLOCK = 4 << 20
#: Symlinks followed while resolving one path (Linux allows 40 as well).
MAX_SYMLINKS = 40
#: Longest symlink target accepted (PATH_MAX).
MAX_LINK_TARGET = 4096
#: Negotiation order without ``vers=``, as mount.nfs does it.
DEFAULT_VERSIONS = ("4.1", "4.0", "3")
#: Values of ``vers=`` and the versions each one allows.
VERSION_CHOICES = {"3": ("3",), "4": ("4.1", "4.0"), "4.0": ("4.0",), "4.1": ("4.1",)}
#: Option names accepted in the OPTIONS part (``nfsvers`` as Anaconda spells it).
OPTION_NAMES = ("vers", "nfsvers", "port", "mountport")

_LABEL = re.compile(r"^[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?$")
#: Characters the library takes literally in the path of its nfs:// URL (it
#: neither decodes %XX nor allows space, ``?`` or ``#``); NFSv3 mount paths
#: must stay within them, NFSv4 paths never go through the URL.
_URL_PATH_SAFE = re.compile(r"^[A-Za-z0-9._~/!$&'()*+,;=:@%-]*$")


# -- the location string ------------------------------------------------------


@dataclass(frozen=True)
class NfsSpec:
    """A parsed ``HOST:/PATH`` with its options; see the module docstring."""

    host: str
    path: str
    versions: Tuple[str, ...] = DEFAULT_VERSIONS
    port: Optional[int] = None
    mount_port: Optional[int] = None
    #: The OPTIONS part as given back in URLs ("" when none were given).
    options: str = ""

    @property
    def is_ipv6(self) -> bool:
        return ":" in self.host

    @property
    def url_host(self) -> str:
        """The host as written in locations and URLs (IPv6 in brackets)."""
        return f"[{self.host}]" if self.is_ipv6 else self.host

    def location(self, path: Optional[str] = None, scheme: str = "nfs") -> str:
        """``nfs:[OPTIONS:]HOST:PATH`` for *path* (default: the spec's own)."""
        options = f"{self.options}:" if self.options else ""
        return f"{scheme}:{options}{self.url_host}:{self.path if path is None else path}"

    def with_path(self, path: str) -> "NfsSpec":
        return dataclasses.replace(self, path=path)


def parse_spec(spec: str) -> NfsSpec:
    """Parse what follows ``nfs:`` or ``nfs+iso:``; UsageError if malformed."""
    if not isinstance(spec, str) or any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in spec):
        raise UsageError(f"NFS location {spec!r}: contains control characters")
    head, sep, rest = spec.partition(":")
    options: dict = {}
    text = spec
    if sep and "=" in head:
        options = _parse_options(head, spec)
        text = rest
    host, path = _split_host(text, spec)
    versions = VERSION_CHOICES[options["vers"]] if "vers" in options else DEFAULT_VERSIONS
    return NfsSpec(
        host=host,
        path=_normalise_path(path, spec),
        versions=versions,
        port=options.get("port"),
        mount_port=options.get("mountport"),
        options=_format_options(options),
    )


def _parse_options(text: str, spec: str) -> dict:
    """``key=value,...`` into a dict with ports as ints and ``vers`` checked."""
    options: dict = {}
    for item in text.split(","):
        key, sep, value = item.partition("=")
        key = "vers" if key == "nfsvers" else key
        if not sep or key not in OPTION_NAMES:
            raise UsageError(
                f"NFS location {spec!r}: unknown option {item!r} "
                f"(known: {', '.join(name + '=' for name in OPTION_NAMES)})"
            )
        if key in options:
            raise UsageError(f"NFS location {spec!r}: option {key}= given twice")
        options[key] = _option_value(key, value, spec)
    return options


def _option_value(key: str, value: str, spec: str) -> Any:
    if key == "vers":
        if value not in VERSION_CHOICES:
            raise UsageError(
                f"NFS location {spec!r}: vers={value!r} is not one of "
                f"{', '.join(VERSION_CHOICES)}"
            )
        return value
    if not (value.isascii() and value.isdigit()) or not 1 <= int(value) <= 65535:
        raise UsageError(f"NFS location {spec!r}: {key}={value!r} is not a port number")
    return int(value)


def _format_options(options: dict) -> str:
    return ",".join(f"{key}={options[key]}" for key in ("vers", "port", "mountport") if key in options)


def _split_host(text: str, spec: str) -> Tuple[str, str]:
    """``HOST:/PATH`` or ``[IPV6]:/PATH`` into host and path, both checked."""
    if text.startswith("["):
        end = text.find("]")
        host, rest = text[1:end], text[end + 1:]
        if end < 0 or not rest.startswith(":"):
            raise UsageError(f"NFS location {spec!r}: expected [IPV6-ADDRESS]:/PATH")
        _check_ipv6(host, spec)
        return host, rest[1:]
    host, sep, path = text.partition(":")
    if not sep:
        raise UsageError(f"NFS location {spec!r}: expected HOST:/PATH")
    if not _valid_host(host):
        raise UsageError(
            f"NFS location {spec!r}: {host!r} is not a host name or IPv4 address "
            "(write IPv6 addresses in brackets: [::1]:/path)"
        )
    return host, path


def _check_ipv6(host: str, spec: str) -> None:
    try:
        ipaddress.IPv6Address(host)
    except ValueError:
        raise UsageError(f"NFS location {spec!r}: {host!r} is not an IPv6 address") from None
    if "%" in host:
        raise UsageError(f"NFS location {spec!r}: IPv6 zone indices are not supported")


def _valid_host(host: str) -> bool:
    if not host or len(host) > 253 or not host.isascii():
        return False
    if re.fullmatch(r"[0-9.]+", host):
        try:
            ipaddress.IPv4Address(host)
        except ValueError:
            return False
        return True
    return all(_LABEL.match(label) for label in host.split("."))


def _normalise_path(path: str, spec: str) -> str:
    """The absolute export path, ``.``/``..``/``//`` resolved lexically."""
    if not path.startswith("/"):
        raise UsageError(f"NFS location {spec!r}: the path must be absolute (HOST:/PATH)")
    return posixpath.normpath("/" + path.lstrip("/"))


def split_path(path: str) -> List[str]:
    """The components of an absolute or relative path, without empty ones."""
    return [part for part in path.split("/") if part not in ("", ".")]


# -- the library and its errors --------------------------------------------------


#: What nfs-rs and our name resolution import only when first used.
_LAZY_MODULES = ("nfs_rs._internal", "encodings.idna")


def preload() -> None:
    """Load nfs-rs now (and what it loads on first use), for a --runas worker
    that may not read the Python installation later."""
    import importlib

    try:
        _library()
    except BootError:
        return  # reported when an NFS location is really opened
    for name in _LAZY_MODULES:
        try:
            importlib.import_module(name)
        except ImportError:
            pass


def _library() -> Any:
    """Import nfs-rs on first use, naming the package if it is missing."""
    try:
        import nfs_rs
    except ImportError as exc:
        raise BootError(
            "NFS locations need the Python package nfs-rs "
            f"(pip install nfs-rs; Python 3.11 or later on Linux x86_64): {exc}"
        ) from None
    return nfs_rs


def _chain(exc: Optional[BaseException]) -> List[BaseException]:
    found = []
    while exc is not None and len(found) < 10:
        found.append(exc)
        exc = exc.__cause__
    return found


def _is_transient(lib: Any, exc: BaseException) -> bool:
    """A failure worth repeating: the server asked for a retry.

    NFSv4.1 servers answer NFS4ERR_RETRY_UNCACHED_REP now and then when a
    session slot is reused (ganesha does); the library marks it retryable,
    or "uncertain" for OPEN.  Every call made here only reads, so repeating
    one is always safe.
    """
    return any(
        isinstance(item, (lib.NfsRetryableError, lib.NfsUncertainOutcomeError))
        for item in _chain(exc)
    )


def describe_error(exc: BaseException, timeout: float) -> str:
    """A short reason for one library failure, without the library's jargon."""
    message = str(exc).strip() or type(exc).__name__
    if isinstance(exc, TimeoutError):
        return f"no answer within {timeout:g} s ({message})"
    if isinstance(exc, FileNotFoundError):
        return "no such file or directory"
    if isinstance(exc, PermissionError):
        return "permission denied"
    if isinstance(exc, ConnectionError):
        return f"cannot connect: {message}"
    if _unknown_host(exc):
        return "cannot resolve the host name"
    return message


def _unknown_host(exc: BaseException) -> bool:
    """getaddrinfo failed (the library reports it as a bare OSError text)."""
    return "lookup address information" in str(exc)


def _boot_error(exc: BaseException, where: str, timeout: float) -> BootError:
    """The error for a failed call on *where*: NotFound for a missing file,
    TransientError when the server went silent or away (a retry may help)."""
    if isinstance(exc, (FileNotFoundError, NotADirectoryError)):
        return NotFound(f"{where}: no such file")
    if isinstance(exc, IsADirectoryError):
        return NotFound(f"{where}: is a directory")
    if isinstance(exc, (TimeoutError, ConnectionError)):
        return TransientError(f"{where}: {describe_error(exc, timeout)}")
    return BootError(f"{where}: {describe_error(exc, timeout)}")


# -- one connection to the server -------------------------------------------------


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


@dataclass
class _Attempt:
    version: str
    reason: str
    unreachable: bool = False
    fatal: bool = False


def connect(spec: NfsSpec, directory: str, options: TransportOptions) -> Tuple[Connection, Tuple[str, ...]]:
    """Connect to the first version that serves *directory*, like mount.nfs.

    Returns the connection and the components of *directory* below the
    client's root.  All attempts together take at most ``options.timeout``;
    the error names the server, the path and what each version answered.
    """
    lib = _library()
    deadline = time.monotonic() + options.timeout
    attempts: List[_Attempt] = []
    for version in spec.versions:
        if _skip_version(version, attempts):
            continue
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            attempts.append(_Attempt(version, f"not tried: {options.timeout:g} s timeout used up"))
            break
        attempt = _try_version(lib, spec, version, directory, remaining, options)
        if isinstance(attempt, tuple):
            if options.verbose:
                options.note(f"{spec.with_path(directory).location()}: NFSv{version}")
            return attempt
        attempts.append(attempt)
    raise _connect_error(spec.with_path(directory), attempts)


def _skip_version(version: str, attempts: Sequence[_Attempt]) -> bool:
    """Whether earlier failures make *version* pointless to try.

    A host name that does not resolve fails every version.  A 4.x server
    that refused or ignored the connection is down for the other 4.x as well
    (same port); NFSv3 may still live elsewhere (rpcbind), so it is tried.
    """
    if any(attempt.fatal for attempt in attempts):
        return True
    return version.startswith("4") and any(
        attempt.unreachable and attempt.version.startswith("4") for attempt in attempts
    )


def _try_version(
    lib: Any, spec: NfsSpec, version: str, directory: str, remaining: float,
    options: TransportOptions,
) -> Union[Tuple[Connection, Tuple[str, ...]], _Attempt]:
    """A (connection, root) pair, or the :class:`_Attempt` saying why not."""
    try:
        connection = _connect_version(lib, spec, version, directory, remaining, options)
    except _Skip as exc:
        return _Attempt(version, str(exc))
    except lib.NfsError as exc:
        reason = describe_error(exc, options.timeout)
        if isinstance(exc, lib.NfsMountError):
            reason = f"the server refused to mount {directory} ({reason})"
        return _Attempt(
            version,
            reason,
            unreachable=isinstance(exc, (ConnectionError, TimeoutError)),
            fatal=_unknown_host(exc),
        )
    where = spec.location(directory)
    try:
        return connection, _locate(connection, directory, where)
    except BaseException as exc:
        connection.close()
        if isinstance(exc, Interrupted) or not isinstance(exc, BootError):
            raise
        reason = str(exc)
        return _Attempt(version, reason[len(where) + 2:] if reason.startswith(where + ": ") else reason)


def _locate(connection: Connection, directory: str, where: str) -> Tuple[str, ...]:
    """The components of the location directory from the client's root.

    NFSv4 walks from the server root following symlinks (anywhere on the
    server: the user chose this path); NFSv3 has mounted the directory.
    """
    if connection.version == "3":
        parts: Tuple[str, ...] = ()
        entry = connection.stat(parts, where)
    else:
        parts, entry = resolve(connection, (), split_path(directory), 0, where, absolute_ok=True)
    if entry.kind != "directory":
        raise BootError(f"{where}: not a directory")
    return parts


def _connect_error(spec: NfsSpec, attempts: Sequence[_Attempt]) -> BootError:
    reasons = "; ".join(f"NFSv{attempt.version}: {attempt.reason}" for attempt in attempts)
    return BootError(
        f"{spec.location()}: cannot open {spec.path} on NFS server {spec.url_host} ({reasons})"
    )


# -- symlinks ---------------------------------------------------------------------


def resolve(
    connection: Connection,
    start: Tuple[str, ...],
    names: Sequence[str],
    floor: int,
    where: str,
    absolute_ok: bool = False,
) -> Tuple[Tuple[str, ...], Entry]:
    """Walk *names* from *start*, following symlinks; return (path, entry).

    The server never follows a symlink for us (LOOKUP stops at it), so one
    ``stat`` of the whole path proves there is none on the way; only when
    it meets one is the path walked component by component, each link read
    and its target resolved against the directories really walked, as the
    kernel does.  ``..`` may not climb above the first *floor* components:
    a link leading out of the location is refused, not clamped.  Absolute
    targets name files of whatever host mounts the export, so they are
    refused too, except when *absolute_ok* (the location path itself on an
    NFSv4 server, walked from the server root).
    """
    path = tuple(start) + tuple(names)
    entry = connection.probe(path, where) if names else connection.stat(path, where)
    if entry is not None and entry.kind != "symlink":
        return path, entry
    return _walk(connection, start, names, floor, where, absolute_ok)


def _walk(
    connection: Connection,
    start: Tuple[str, ...],
    names: Sequence[str],
    floor: int,
    where: str,
    absolute_ok: bool,
) -> Tuple[Tuple[str, ...], Entry]:
    todo: Deque[str] = deque(names)
    done: List[str] = list(start)
    entry: Optional[Entry] = None  # of done[-1], None when not known
    links = 0
    while todo:
        name = todo.popleft()
        if name in ("", "."):
            continue
        if name == "..":
            if len(done) <= floor:
                raise BootError(f"{where}: a symbolic link leads outside the location")
            done.pop()
            entry = None
            continue
        entry = connection.stat(tuple(done) + (name,), where)
        if entry.kind == "symlink":
            links += 1
            if links > MAX_SYMLINKS:
                raise BootError(f"{where}: too many levels of symbolic links")
            target = _link_target(connection, tuple(done) + (name,), where)
            if target.startswith("/"):
                if not absolute_ok:
                    raise BootError(
                        f"{where}: symbolic link {'/'.join(done[floor:] + [name])} -> {target} "
                        "is absolute and may lead outside the location"
                    )
                del done[:]
            todo.extendleft(reversed(target.split("/")))
            entry = None
            continue
        if entry.kind != "directory" and any(part not in ("", ".") for part in todo):
            raise NotFound(f"{where}: {'/'.join(done[floor:] + [name])} is not a directory")
        done.append(name)
    return tuple(done), entry or connection.stat(tuple(done), where)


def _link_target(connection: Connection, parts: Tuple[str, ...], where: str) -> str:
    target = connection.readlink(parts, where)
    if not target or len(target) > MAX_LINK_TARGET:
        raise NotFound(f"{where}: unusable symbolic link {'/'.join(parts)}")
    return target


# -- trees and sources ------------------------------------------------------------


def _check_file(entry: Entry, where: str) -> None:
    if entry.kind == "directory":
        raise NotFound(f"{where}: is a directory")
    if entry.kind != "file":
        raise NotFound(f"{where}: not a regular file")


class NfsTree(Tree):
    """The files below one directory of an NFS export."""

    cacheable = True

    def __init__(self, connection: Connection, spec: NfsSpec, root: Tuple[str, ...]) -> None:
        self.connection = connection
        self.spec = spec
        self.root = root
        self._closed = False

    def url(self, path: str) -> str:
        base = self.spec.path.rstrip("/") + "/"
        return self.spec.location(base + path.lstrip("/"))

    def _find(self, path: str) -> Tuple[Tuple[str, ...], Entry, str]:
        """Resolve *path* to a regular file: (components, attributes, url)."""
        if self._closed:
            raise BootError(f"{self.spec.location()}: already closed")
        rel = clean_path(path)
        where = self.url(rel)
        if not rel:
            raise NotFound(f"{where}: is a directory")
        parts, entry = resolve(self.connection, self.root, split_path(rel), len(self.root), where)
        _check_file(entry, where)
        return parts, entry, where

    def stat(self, path: str) -> FileInfo:
        _, entry, _ = self._find(path)
        return FileInfo(size=entry.size, mtime=entry.mtime_ns / 1e9)

    def open_source(self, path: str) -> "NfsSource":
        parts, entry, where = self._find(path)
        return NfsSource(self.connection, parts, entry.size, where)

    def fetch(self, path: str, sink: Sink) -> None:
        """Stream *path* through one reusable buffer (no per-block allocation).

        The buffer is one byte larger than a small file, so that a single
        read both returns it and shows its end.
        """
        with self.open_source(path) as source:
            sink.expect(source.size)
            buffer = bytearray(min(BLOCK, source.size + 1))
            view = memoryview(buffer)
            offset = 0
            while True:
                count = source.readinto(offset, buffer)
                offset += count
                if count and sink.write(view[:count]) != count:
                    break
                if count < len(buffer):
                    break  # reads are short only at the end of the file
        sink.check_complete()

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self.connection.close()


class NfsSource(ByteSource):
    """Random access to one file on the server, by offset (pread over NFS)."""

    def __init__(
        self, connection: Connection, parts: Tuple[str, ...], size: int, name: str,
        owns_connection: bool = False,
    ) -> None:
        self.connection = connection
        self.name = name
        self._size = size
        self._owns_connection = owns_connection
        self._file: Any = connection.open(parts, name)

    @property
    def size(self) -> int:
        return self._size

    def _handle(self) -> Any:
        if self._file is None:
            raise BootError(f"{self.name}: already closed")
        return self._file

    def pread(self, offset: int, length: int) -> bytes:
        if length <= 0 or offset >= self._size:
            return b""
        return self.connection.call(self.name, self._handle().read_at, offset, length)

    def readinto(self, offset: int, buffer: bytearray) -> int:
        """Fill *buffer* from *offset*; the count is short only at the end."""
        return self.connection.call(self.name, self._handle().readinto_at, buffer, offset)

    def close(self) -> None:
        file, self._file = self._file, None
        try:
            if file is not None:
                try:
                    file.close()
                except self.connection.lib.NfsError:
                    pass
        finally:
            if self._owns_connection:
                self.connection.close()

    def __enter__(self) -> "NfsSource":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# -- entry point -----------------------------------------------------------------


def open_nfs(spec: Union[NfsSpec, str], options: TransportOptions, image: bool) -> Tree:
    """The tree an ``nfs:`` (directory) or ``nfs+iso:`` (image) location names."""
    parsed = parse_spec(spec) if isinstance(spec, str) else spec
    if image:
        return _open_image(parsed, options)
    connection, root = connect(parsed, parsed.path, options)
    return NfsTree(connection, parsed, root)


def _open_image(spec: NfsSpec, options: TransportOptions) -> Tree:
    """Open the image file on the export and read it in place as a tree.

    The image path is the location path, so a symlink in its name may lead
    anywhere on the server, as for a directory location.  The byte source
    owns the connection: closing the image tree closes both.
    """
    directory, name = posixpath.split(spec.path)
    where = spec.location(scheme="nfs+iso")
    if not name:
        raise UsageError(f"{where}: names no image file")
    connection, root = connect(spec, directory, options)
    try:
        parts, entry = resolve(connection, root, [name], 0, where, absolute_ok=connection.version != "3")
        _check_file(entry, where)
        source = NfsSource(connection, parts, entry.size, spec.location(), owns_connection=True)
    except BaseException:
        connection.close()
        raise
    from ..containers import take_image

    return take_image(source, options)


__all__ = [
    "BLOCK",
    "NfsSource",
    "NfsSpec",
    "NfsTree",
    "connect",
    "open_nfs",
    "parse_spec",
]
