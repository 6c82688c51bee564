"""Asking a tree which files it has: each path once, many at a time where that is cheap.

Over http every question is a round trip, and on a real link round trips,
not bytes, are what a layout search costs.  A tree whose
:meth:`~xenpvnetboot.transports.Tree.stat_many` overlaps requests
(``parallel_stats``) is asked everything a step of the search may need in
one batch; any other tree (a local directory, an image, NFS, TFTP, FTP) is
asked one path at a time, in the order of the search, which stops at the
first answer that decides.  Both give the same answers: only the number of
questions differs.

Before a blind walk, a parallel tree is asked for the top-level directories
the table's paths start with.  When the server answers for directories at
all (the location itself is not a 404, as with nginx and Apache, listing or
not), a 404 for ``current/`` rules out every path below it without asking;
on a server that answers no directory (an object store), nothing is ruled
out and every path is asked.
"""

from __future__ import annotations

from typing import Dict, List, Optional, Sequence, Set, Tuple, Union

from ..errors import BootError, NotFound, TransientError
from ..transports import FileInfo, Tree
from ..transports.base import Answer

#: The answer of :meth:`Probe.first_complete`: the group's index and its files.
Found = Tuple[int, List[FileInfo]]


class Probe:
    """The answers one tree gave, and the questions still to ask it."""

    def __init__(self, tree: Tree) -> None:
        self.tree = tree
        self.parallel = bool(getattr(tree, "parallel_stats", False))
        #: Requests a parallel tree answers in one round trip (None: no limit known).
        self.width: Optional[int] = getattr(tree, "round_width", None) if self.parallel else None
        #: Paths worth knowing that ride along with a later batch where its
        #: last round trip has room (see :meth:`ask`).
        self.tag_along: List[str] = []
        self._stats: Dict[str, Answer] = {}
        self._reads: Dict[str, Answer] = {}
        #: Top-level directories the server said it does not have.
        self._absent: Set[str] = set()
        #: Every path asked about that was not there, in order (``-v`` lists them).
        self.tried: List[str] = []
        #: Groups whose first file exists but not the rest (a kernel without its ramdisk).
        self.partial: List[Tuple[str, ...]] = []
        #: Why a marker could not be read (shown in the final error).
        self.notes: List[str] = []
        #: stat_many calls made: the dependent steps of a parallel tree.
        self.batches = 0
        #: The server answers for directories, so the absent ones rule paths out.
        self.directories_known = False

    # -- asking ------------------------------------------------------------------------

    def ask(self, stats: Sequence[str] = (), reads: Optional[Dict[str, int]] = None) -> None:
        """Learn the answers not known yet: all together on a parallel tree, else the first.

        A sequential tree is asked one path (reads first) per call; the
        caller asks again for what it still needs, so a search stops asking
        as soon as it is decided, as it did before trees could overlap.
        """
        wanted_reads = {path: limit for path, limit in (reads or {}).items()
                        if path not in self._reads}
        wanted = [path for path in dict.fromkeys(stats)
                  if path not in self._stats and not self._ruled_out(path)]
        if not self.parallel:
            if wanted_reads:
                first = next(iter(wanted_reads))
                wanted_reads, wanted = {first: wanted_reads[first]}, []
            else:
                wanted = wanted[:1]
        if not wanted and not wanted_reads:
            return
        if self.parallel and self.tag_along:
            wanted += self._riders(len(wanted) + len(wanted_reads), wanted)
        self.batches += 1
        answers = self.tree.stat_many(wanted, wanted_reads)
        for path in wanted_reads:
            self._reads[path] = answers.get(path, NotFound(path))
        for path in wanted:
            self._stats[path] = answers.get(path, NotFound(path))

    def _riders(self, asked: int, wanted: Sequence[str]) -> List[str]:
        """The :attr:`tag_along` paths that fit in the free places of a batch of
        *asked* requests' last round trip (all of them without a known width)."""
        waiting = [path for path in self.tag_along if path not in self._stats
                   and path not in wanted and not self._ruled_out(path)]
        room = len(waiting) if self.width is None else -asked % self.width
        self.tag_along = waiting[room:]
        return waiting[:room]

    def learn_directories(self, names: Sequence[str]) -> None:
        """Rule out the paths below *names* the server answered 404 for (see module doc).

        *names* were asked as ``name/``, and the root ``""`` before or with them.
        """
        root = self._stats.get("")
        if root is None or isinstance(root, NotFound):
            return
        self.directories_known = True
        self._absent.update(name for name in names
                            if isinstance(self._stats.get(name + "/"), NotFound))

    def _ruled_out(self, path: str) -> bool:
        head, slash, _ = path.partition("/")
        return bool(slash) and head in self._absent

    # -- what is known -----------------------------------------------------------------

    def known(self, path: str) -> bool:
        return path in self._stats or self._ruled_out(path)

    def info(self, path: str) -> Optional[FileInfo]:
        """The file at *path* (asked already), or None if there is none.

        A directory, or an HTML page a server gives for a directory, is no
        file.  Any answer but "not there" (HTTP 403, a dead server) is
        raised: the search cannot tell what the tree holds.
        """
        if self._ruled_out(path):
            return None
        answer = self._stats[path]
        if isinstance(answer, FileInfo):
            return None if answer.directory else answer
        if isinstance(answer, NotFound):
            return None
        assert isinstance(answer, BootError)
        raise answer

    def stat(self, path: str) -> Optional[FileInfo]:
        """:meth:`info`, asking first if needed."""
        if not self.known(path):
            self.ask([path])
        return self.info(path)

    def read(self, path: str, limit: int) -> Optional[bytes]:
        """A marker's bytes, or None if it is missing or unreadable.

        A marker is a hint: a server refusing dot files (HTTP 403) must not
        stop the search, so only network trouble that retries did not cure
        is raised; other failures become a note in the final error message.
        """
        if path not in self._reads:
            self.ask(reads={path: limit})
        answer = self._reads[path]
        if isinstance(answer, bytes):
            return answer
        if isinstance(answer, TransientError):
            raise answer
        if not isinstance(answer, NotFound):
            note = f"could not read {path}: {answer}"
            if note not in self.notes:
                self.notes.append(note)
        return None

    # -- the search --------------------------------------------------------------------

    def first_complete(self, groups: Sequence[Tuple[str, ...]], eager: bool = True) -> Optional[Found]:
        """The first group (a kernel and its ramdisk, say) whose files all exist.

        Groups are taken best first; a group is the answer once every better
        one is known to be incomplete, and groups after it are not asked
        about.  On a parallel tree each round asks every undecided group's
        unknown files at once, or with *eager* false only their first file
        (for long lists whose first files mostly miss); a sequential tree
        asks one file at a time, first files first.
        """
        while True:
            needed: List[str] = []
            for index, group in enumerate(groups):
                state = self._state(group)
                if state is None:
                    continue
                if isinstance(state, list) and not needed:
                    return index, state
                if isinstance(state, list):
                    break
                needed.extend(state if eager else state[:1])
                if not self.parallel:
                    break
            if not needed:
                return None
            self.ask(needed)

    def _state(self, group: Tuple[str, ...]) -> Union[None, List[FileInfo], Tuple[str, ...]]:
        """None: not complete; a list of FileInfo: complete; a tuple: paths to ask.

        Files are looked at in order and the first missing one decides, so an
        answer is only ever used (or its error raised) where a one-by-one
        search would have asked.
        """
        infos: List[FileInfo] = []
        for number, path in enumerate(group):
            if not self.known(path):
                return tuple(p for p in group[number:] if not self.known(p))
            info = self.info(path)
            if info is None:
                self._remember(group, number)
                return None
            infos.append(info)
        return infos

    def _remember(self, group: Tuple[str, ...], missing: int) -> None:
        if missing == 0:
            if group[0] not in self.tried:
                self.tried.append(group[0])
        elif group not in self.partial:
            self.partial.append(group)
            self.tried.append(f"{group[0]} (found, but not {group[missing]})")


__all__ = ["Found", "Probe"]
