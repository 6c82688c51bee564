"""Signed checksum lists, parsed once into typed values: pure functions, no I/O.

Three formats carry the hashes a distribution signs:

* a Debian ``Release`` file (the text inside ``InRelease``): RFC 822 style
  fields, among them a multi-line ``SHA256:`` field of ``<hex> <size> <path>``
  entries relative to ``dists/<suite>/``;
* a GNU coreutils list (``sha256sum`` output: Debian's installer
  ``SHA256SUMS``, Ubuntu's and Debian's ISO ``SHA256SUMS``):
  ``<hex>  <name>`` or ``<hex> *<name>``, names often starting with ``./``;
* a BSD tag list (``sha256sum --tag``: Fedora, CentOS, Rocky and Alma
  ``CHECKSUM``): ``SHA256 (<name>) = <hex>``, with ``#`` comments.

The text comes from a server that may be hostile, even when signed (a
signer's mistake is still a mistake).  The parsers never raise on odd text
they can skip (a line they do not understand, another algorithm), and refuse
the whole list where skipping could change the answer: a path that leaves the
directory, two different hashes for one path, a repeated ``SHA256`` field.
Sizes are bounded by the caller's read and checked again here.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Dict, Iterator, List, Optional, Tuple

from ..errors import BootError
from ..layouts.text import printable

#: Largest signed list read: Debian's InRelease is ~150 KiB, Ubuntu's ~250 KiB,
#: the installer SHA256SUMS ~80 KiB.  Anything much larger is not a real one.
MAX_LIST_SIZE = 8 << 20
#: Longest line considered; longer ones are skipped as malformed.
MAX_LINE = 4096
#: Most entries kept from one list (a real Release has ~1500).
MAX_ENTRIES = 200_000

_HEX64 = re.compile(r"[0-9a-fA-F]{64}")
_GNU = re.compile(r"([0-9a-fA-F]{64}) [ *](.+)")
_BSD = re.compile(r"SHA256 ?\((.+)\) ?= ?([0-9a-fA-F]{64})")
_RELEASE_ENTRY = re.compile(r"([0-9a-fA-F]{64})\s+(\d{1,15})\s+(\S+)")
_FIELD = re.compile(r"([A-Za-z0-9][A-Za-z0-9-]*):(.*)")


class ListError(BootError):
    """A signed list that cannot be trusted: the boot fails, naming its URL."""


def _lines(data: bytes, source: str) -> Iterator[str]:
    """The lines of *data*, CRLF or LF, undecodable bytes replaced, bounded."""
    if len(data) > MAX_LIST_SIZE:
        raise ListError(f"{source}: {len(data)} bytes, more than the {MAX_LIST_SIZE} a list may have")
    text = data.decode("utf-8", "replace")
    if text.startswith("\ufeff"):
        text = text[1:]
    for line in text.split("\n"):
        if line.endswith("\r"):
            line = line[:-1]
        if len(line) <= MAX_LINE:
            yield line


def list_path(name: str, source: str) -> str:
    """A listed name as a clean relative path; refuse one leaving the directory.

    ``./`` prefixes and doubled slashes are dropped (Debian writes
    ``./netboot/xen/vmlinuz``); absolute paths, ``..``, backslashes and control
    characters refuse the whole list: such an entry could only ever alias
    another file.
    """
    parts = [part for part in name.split("/") if part not in ("", ".")]
    if name.startswith("/") or "\\" in name or ".." in parts or not parts or not name.isprintable():
        raise ListError(
            f"{source}: refusing it, it lists {printable(name)!r}, "
            "which is not a file below its directory"
        )
    return "/".join(parts)


def _add(entries: Dict[str, str], path: str, digest: str, source: str) -> None:
    digest = digest.lower()
    known = entries.get(path)
    if known is not None and known != digest:
        raise ListError(f"{source}: refusing it, it lists two different SHA-256 for {printable(path)}")
    if known is None and len(entries) >= MAX_ENTRIES:
        raise ListError(f"{source}: more than {MAX_ENTRIES} entries")
    entries[path] = digest


def parse_sums(data: bytes, source: str) -> Dict[str, str]:
    """path -> lower-case SHA-256 of a GNU or BSD style list (both may mix).

    Lines of other algorithms (``SHA512 (...)``, a 128-digit hex), comments and
    anything malformed are skipped.
    """
    entries: Dict[str, str] = {}
    for raw in _lines(data, source):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        match = _BSD.fullmatch(line)
        if match is not None:
            _add(entries, list_path(match.group(1), source), match.group(2), source)
            continue
        match = _GNU.fullmatch(raw.rstrip())
        if match is not None:
            _add(entries, list_path(match.group(2), source), match.group(1), source)
    return entries


@dataclass(frozen=True)
class ReleaseEntry:
    """One line of a Release file's ``SHA256`` field."""

    sha256: str
    size: int


@dataclass(frozen=True)
class Release:
    """The fields of a Debian/Ubuntu Release file that the chain needs."""

    source: str
    suite: str
    codename: str
    valid_until: Optional[datetime]
    #: path below ``dists/<suite>/`` -> entry; None when the field is absent.
    sha256: Optional[Dict[str, ReleaseEntry]]

    def entry(self, path: str) -> Optional[ReleaseEntry]:
        return None if self.sha256 is None else self.sha256.get(path)

    def check_suite(self, directory: str) -> None:
        """Refuse the Release of another suite served in this one's place.

        A mirror (or a man in the middle) could answer with an older suite's
        genuinely signed Release and so boot an older installer; apt warns
        about the same mismatch.
        """
        names = {name for name in (self.suite, self.codename) if name}
        if names and directory not in names:
            raise ListError(
                f"{self.source}: it is the Release of {printable(' / '.join(sorted(names)))}, "
                f"not of dists/{printable(directory)}"
            )

    def check_fresh(self, now: datetime) -> None:
        """Refuse a Release past its ``Valid-Until`` (a replayed old one)."""
        if self.valid_until is not None and now > self.valid_until:
            raise ListError(
                f"{self.source}: expired on {self.valid_until:%Y-%m-%d %H:%M} UTC (Valid-Until)"
            )


def _fields(data: bytes, source: str) -> List[Tuple[str, List[str]]]:
    """(name, [first line, continuation lines...]) of the first paragraph."""
    fields: List[Tuple[str, List[str]]] = []
    for line in _lines(data, source):
        if not line.strip():
            if fields:
                break  # a Release file has one paragraph; the rest is ignored
            continue
        if line[0] in " \t":
            if fields:
                fields[-1][1].append(line.strip())
            continue
        match = _FIELD.fullmatch(line)
        if match is not None:
            fields.append((match.group(1).lower(), [match.group(2).strip()]))
    return fields


def _date(value: str) -> Optional[datetime]:
    from email.utils import parsedate_to_datetime  # only Releases with Valid-Until pay for it

    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    return when if when.tzinfo is not None else when.replace(tzinfo=timezone.utc)


def parse_release(data: bytes, source: str) -> Release:
    """Interpret the (already verified) text of a Release file."""
    values: Dict[str, str] = {}
    sha256: Optional[Dict[str, ReleaseEntry]] = None
    for name, lines in _fields(data, source):
        if name == "sha256":
            if sha256 is not None:
                raise ListError(f"{source}: refusing it, it has two SHA256 fields")
            sha256 = {}
            digests: Dict[str, str] = {}
            for line in lines[1:]:
                match = _RELEASE_ENTRY.fullmatch(line)
                if match is None:
                    continue
                path = list_path(match.group(3), source)
                _add(digests, path, match.group(1), source)
                sha256[path] = ReleaseEntry(digests[path], int(match.group(2)))
        else:
            values.setdefault(name, lines[0])
    valid_until = values.get("valid-until")
    return Release(
        source=source,
        suite=values.get("suite", ""),
        codename=values.get("codename", ""),
        valid_until=_date(valid_until) if valid_until else None,
        sha256=sha256,
    )


def is_hex_sha256(text: str) -> bool:
    return _HEX64.fullmatch(text) is not None


__all__ = ["ListError", "MAX_LIST_SIZE", "Release", "ReleaseEntry", "is_hex_sha256",
           "list_path", "parse_release", "parse_sums"]
