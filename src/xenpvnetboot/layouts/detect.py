"""Find the kernel/ramdisk pair of an install tree, with as few requests as we can.

Each existence check over http is a round trip, so the search goes from the
most telling file to the least:

1. ``.treeinfo`` (or ``treeinfo``): it names the pair itself, with checksums,
   and beats every fixed path (a tree may keep a stale ``images/xen/`` next
   to a ``.treeinfo`` pointing elsewhere);
2. the other marker files (``.disk/info``, ``content``, ``VERSION``,
   ``.alpine-release``): only the pairs of the family identified are tried;
3. without a marker, or if the marked family's pairs are missing, every
   row of the table that is specific enough to try blind;
4. the six pairs of the original xenpvnetboot, in their order.

Every path is asked about at most once per search.
"""

from __future__ import annotations

import posixpath
from typing import Dict, Iterable, List, Optional, Tuple

from ..errors import BootError, Interrupted, NotFound, TransientError
from ..transports import FileInfo, Tree
from . import treeinfo as treeinfo_mod
from .installargs import install_args
from .model import FileRef, Pair, Selection
from .table import (
    ANACONDA,
    FAMILIES,
    LINUXRC,
    MARKERS,
    ORIGINAL_PAIRS,
    REDHAT,
    SUSE,
    Candidate,
    Family,
    families_marked_by,
)
from .treeinfo import TreeInfo, TreeInfoError

#: Largest marker file other than ``.treeinfo`` that is read.
MARKER_SIZE = 64 << 10


class Probe:
    """Existence checks and small reads on one tree, each path asked once."""

    def __init__(self, tree: Tree) -> None:
        self.tree = tree
        self._stats: Dict[str, Optional[FileInfo]] = {}
        self.tried: List[str] = []
        self.notes: List[str] = []

    def stat(self, path: str) -> Optional[FileInfo]:
        if path not in self._stats:
            try:
                self._stats[path] = self.tree.stat(path)
            except NotFound:
                self._stats[path] = None
        return self._stats[path]

    def read(self, path: str, limit: int) -> Optional[bytes]:
        """A marker's bytes, or None if it is missing or unreadable.

        A marker is a hint: a server refusing dot files (HTTP 403) must not
        stop the search, so only interruptions and network trouble that
        retries did not cure are raised; other failures become a note in the
        final error message.
        """
        try:
            return self.tree.read_bytes(path, limit)
        except NotFound:
            return None
        except (Interrupted, TransientError):
            raise
        except BootError as exc:
            self.notes.append(f"could not read {path}: {exc}")
            return None

    def find(self, pair: Pair) -> Optional[Tuple[FileInfo, FileInfo]]:
        """Both files of *pair*, or None (and the attempt is remembered)."""
        kernel = self.stat(pair.kernel)
        if kernel is None:
            self._remember(pair.kernel)
            return None
        ramdisk = self.stat(pair.ramdisk)
        if ramdisk is None:
            self._remember(f"{pair.kernel} (found, but not {pair.ramdisk})")
            return None
        return kernel, ramdisk

    def _remember(self, text: str) -> None:
        if text not in self.tried:
            self.tried.append(text)

    def failure(self) -> BootError:
        notes = "".join(f"; {note}" for note in self.notes)
        return BootError(
            f"{self.tree.url('')}: no kernel found; tried " + ", ".join(self.tried)
            + notes + " (name the files with --kernel and --ramdisk)"
        )


def _selection(
    probe: Probe, pair: Pair, infos: Tuple[FileInfo, FileInfo], reason: str, args: str = "",
    sums: Tuple[Optional[str], Optional[str]] = (None, None), installer: Optional[str] = None,
) -> Selection:
    tree = probe.tree
    return Selection(
        FileRef(tree, pair.kernel, infos[0], sums[0]),
        FileRef(tree, pair.ramdisk, infos[1], sums[1]),
        reason,
        args,
        installer,
    )


def _where(path: str) -> str:
    return posixpath.dirname(path) or "the location root"


def read_treeinfo(probe: Probe) -> Optional[Tuple[str, TreeInfo]]:
    """(file name, contents) of the tree's ``.treeinfo``, if it has one."""
    for name in treeinfo_mod.NAMES:
        data = probe.read(name, treeinfo_mod.MAX_SIZE)
        if data is None:
            continue
        info = treeinfo_mod.load(data, probe.tree.url(name))
        if info is not None:
            return name, info
    return None


def _treeinfo_args(probe: Probe, info: TreeInfo) -> str:
    return install_args(probe.tree, LINUXRC if info.is_suse else ANACONDA, info.name, info.version)


def from_treeinfo(
    probe: Probe, name: str, info: TreeInfo, arches: Tuple[str, ...]
) -> Optional[Selection]:
    """The pair ``.treeinfo`` names for *arches*; None if it names none for them."""
    info.check_arch(arches)
    missing: List[str] = []
    for platform in info.platform_order(arches):
        if platform not in info.images:
            continue
        kernel, ramdisk = info.images[platform]
        pair = Pair(kernel, ramdisk, f"{name} [images-{platform}]")
        infos = probe.find(pair)
        if infos is None:
            missing.append(f"[images-{platform}] {kernel} + {ramdisk}")
            continue
        return _selection(
            probe, pair, infos, f"{info.label} ({name} [images-{platform}])",
            _treeinfo_args(probe, info), (info.sha256(kernel), info.sha256(ramdisk)),
            LINUXRC if info.is_suse else ANACONDA,
        )
    if missing:
        raise TreeInfoError(
            f"{info.source} names files the tree does not have: " + ", ".join(missing)
        )
    return None


def identify(probe: Probe) -> Optional[Tuple[Family, str, str]]:
    """(family, label, marker) of the first marker file that identifies a family."""
    for marker in MARKERS:
        data = probe.read(marker, MARKER_SIZE)
        if data is None:
            continue
        text = data.decode("utf-8", "replace")
        for family in families_marked_by(marker):
            label = family.identify(text) if family.identify else None
            if label:
                return family, label, marker
    return None


def search(
    probe: Probe, candidates: Iterable[Candidate], label: Optional[str] = None,
    marker: str = "", name: str = "", version: str = "",
) -> Optional[Selection]:
    """The first candidate present; explained by the marker's *label* if given."""
    for candidate in candidates:
        pair = candidate.pair
        infos = probe.find(pair)
        if infos is None:
            continue
        what = f"{candidate.row.what} in {_where(pair.kernel)}"
        reason = f"{label} ({marker}; {what})" if label else f"{candidate.family.name}, {what}"
        args = install_args(probe.tree, candidate.family.installer, name, version)
        return _selection(probe, pair, infos, reason, args, installer=candidate.family.installer)
    return None


def walk(probe: Probe, arches: Tuple[str, ...]) -> Optional[Selection]:
    """Every row worth trying without a marker, then the original pairs."""
    for family in FAMILIES:
        found = search(probe, family.candidates(arches, walking=True))
        if found is not None:
            return found
    for pair in ORIGINAL_PAIRS:
        infos = probe.find(pair)
        if infos is not None:
            return _selection(probe, pair, infos,
                              f"known layout: {pair.origin} ({_where(pair.kernel)})")
    return None


def detect(tree: Tree, arches: Tuple[str, ...]) -> Selection:
    """The pair a PV guest of one of *arches* should boot from *tree* (see module doc)."""
    probe = Probe(tree)
    found: Optional[Selection] = None
    treeinfo = read_treeinfo(probe)
    if treeinfo is not None:
        name, info = treeinfo
        found = from_treeinfo(probe, name, info, arches)
        if found is None:
            family = SUSE if info.is_suse else REDHAT
            found = search(probe, family.candidates(arches), info.label, name,
                           info.name, info.version)
    else:
        marked = identify(probe)
        if marked is not None:
            family, label, marker = marked
            found = search(probe, family.candidates(arches), label, marker)
    if found is None:
        found = walk(probe, arches)
    if found is None:
        raise probe.failure()
    return found


__all__ = ["Probe", "detect", "from_treeinfo", "identify", "read_treeinfo", "search", "walk"]
