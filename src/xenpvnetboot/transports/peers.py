"""Which addresses a transport may connect to.

An install server is anyone's.  If it could redirect the bootloader to
``http://127.0.0.1:8080/`` or to the cloud metadata service at
``169.254.169.254``, a service that trusts dom0's own address would hand its
answer to root, and that answer would become the guest's ramdisk, where the
guest's owner reads it.  So connections to dom0's own network -- loopback,
link-local and unspecified addresses, also in their IPv4-mapped IPv6 form --
are refused unless the configuration itself named an address of that class
(an install mirror served by dom0 at ``http://127.0.0.1/`` is legitimate).

The check applies to the address actually connected to, after name
resolution: a host name that resolves to ``127.0.0.1`` (DNS rebinding) is
refused like a redirect to the literal address.  Proxies from the environment
(``http_proxy``...) are the administrator's and are allowed; behind a proxy,
the proxy resolves and connects, and its own policy applies.
"""

from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass
from typing import FrozenSet, Iterable, Optional, Union
from urllib.parse import urlsplit

from ..errors import BootError

LOOPBACK = "loopback"
LINK_LOCAL = "link-local"
UNSPECIFIED = "unspecified"
#: Every address class refused unless named.
GUARDED = frozenset((LOOPBACK, LINK_LOCAL, UNSPECIFIED))
#: Host names that mean this host whatever a resolver says.
_LOCAL_NAMES = ("localhost", "localhost.localdomain", "ip6-localhost", "ip6-loopback")
PROXY_VARIABLES = ("http_proxy", "https_proxy", "ftp_proxy", "all_proxy",
                   "HTTP_PROXY", "HTTPS_PROXY", "FTP_PROXY", "ALL_PROXY")

Address = Union[ipaddress.IPv4Address, ipaddress.IPv6Address]


class RefusedAddress(BootError):
    """A connection to a guarded address class that the configuration did not name."""


def parse_address(text: str) -> Optional[Address]:
    """An IP address literal (brackets and an IPv6 zone allowed), else None."""
    text = text.strip()
    if text.startswith("[") and text.endswith("]"):
        text = text[1:-1]
    text = text.split("%", 1)[0]
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


def address_class(address: Union[str, Address]) -> Optional[str]:
    """The guarded class of *address*, or None for an ordinary address."""
    ip = parse_address(address) if isinstance(address, str) else address
    if ip is None:
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    if ip.is_unspecified or (isinstance(ip, ipaddress.IPv4Address) and ip.packed[0] == 0):
        return UNSPECIFIED
    if ip.is_loopback:
        return LOOPBACK
    if ip.is_link_local:
        return LINK_LOCAL
    return None


def host_class(host: Optional[str]) -> Optional[str]:
    """The guarded class a host as written names: a literal address or ``localhost``."""
    if not host:
        return None
    if host.strip("[]").lower().rstrip(".") in _LOCAL_NAMES:
        return LOOPBACK
    return address_class(host)


@dataclass(frozen=True)
class PeerPolicy:
    """The guarded address classes a boot may still connect to."""

    allowed: FrozenSet[str] = frozenset()

    @classmethod
    def named_by(cls, hosts: Iterable[Optional[str]], environ: Optional[dict] = None,
                 extra: Iterable[str] = ()) -> "PeerPolicy":
        """The policy for a location naming *hosts*, plus the proxies of *environ*
        and the classes in *extra*."""
        allowed = {kind for kind in map(host_class, hosts) if kind}
        allowed.update(extra)
        environ = os.environ if environ is None else environ
        for name in PROXY_VARIABLES:
            value = environ.get(name)
            if value:
                allowed.update(_proxy_classes(value))
        return cls(frozenset(allowed))

    @classmethod
    def anything(cls) -> "PeerPolicy":
        """No restriction (for tests and library use that trusts every server)."""
        return cls(GUARDED)

    def permits(self, address: Union[str, Address]) -> bool:
        kind = address_class(address)
        return kind is None or kind in self.allowed

    def check(self, address: Union[str, Address], where: str) -> None:
        """Raise :class:`RefusedAddress` for a guarded address that was not named."""
        kind = address_class(address)
        if kind is not None and kind not in self.allowed:
            raise RefusedAddress(refusal(where, str(address), kind))


def refusal(where: str, address: str, kind: str) -> str:
    """The one-line message for a refused connection."""
    return (f"{where}: refused to connect to {address}, a {kind} address of this host "
            "that the location does not name")


def _proxy_classes(value: str) -> Iterable[str]:
    """Guarded classes of a proxy setting, resolving a host name (the admin's)."""
    text = value if "://" in value else "http://" + value
    try:
        host = urlsplit(text).hostname
    except ValueError:
        return ()
    kind = host_class(host)
    if kind is not None or not host:
        return (kind,) if kind else ()
    import socket

    try:
        infos = socket.getaddrinfo(host, None)
    except OSError:
        return ()
    return {kind for kind in (address_class(info[4][0]) for info in infos) if kind}


__all__ = [
    "GUARDED", "LINK_LOCAL", "LOOPBACK", "UNSPECIFIED", "PeerPolicy",
    "RefusedAddress", "address_class", "host_class", "parse_address", "refusal",
]
