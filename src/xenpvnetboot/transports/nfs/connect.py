"""Connecting as mount.nfs does: the versions in order, all within one timeout."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, List, Sequence, Tuple, Union

from ...errors import BootError, Interrupted
from ..base import TransportOptions
from .client import Connection, _connect_version, _Skip
from .library import _library, _unknown_host, describe_error
from .spec import NfsSpec, split_path
from .walk import resolve


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
