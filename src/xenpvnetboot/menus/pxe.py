"""PXELINUX's per-machine configuration files, for guests that have no PXE ROM.

A PXE server keeps one menu per machine under ``pxelinux.cfg/``; PXELINUX
asks for them in a fixed order and takes the first that exists:

1. ``01-<mac>``: ARP hardware type 1 (Ethernet), then the MAC address in
   lower-case hex with dashes (``01-00-16-3e-12-34-56``);
2. the IPv4 address as eight upper-case hex digits (``C0A8010A`` for
   192.168.1.10), then the same with one digit fewer at a time, down to one
   (``C0A8010``, ..., ``C``), which lets one file serve a subnet;
3. ``default``.

PXELINUX tries the machine's UUID first; a Xen guest's UUID is not given
to the bootloader, so that step is left out.  libxl does not pass the
guest's MAC or IP either: they come from ``--mac=`` and ``--ip=`` in
``bootloader_args``.  Cobbler and Foreman write exactly these files.
"""

from __future__ import annotations

import ipaddress
import re
from typing import List, Optional

from ..errors import UsageError

CONFIG_DIR = "pxelinux.cfg"
_MAC_GROUPS = re.compile(r"^[0-9A-Fa-f]{1,2}([:-])(?:[0-9A-Fa-f]{1,2}\1){4}[0-9A-Fa-f]{1,2}$")
_MAC_PLAIN = re.compile(r"^[0-9A-Fa-f]{12}$")


def parse_mac(text: str, option: str = "--mac") -> str:
    """``00:16:3E:12:34:56``, ``00-16-3e-12-34-56`` or ``00163e123456`` -> ``00:16:3e:12:34:56``."""
    value = text.strip()
    if _MAC_PLAIN.match(value):
        octets = [value[i:i + 2] for i in range(0, 12, 2)]
    elif _MAC_GROUPS.match(value):
        octets = [group.rjust(2, "0") for group in re.split(r"[:-]", value)]
    else:
        raise UsageError(f"{option}={text!r}: not a MAC address "
                         "(six hex bytes, e.g. 00:16:3e:12:34:56)")
    if int(octets[0], 16) & 1:
        raise UsageError(f"{option}={text!r}: a multicast address, not a network card's")
    return ":".join(octets).lower()


def parse_ipv4(text: str, option: str = "--ip") -> ipaddress.IPv4Address:
    """A guest's IPv4 address (PXELINUX names configurations after IPv4 addresses)."""
    try:
        address = ipaddress.IPv4Address(text.strip())
    except ValueError:
        raise UsageError(f"{option}={text!r}: not an IPv4 address "
                         "(PXELINUX names configurations after IPv4 addresses)") from None
    if address.is_multicast or address.is_unspecified or int(address) == 0xFFFFFFFF:
        raise UsageError(f"{option}={text!r}: not an address a guest can have")
    return address


def config_names(mac: Optional[str] = None,
                 ip: Optional[ipaddress.IPv4Address] = None) -> List[str]:
    """File names below ``pxelinux.cfg/`` in PXELINUX's order (see module doc).

    *mac* is a value returned by :func:`parse_mac`.
    """
    names: List[str] = []
    if mac:
        names.append("01-" + mac.lower().replace(":", "-"))
    if ip is not None:
        hexa = f"{int(ip):08X}"
        names.extend(hexa[:length] for length in range(8, 0, -1))
    names.append("default")
    return names


def config_paths(mac: Optional[str] = None,
                 ip: Optional[ipaddress.IPv4Address] = None) -> List[str]:
    """:func:`config_names` as paths relative to the PXE server's root."""
    return [f"{CONFIG_DIR}/{name}" for name in config_names(mac, ip)]


def bootif(mac: str) -> str:
    """``BOOTIF=01-<mac>``, what ``ipappend 2`` adds to tell the installer its NIC."""
    return "BOOTIF=01-" + mac.lower().replace(":", "-")
