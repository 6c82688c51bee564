"""Small files that say which distribution a tree or medium belongs to.

Each reader gets the text of one marker file and returns a label to show
(the distribution and version as the file states them) when the file is the
one it knows, or None.  They never raise: the files come from the network
and a mirror's error page must not stop the search.
"""

from __future__ import annotations

import re
from typing import Dict, Optional

from .text import looks_like_html, printable


def _first_line(text: str) -> str:
    for line in text.splitlines():
        if line.strip():
            return printable(line)
    return ""


def _disk_info(text: str, word: str) -> Optional[str]:
    """``.disk/info`` of Debian and Ubuntu media: one line naming the medium."""
    if looks_like_html(text):
        return None
    line = _first_line(text)
    return line if word in line.lower() else None


def debian_disk_info(text: str) -> Optional[str]:
    """e.g. ``Debian GNU/Linux 12.5.0 "Bookworm" - Official amd64 NETINST``."""
    return _disk_info(text, "debian")


def ubuntu_disk_info(text: str) -> Optional[str]:
    """e.g. ``Ubuntu-Server 22.04.4 LTS "Jammy Jellyfish" - Release amd64``."""
    return _disk_info(text, "ubuntu")


#: Keys of a SUSE ``content`` file; any of them makes the file one.
_SUSE_KEYS = ("CONTENTSTYLE", "DATADIR", "DESCRDIR", "PRODUCT", "DISTRO", "LABEL", "BASEARCHS")


def suse_content(text: str) -> Optional[str]:
    """SUSE ``content`` (SLES 9-12, openSUSE up to Leap 42): ``KEY value`` lines."""
    if looks_like_html(text):
        return None
    fields: Dict[str, str] = {}
    for line in text.splitlines():
        key, _, value = line.strip().partition(" ")
        if key.isupper() and key not in fields:
            fields[key] = value.strip()
    if not any(key in fields for key in _SUSE_KEYS):
        return None
    if fields.get("LABEL"):
        return printable(fields["LABEL"])
    distro = fields.get("DISTRO", "")
    if "," in distro:
        return printable(distro.split(",", 1)[1])
    name = fields.get("PRODUCT") or fields.get("NAME") or "SUSE"
    return printable(f"{name} {fields.get('VERSION', '')}")


_MAGEIA = re.compile(r"\s*(Mageia|Mandriva|Mandrakelinux)\b", re.IGNORECASE)


def mageia_version(text: str) -> Optional[str]:
    """Mageia's ``VERSION``: ``Mageia 9 x86_64 ...`` (Mandriva wrote the same)."""
    if looks_like_html(text) or not _MAGEIA.match(text):
        return None
    return _first_line(text)


def alpine_release(text: str) -> Optional[str]:
    """``.alpine-release`` of Alpine media: its presence is the marker."""
    if looks_like_html(text):
        return None
    line = _first_line(text)
    return f"Alpine Linux ({line})" if line else "Alpine Linux"
