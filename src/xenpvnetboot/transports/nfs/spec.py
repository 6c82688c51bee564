"""The NFS location string, parsed once: ``[OPTIONS:]HOST:/PATH`` (see the package docstring)."""

from __future__ import annotations

import dataclasses
import ipaddress
import posixpath
import re
from dataclasses import dataclass
from typing import Any, List, Optional, Tuple

from ...errors import UsageError


#: Negotiation order without ``vers=``, as mount.nfs does it.
DEFAULT_VERSIONS = ("4.1", "4.0", "3")
#: Values of ``vers=`` and the versions each one allows.
VERSION_CHOICES = {"3": ("3",), "4": ("4.1", "4.0"), "4.0": ("4.0",), "4.1": ("4.1",)}
#: Option names accepted in the OPTIONS part (``nfsvers`` as Anaconda spells it).
OPTION_NAMES = ("vers", "nfsvers", "port", "mountport")

_LABEL = re.compile(r"^[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?$")


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
