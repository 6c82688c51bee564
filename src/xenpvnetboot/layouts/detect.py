"""Find the kernel/ramdisk pair of an install tree, in as few round trips as we can.

The search goes from the most telling file to the least:

1. ``.treeinfo`` (or ``treeinfo``): it names the pair itself, with checksums,
   and beats every fixed path (a tree may keep a stale ``images/xen/`` next
   to a ``.treeinfo`` pointing elsewhere);
2. the other marker files (``.disk/info``, ``content``, ``VERSION``,
   ``.alpine-release``): only the pairs of the family identified are tried;
3. without a marker, or if the marked family's pairs are missing, every
   row of the table that is specific enough to try blind, then the six
   pairs of the original xenpvnetboot, in their order;
4. only when no complete pair exists anywhere: what the original tool booted,
   the first kernel of its list with the first ramdisk of its list (or
   none), with a warning naming both.  Pairs are never mixed otherwise.

On a tree that overlaps requests (see :mod:`.probe`) the first step asks
the markers and the likeliest pair together (about a dozen requests),
and the second the few pairs of the family a marker named: most trees
cost two steps before their files are fetched.  A tree without a marker
or the likeliest pair costs a step more: its top-level directories, then
what they leave of the walk.  Over http a step of n requests is
ceil(n / 6) round trips (the transport keeps six connections to a server
at most, each carrying one request at a time), so there the first step is
split: the markers, then the likeliest pair only if no marker decided (it
and the location itself ride along in a later round trip's free places).
A marked family's pairs then come in the second round trip, and a Debian
mirror's pair still does.  Elsewhere every path is asked at most once, in
the order above.
"""

from __future__ import annotations

import posixpath
from typing import Callable, Dict, List, Optional, Sequence, Tuple

from ..errors import BootError
from ..transports import FileInfo, Tree
from . import treeinfo as treeinfo_mod
from .installargs import install_args
from .model import FileRef, Pair, Selection
from .probe import Probe
from .table import (ANACONDA, FAMILIES, LINUXRC, MARKERS, ORIGINAL_PAIRS, REDHAT, SUSE, Candidate,
                    Family, families_marked_by, kernels_alone, short_names)
from .treeinfo import TreeInfo, TreeInfoError

#: Largest marker file other than ``.treeinfo`` that is read.
MARKER_SIZE = 64 << 10
#: Where warnings and ``-v`` details go (the console).
Say = Callable[[str], None]


def _where(path: str) -> str:
    return posixpath.dirname(path) or "the location root"


def _selection(
    probe: Probe, pair: Pair, infos: Sequence[FileInfo], reason: str, args: str = "",
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


# -- what is asked before anything is known ---------------------------------------------

def walk_options(arches: Tuple[str, ...]) -> List[Tuple[Pair, Optional[Candidate]]]:
    """Every pair worth trying without a marker, best first; None: an original pair."""
    options: List[Tuple[Pair, Optional[Candidate]]] = []
    for family in FAMILIES:
        options.extend((candidate.pair, candidate)
                       for candidate in family.candidates(arches, walking=True))
    return options + [(pair, None) for pair in ORIGINAL_PAIRS]


def top_directories(arches: Tuple[str, ...]) -> List[str]:
    """The first path components of every pair the search may try."""
    paths = [c.pair.kernel for family in FAMILIES for c in family.candidates(arches)]
    paths += [pair.kernel for pair in ORIGINAL_PAIRS]
    paths += [row.kernel for row in kernels_alone(arches)]
    return list(dict.fromkeys(path.split("/", 1)[0] for path in paths if "/" in path))


def first_round(arches: Tuple[str, ...]) -> Tuple[Dict[str, int], List[str]]:
    """(reads, stats) of the first batch on a parallel tree.

    The metadata files; the location itself; the best pair of the walk (a
    Debian or Ubuntu mirror, the commonest tree without a marker) and the
    kernels that sit in the location itself.  That decides most trees: a
    marker names the family (whose few pairs come next), or the best pair
    is there.  The top-level directories are asked only when the blind
    walk needs them (:func:`directories_for_walk`).
    """
    reads = {name: treeinfo_mod.MAX_SIZE for name in treeinfo_mod.NAMES}
    reads.update((marker, MARKER_SIZE) for marker in MARKERS)
    options = walk_options(arches)
    best = options[0][0]
    here = [pair.kernel for pair, _ in options if "/" not in pair.kernel]
    return reads, ["", best.kernel, best.ramdisk, *here]


def directories_for_walk(probe: Probe, arches: Tuple[str, ...]) -> None:
    """Before a blind walk on a parallel tree: ask the top-level directories.

    A directory the server says it does not have rules out every path below
    it (see :mod:`.probe`), so the walk asks few paths instead of every
    row's.  Not asked when the walk's first pair is already known to be
    there: the walk then asks nothing.
    """
    if not probe.parallel:
        return
    best = walk_options(arches)[0][0]
    if all(probe.known(path) and probe.info(path) is not None for path in (best.kernel, best.ramdisk)):
        return
    directories = top_directories(arches)
    probe.ask([name + "/" for name in directories])
    probe.learn_directories(directories)


# -- 1 and 2: metadata --------------------------------------------------------------

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
    platforms = [platform for platform in info.platform_order(arches) if platform in info.images]
    if not platforms:
        return None
    found = probe.first_complete([info.images[platform] for platform in platforms])
    if found is None:
        missing = [f"[images-{p}] {info.images[p][0]} + {info.images[p][1]}" for p in platforms]
        raise TreeInfoError(
            f"{info.source} names files the tree does not have: " + ", ".join(missing)
        )
    index, infos = found
    platform = platforms[index]
    kernel, ramdisk = info.images[platform]
    return _selection(
        probe, Pair(kernel, ramdisk, f"{name} [images-{platform}]"), infos,
        f"{info.label} ({name} [images-{platform}])", _treeinfo_args(probe, info),
        (info.sha256(kernel), info.sha256(ramdisk)), LINUXRC if info.is_suse else ANACONDA,
    )


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
    probe: Probe, candidates: Sequence[Candidate], label: Optional[str] = None,
    marker: str = "", name: str = "", version: str = "",
) -> Optional[Selection]:
    """The first candidate present; explained by the marker's *label* if given."""
    candidates = list(candidates)
    found = probe.first_complete([(c.pair.kernel, c.pair.ramdisk) for c in candidates])
    if found is None:
        return None
    index, infos = found
    candidate = candidates[index]
    what = f"{candidate.row.what} in {_where(candidate.pair.kernel)}"
    reason = f"{label} ({marker}; {what})" if label else f"{candidate.family.name}, {what}"
    args = install_args(probe.tree, candidate.family.installer, name, version)
    return _selection(probe, candidate.pair, infos, reason, args,
                      installer=candidate.family.installer)


def by_metadata(probe: Probe, arches: Tuple[str, ...], story: List[str]) -> Optional[Selection]:
    """Steps 1 and 2; what they ruled out goes to *story* for the failure message."""
    treeinfo = read_treeinfo(probe)
    if treeinfo is not None:
        name, info = treeinfo
        found = from_treeinfo(probe, name, info, arches)
        if found is None:
            family = SUSE if info.is_suse else REDHAT
            found = search(probe, list(family.candidates(arches)), info.label, name,
                           info.name, info.version)
        if found is None:
            story.append(f"{info.label} ({name}) names no {'/'.join(arches)} images "
                         "and has none of the usual ones")
        return found
    story.append("not a .treeinfo tree")
    marked = identify(probe)
    if marked is None:
        return None
    family, label, marker = marked
    found = search(probe, list(family.candidates(arches)), label, marker)
    if found is None:
        story.append(f"{label} ({marker}), but none of its pairs")
    return found


# -- 3: the walk ------------------------------------------------------------------------

def walk(probe: Probe, arches: Tuple[str, ...]) -> Optional[Selection]:
    """Every row worth trying without a marker, then the original pairs."""
    options = walk_options(arches)
    # With the directories known, what is left is few; else kernels first.
    found = probe.first_complete([(pair.kernel, pair.ramdisk) for pair, _ in options],
                                 eager=probe.directories_known)
    if found is None:
        return None
    index, infos = found
    pair, candidate = options[index]
    if candidate is None:
        return _selection(probe, pair, infos, f"known layout: {pair.origin} ({_where(pair.kernel)})")
    return _selection(probe, pair, infos,
                      f"{candidate.family.name}, {candidate.row.what} in {_where(pair.kernel)}",
                      install_args(probe.tree, candidate.family.installer),
                      installer=candidate.family.installer)


def alone(probe: Probe, arches: Tuple[str, ...]) -> Optional[Selection]:
    """A kernel that carries its own ramdisk (NetBSD's Xen install kernels), booted alone."""
    rows = kernels_alone(arches)
    found = probe.first_complete([(row.kernel,) for row in rows])
    if found is None:
        return None
    index, infos = found
    row = rows[index]
    return Selection(FileRef(probe.tree, row.kernel, infos[0]), None,
                     f"{row.what} in {_where(row.kernel)} (its ramdisk is built in)")


# -- 4: what the original tool booted ---------------------------------------------

def like_the_original(probe: Probe, warn: Say) -> Optional[Selection]:
    """The first kernel and the first ramdisk of the original list, each on its own."""
    kernel = probe.first_complete([(pair.kernel,) for pair in ORIGINAL_PAIRS])
    if kernel is None:
        return None
    ramdisk = probe.first_complete([(pair.ramdisk,) for pair in ORIGINAL_PAIRS])
    tree, first = probe.tree, ORIGINAL_PAIRS[kernel[0]]
    kernel_ref = FileRef(tree, first.kernel, kernel[1][0])
    if ramdisk is None:
        warn(f"{tree.url('')} has no complete kernel/ramdisk pair; booting {first.kernel} "
             "without a ramdisk, as the original xenpvnetboot did (none of its ramdisks "
             "is there)")
        return Selection(kernel_ref, None,
                         f"original xenpvnetboot's list: {first.kernel}, no ramdisk")
    other = ORIGINAL_PAIRS[ramdisk[0]]
    warn(f"{tree.url('')} has no complete kernel/ramdisk pair; booting {first.kernel} "
         f"({first.origin}) with {other.ramdisk} ({other.origin}), the first kernel and the "
         "first ramdisk of the original xenpvnetboot's list, as it did")
    return Selection(kernel_ref, FileRef(tree, other.ramdisk, ramdisk[1][0]),
                     f"original xenpvnetboot's list: {first.kernel} with {other.ramdisk}")


# -- the whole search ---------------------------------------------------------------------

def failure(probe: Probe, story: Sequence[str], what: str = "") -> BootError:
    """The short "no kernel found" message: what was tried by family, not every path."""
    kinds = short_names()
    families = ", ".join(kinds[:-1]) + " or " + kinds[-1] if len(kinds) > 1 else "".join(kinds)
    parts = list(story) + [what or f"no {families} layout, none of the original "
                           "xenpvnetboot's six pairs"]
    for group in probe.partial[:3]:
        parts.append(f"found {group[0]} but not {group[-1]}")
    parts += probe.notes
    return BootError(f"{probe.tree.url('')}: no kernel found: " + "; ".join(parts)
                     + " (-v lists the paths tried; name the files with --kernel and --ramdisk)")


def tell_tried(probe: Probe, note: Optional[Say]) -> None:
    if note is not None and probe.tried:
        note(f"Tried in {probe.tree.url('')}: " + ", ".join(probe.tried))


def detect(tree: Tree, arches: Tuple[str, ...], warn: Optional[Say] = None,
           note: Optional[Say] = None) -> Selection:
    """The pair a PV guest of one of *arches* should boot from *tree* (see module doc).

    *warn* shows why an incomplete pair is booted (without it, none is);
    *note*, if given, is told every path tried when nothing is found.
    """
    probe = Probe(tree)
    if probe.parallel:
        reads, stats = first_round(arches)
        if probe.width is not None and len(reads) + len(stats) > probe.width:
            # The batch would take two round trips anyway: the markers first,
            # so that a marked family's pairs fill the second; the rest rides
            # along where a round trip has room, and is asked before a walk.
            probe.tag_along, stats = stats, []
        probe.ask(stats, reads)
    story: List[str] = []
    found = by_metadata(probe, arches, story)
    if found is None:
        probe.ask(probe.tag_along)  # what has not ridden along yet
        directories_for_walk(probe, arches)
        found = walk(probe, arches) or alone(probe, arches)
    if found is None and warn is not None:
        found = like_the_original(probe, warn)
    if found is None:
        tell_tried(probe, note)
        raise failure(probe, story)
    return found


__all__ = ["MARKER_SIZE", "Probe", "by_metadata", "detect", "directories_for_walk", "failure",
           "first_round", "from_treeinfo", "identify", "like_the_original", "read_treeinfo",
           "search", "tell_tried", "top_directories", "walk", "walk_options"]
