"""ISO9660 images (Rock Ridge, Joliet, plain 8.3 names, hybrid) via pycdlib.

pycdlib parses the directory records; file data is then read straight from
the source at the extents the records give, in 1 MiB blocks (pycdlib's own
copy loop reads 8 KiB at a time, about three times slower).

One path is looked up in each name set the image carries, in turn: Rock
Ridge (exact names, symlinks), Joliet (exact, then case-insensitive), and
the ISO9660 names themselves, matched case-insensitively without the
``;1`` version and the trailing dot of names without an extension (so
``images/pxeboot/vmlinuz`` finds ``VMLINUZ.;1``).  Names that mkisofs had to
shorten to 8.3 are not guessed back.
"""

from __future__ import annotations

import functools
import re
import struct
from typing import Any, Dict, List, Optional, Tuple

from ..errors import BootError, NotFound
from ..transports.base import ByteSource
from .budget import Budget
from .tree import DIR, FILE, LINK, ExtentSource, ImageTree, Node, import_optional

_PVD_OFFSET = 16 * 2048
_VERSION = re.compile(r";\d*$")
_NOT_D_CHARS = re.compile(r"[^A-Z0-9_.]")

#: Prefix of the case-folded keys of a Joliet listing (no name holds a NUL).
_FOLDED = "\0"

ROCK_RIDGE = "rr_path"
JOLIET = "joliet_path"
PLAIN = "iso_path"


def _plain_key(name: str) -> str:
    """An ISO9660 identifier without version and empty extension, upper-cased."""
    name = _VERSION.sub("", name)
    if name.endswith("."):
        name = name[:-1]
    return name.upper()


class IsoTree(ImageTree):
    kind = "ISO9660"

    def __init__(self, source: ByteSource, budget: Optional[Budget] = None) -> None:
        super().__init__(source, budget)
        pycdlib = import_optional("pycdlib", "pycdlib", "ISO9660")
        self._iso: Any = None
        self._listings: Dict[Tuple[str, Tuple[str, ...]], Dict[str, Node]] = {}
        with self.guard():
            iso = pycdlib.PyCdlib()
            iso.open_fp(self.view.as_file())
            self._iso = iso
            self._block = iso.logical_block_size
            self._name_sets: List[str] = []
            if iso.has_rock_ridge():
                self._name_sets.append(ROCK_RIDGE)
            if iso.has_joliet():
                self._name_sets.append(JOLIET)
            self._name_sets.append(PLAIN)
        self._volume_end = self._declared_size()

    def _declared_size(self) -> int:
        """Bytes the primary volume descriptor says the volume spans.

        pycdlib quietly shortens files that run past the end of a truncated
        image; comparing with this size turns that into an error instead of a
        short kernel.
        """
        pvd = self.source.pread(_PVD_OFFSET, 136)
        if len(pvd) < 136:
            return 0
        (blocks,) = struct.unpack_from("<I", pvd, 80)
        (block_size,) = struct.unpack_from("<H", pvd, 128)
        return blocks * block_size

    def _find(self, path: str) -> Node:
        """Try each name set in turn; the file is missing only if all miss it."""
        missing: Optional[NotFound] = None
        for name_set in self._name_sets:
            try:
                return self._walk(path, functools.partial(self._lookup_in, name_set))
            except NotFound as exc:
                missing = missing or exc
        assert missing is not None
        raise missing

    def _root(self) -> Node:
        return Node(DIR)

    def _lookup_in(self, name_set: str, parent: Node, name: str) -> Optional[Node]:
        listing = self._listing(name_set, parent.path)
        if name_set == ROCK_RIDGE:
            found = listing.get(name)
        elif name_set == JOLIET:
            found = listing.get(name) or listing.get(_FOLDED + name.casefold())
        else:
            key = name.upper()
            found = listing.get(key) or listing.get(_NOT_D_CHARS.sub("_", key))
        return self._check_complete(found)

    def _listing(self, name_set: str, path: Tuple[str, ...]) -> Dict[str, Node]:
        """Entries of one directory by the keys :meth:`_lookup` matches on."""
        cached = self._listings.get((name_set, path))
        if cached is not None:
            return cached
        entries: Dict[str, Node] = {}
        records = self._iso.list_children(**{name_set: "/" + "/".join(path)})
        for rec in records:
            if rec.is_dot() or rec.is_dotdot():
                continue
            name = self._record_name(name_set, rec)
            node = self._node(name_set, rec, path + (name,))
            if name_set == PLAIN:
                entries.setdefault(_plain_key(name), node)
            else:
                entries.setdefault(name, node)
                if name_set == JOLIET:
                    entries.setdefault(_FOLDED + name.casefold(), node)
        self._listings[(name_set, path)] = entries
        return entries

    @staticmethod
    def _record_name(name_set: str, rec: Any) -> str:
        if name_set == ROCK_RIDGE and rec.rock_ridge is not None:
            return rec.rock_ridge.name().decode("utf-8", "surrogateescape")
        ident = rec.file_identifier()
        if name_set == JOLIET:
            return _VERSION.sub("", ident.decode("utf-16-be", "replace"))
        return ident.decode("latin-1")

    def _node(self, name_set: str, rec: Any, path: Tuple[str, ...]) -> Node:
        if rec.is_dir():
            return Node(DIR, path)
        if rec.is_symlink():  # Rock Ridge, whatever name set found the record
            target = rec.rock_ridge.symlink_path().decode("utf-8", "surrogateescape")
            return Node(LINK, path, target=target)
        runs: List[Tuple[int, int]] = []
        part = rec
        while part is not None and len(runs) < 1024:
            runs.append((part.extent_location() * self._block, part.get_data_length()))
            part = part.data_continuation
        return Node(FILE, path, size=sum(n for _, n in runs), ref=runs)

    def _check_complete(self, node: Optional[Node]) -> Optional[Node]:
        """Refuse a file that pycdlib cut short at the end of a truncated image."""
        if node is None or node.kind != FILE or self.source.size >= self._volume_end:
            return node
        if max(offset + length for offset, length in node.ref) >= self.source.size:
            raise BootError(
                f"{self.url('/'.join(node.path))}: the image is truncated "
                f"({self.source.size} of {self._volume_end} bytes)"
            )
        return node

    def _file_source(self, node: Node, name: str) -> ByteSource:
        return ExtentSource(self.source, node.ref, name)

    def _release(self) -> None:
        if self._iso is not None:
            try:
                self._iso.close()
            except Exception:  # nothing to release on a half-parsed image
                pass
            self._iso = None
        self._listings.clear()

