"""The Debian and Ubuntu mirror chain: ``InRelease`` -> ``SHA256SUMS`` -> netboot files.

On a mirror, ``dists/<suite>/InRelease`` (or ``Release`` with the detached
``Release.gpg``) is signed by the archive key; its ``SHA256`` field lists,
among thousands of index files, each installer build's
``main/installer-<arch>/<version>/images/SHA256SUMS`` (``<version>`` is
``current``, a symlink, and the dated directory it points to; Ubuntu 20.04
has ``legacy-images``); that list gives the hash of every file below
``images/``: ``./netboot/xen/vmlinuz``, ``./netboot/debian-installer/amd64/linux``...

Rather than hard-coding those names, the list used for a file is the nearest
``SHA256SUMS`` above it that the Release lists: the real layouts, the dated
directories and any future one follow from the signed data alone, and no
request is spent probing.  The location may be any directory below
``dists/<suite>/`` (or above it, with the files named below it); the walk up
to the suite uses :class:`.origin.Origin`.

Costs on top of the boot: the ``InRelease`` (~150 KiB) and one ``SHA256SUMS``
(~80 KiB) for the kernel and ramdisk together.  Both are asked in one round
trip: the ``SHA256SUMS`` of the nearest ``images`` directory (``*-images``
too) is read ahead with the ``InRelease``, and used only if the Release
lists it with that hash, as it would be when fetched after.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Dict, List, Optional, Sequence, Tuple

from ..errors import NotFound
from ..layouts.model import FileRef
from ..transports import Tree
from ..transports.memo import MemoTree
from .lists import MAX_LIST_SIZE, ListError, Release, parse_release, parse_sums
from .model import FileVerdict, NoChain, Report, Verdict, Verified, same_for_all
from .openpgp import KeyStore
from .origin import Origin
from .signed import VERDICT_ERRORS, SignedList, fetch_signed, read_optional, sha256_hex, verdict_of

SUMS = "SHA256SUMS"


@dataclass(frozen=True)
class SuitePath:
    """Where a file lies relative to ``dists/<suite>/``."""

    #: Directories from the origin's root up to the suite directory (0: not above).
    levels_up: int
    #: Path from that tree's root down to the suite directory ('' or ``.../dists/<suite>``).
    prefix: str
    suite: str
    #: The file's path below the suite directory.
    rel: str

    def in_tree(self, path: str) -> str:
        """*path* (below the suite directory) as a path of the opened tree."""
        return f"{self.prefix}/{path}" if self.prefix else path


def suite_path(root: Sequence[str], path: str) -> Optional[SuitePath]:
    """Locate ``dists/<suite>/`` in the origin's directories plus the file's path.

    The last ``dists`` with a suite and at least one name after it wins;
    None when there is none (not a mirror layout).
    """
    file_parts = [part for part in path.split("/") if part]
    combined = list(root) + file_parts
    for i in range(len(combined) - 3, -1, -1):
        if combined[i] != "dists":
            continue
        suite_end = i + 2
        rel = "/".join(combined[suite_end:])
        if suite_end <= len(root):
            return SuitePath(len(root) - suite_end, "", combined[i + 1], rel)
        return SuitePath(0, "/".join(combined[len(root):suite_end]), combined[i + 1], rel)
    return None


def nearest_sums(release: Release, rel: str) -> Optional[Tuple[str, str]]:
    """(directory, path below it) of the nearest SHA256SUMS above *rel* the Release lists."""
    parts = rel.split("/")
    for cut in range(len(parts) - 1, 0, -1):
        directory = "/".join(parts[:cut])
        if release.entry(f"{directory}/{SUMS}") is not None:
            return directory, "/".join(parts[cut:])
    return None


def likely_sums(rel: str) -> Optional[str]:
    """The ``SHA256SUMS`` of the deepest ``images`` (or ``*-images``) directory
    above *rel*, where Debian and Ubuntu keep it; None without one."""
    parts = rel.split("/")[:-1]
    for cut in range(len(parts), 0, -1):
        if parts[cut - 1] == "images" or parts[cut - 1].endswith("-images"):
            return "/".join(parts[:cut] + [SUMS])
    return None


def asking_ahead(tree: Tree, suite: SuitePath, rels: Sequence[str]) -> Tree:
    """*tree*, with the ``InRelease`` and the likely ``SHA256SUMS`` of *rels*
    asked together in one batch (one round trip instead of two) where the tree
    overlaps requests; elsewhere each is asked when read, as before."""
    ahead = {suite.in_tree("InRelease"): MAX_LIST_SIZE}
    for rel in rels:
        sums = likely_sums(rel)
        if sums is not None:
            ahead[suite.in_tree(sums)] = MAX_LIST_SIZE
    memo = MemoTree(tree, ahead=ahead, early=False)
    memo.ask_ahead()
    return memo


def read_release(tree: Tree, suite: SuitePath, keys: KeyStore) -> "SignedList | NoChain":
    """``InRelease``, else ``Release`` + ``Release.gpg``; raises on a bad signature."""
    found = fetch_signed(tree, suite.in_tree("InRelease"), keys)
    if found is None:
        found = fetch_signed(tree, suite.in_tree("Release"), keys, [suite.in_tree("Release.gpg")])
    if found is None:
        return NoChain(f"{tree.url(suite.in_tree(''))} has neither InRelease nor Release")
    return found


class _Sums:
    """The verified SHA256SUMS files of one Release, fetched once each."""

    def __init__(self, tree: Tree, suite: SuitePath, release: Release, signed: SignedList) -> None:
        self.tree = tree
        self.suite = suite
        self.release = release
        self.signed = signed
        self._lists: Dict[str, Tuple[str, Dict[str, str]]] = {}

    def get(self, directory: str) -> Tuple[str, Optional[Dict[str, str]]]:
        """(URL, entries) of ``<directory>/SHA256SUMS``; entries None if it is missing."""
        if directory in self._lists:
            return self._lists[directory]
        listed = f"{directory}/{SUMS}"
        entry = self.release.entry(listed)
        assert entry is not None
        path = self.suite.in_tree(listed)
        url = self.tree.url(path)
        data = read_optional(self.tree, path, MAX_LIST_SIZE)
        if data is None:
            return url, None
        got = sha256_hex(data)
        if got != entry.sha256 or len(data) != entry.size:
            raise ListError(f"{url}: SHA-256 is {got} ({len(data)} bytes), but {self.signed.url} "
                            f"lists {entry.sha256} ({entry.size} bytes)")
        self._lists[directory] = (url, parse_sums(data, url))
        return self._lists[directory]

    def verdict(self, rel: str, url: str) -> Verdict:
        release_url = self.signed.url
        if self.release.sha256 is None:
            return NoChain(f"{release_url} has no SHA256 field")
        direct = self.release.entry(rel)
        if direct is not None:
            return Verified(self.signed.signer, (release_url,), direct.sha256)
        found = nearest_sums(self.release, rel)
        if found is None:
            return NoChain(f"{release_url} lists no {SUMS} above {rel}")
        directory, below = found
        sums_url, entries = self.get(directory)
        if entries is None:
            return NoChain(f"{sums_url} is listed in {release_url} but missing")
        digest = entries.get(below)
        if digest is None:
            return NoChain(f"{url} is not listed in {sums_url}")
        return Verified(self.signed.signer, (release_url, sums_url), digest)


def check_mirror(
    refs: Sequence[Tuple[str, FileRef]],
    origin: Origin,
    keys: KeyStore,
    now: Optional[datetime] = None,
) -> Optional[Report]:
    """The verdict of each file below one ``dists/<suite>/``; None if not a mirror path."""
    places = [suite_path(origin.parts, ref.path) for _, ref in refs]
    first = places[0]
    if first is None or any(p is None or (p.levels_up, p.prefix) != (first.levels_up, first.prefix)
                            for p in places):
        return None
    with contextlib.ExitStack() as stack:
        tree, owned = origin.ancestor(first.levels_up)
        if owned:
            stack.enter_context(tree)
        tree = asking_ahead(tree, first, [place.rel for place in places if place is not None])
        try:
            signed = read_release(tree, first, keys)
            if isinstance(signed, NoChain):
                return same_for_all(refs, signed)
            release = parse_release(signed.content, signed.url)
            release.check_suite(first.suite)
            release.check_fresh(now or datetime.now(timezone.utc))
        except VERDICT_ERRORS as exc:
            return same_for_all(refs, verdict_of(exc))
        sums = _Sums(tree, first, release, signed)
        verdicts: List[FileVerdict] = []
        for (role, ref), place in zip(refs, places):
            assert place is not None
            try:
                verdict = sums.verdict(place.rel, ref.url)
            except VERDICT_ERRORS as exc:
                verdict = verdict_of(exc)
            except NotFound as exc:
                verdict = NoChain(str(exc))
            verdicts.append(FileVerdict(role, ref.url, verdict))
        return Report(tuple(verdicts))


__all__ = ["SuitePath", "asking_ahead", "check_mirror", "likely_sums", "nearest_sums", "read_release",
           "suite_path"]
