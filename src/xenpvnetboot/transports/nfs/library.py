"""nfs-rs, imported on first use, and its errors turned into ours.

Nothing above this module sees an ``nfs_rs`` type or exception text.
"""

from __future__ import annotations

from typing import Any, List, Optional

from ...errors import BootError, NotFound, TransientError


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
