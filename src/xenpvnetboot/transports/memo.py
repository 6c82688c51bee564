"""A tree that remembers what it was told, and asks ahead in one batch.

The layout search and the boot-menu lookup both ask a location which small
files it has.  Over http each question is a round trip, so the location is
wrapped once per boot: every answer (a stat, a small file's bytes, a "not
found") is kept, and the small files the menu lookup will want are asked
together in one batch (:meth:`stat_many` on a tree that overlaps requests):
with the first batch of the search (*early*), or when :meth:`ask_ahead` is
called.  The boot-menu lookup asks them only when it looks at a menu at
all: not when the layout's pair is built for Xen, which always wins.  Under
the transport's connection cap a batch of its own costs the round trips that
riding along with the search would add anyway.
Everything else (streaming, image access, URLs) goes to the tree itself.
"""

from __future__ import annotations

from typing import Any, Callable, Dict, Mapping, Optional, Sequence, Union

from ..errors import BootError
from .base import Answer, FileInfo, Sink, Tree


class MemoTree(Tree):
    """*tree*, with its answers kept; *ahead* (path -> size limit) read and
    *ahead_stats* asked with the first batch (*early*) or by :meth:`ask_ahead`."""

    def __init__(self, tree: Tree,
                 ahead: Union[None, Mapping[str, int], Callable[[], Mapping[str, int]]] = None,
                 ahead_stats: Sequence[str] = (), early: bool = True) -> None:
        self.inner = tree
        self._early = early
        #: A callable *ahead* is called when the read-ahead is asked: what it
        #: needs to know (the menu parsers' paths) is loaded only then.
        self._make_ahead = ahead if callable(ahead) else None
        self._ahead: Dict[str, int] = {} if callable(ahead) else dict(ahead or {})
        self._ahead_stats = list(ahead_stats)
        self._stats: Dict[str, Answer] = {}
        self._reads: Dict[str, Answer] = {}
        self._limits: Dict[str, int] = {}

    def __getattr__(self, name: str) -> Any:  # rooted, scheme, cacheable, parallel_stats...
        return getattr(self.inner, name)

    @property
    def cacheable(self) -> bool:  # type: ignore[override]
        return bool(getattr(self.inner, "cacheable", False))

    @property
    def parallel_stats(self) -> bool:  # type: ignore[override]
        return bool(getattr(self.inner, "parallel_stats", False))

    def url(self, path: str) -> str:
        return self.inner.url(path)

    def stat(self, path: str) -> FileInfo:
        if path not in self._stats:
            try:
                self._stats[path] = self.inner.stat(path)
            except BootError as exc:
                self._remember_failure(self._stats, path, exc)
                raise
        return _given(self._stats[path])  # type: ignore[return-value]

    def read_bytes(self, path: str, limit: int = 1 << 20) -> bytes:
        if path not in self._reads or self._limits.get(path, 0) < limit:
            try:
                self._reads[path] = self.inner.read_bytes(path, limit)
                self._limits[path] = limit
            except BootError as exc:
                self._remember_failure(self._reads, path, exc)
                self._limits[path] = limit
                raise
        return _given(self._reads[path])  # type: ignore[return-value]

    def stat_many(self, paths: Sequence[str],
                  reads: Optional[Mapping[str, int]] = None) -> Dict[str, Answer]:
        reads = dict(reads or {})
        asked = list(paths)
        if self._early:
            self._resolve_ahead()
        if (self._ahead or self._ahead_stats) and self.parallel_stats and self._early:
            for path, limit in self._ahead.items():
                if path not in self._reads and path not in reads and path not in paths:
                    reads[path] = limit
            asked += [path for path in self._ahead_stats if path not in asked]
            self._ahead, self._ahead_stats = {}, []
        wanted = [path for path in asked if path not in self._stats and path not in self._reads]
        wanted_reads = {path: limit for path, limit in reads.items()
                        if path not in self._reads or self._limits.get(path, 0) < limit}
        if wanted or wanted_reads:
            answers = self.inner.stat_many(wanted, wanted_reads)
            for path in wanted:
                if path in answers:
                    self._stats[path] = answers[path]
            for path, limit in wanted_reads.items():
                if path in answers:
                    self._reads[path] = answers[path]
                    self._limits[path] = limit
        known: Dict[str, Answer] = {}
        for path in paths:
            if path in self._stats:
                known[path] = self._stats[path]
            elif path in self._reads:  # read ahead: a stat says as much
                answer = self._reads[path]
                known[path] = FileInfo(size=len(answer)) if isinstance(answer, bytes) else answer
        known.update((path, self._reads[path]) for path in reads if path in self._reads)
        return known

    def ask_ahead(self) -> None:
        """Ask the read-ahead now, in one batch, unless a batch carried it already
        (or the tree asks one path at a time, where it brings nothing)."""
        self._early = True
        self._resolve_ahead()
        if (self._ahead or self._ahead_stats) and self.parallel_stats:
            self.stat_many([])

    def _resolve_ahead(self) -> None:
        if self._make_ahead is not None:
            self._ahead.update(self._make_ahead())
            self._make_ahead = None

    def absent(self, path: str) -> bool:
        """Whether *path* is surely missing: asked already, or below a top-level
        directory the server said it does not have (while it answered for the
        location itself, so that its directory answers mean something)."""
        from ..errors import NotFound

        for store in (self._stats, self._reads):
            if isinstance(store.get(path), NotFound):
                return True
        top, sep, _ = path.partition("/")
        here = self._stats.get("")
        return bool(sep) and here is not None and not isinstance(here, BaseException) and \
            isinstance(self._stats.get(top + "/"), NotFound)

    def fetch(self, path: str, sink: Sink) -> None:
        self.inner.fetch(path, sink)

    def fetch_many(self, jobs: Sequence[Any]) -> None:
        self.inner.fetch_many(jobs)

    def open_source(self, path: str, info: Optional[FileInfo] = None) -> Any:
        if info is None:
            return self.inner.open_source(path)
        return self.inner.open_source(path, info)

    def close(self) -> None:
        self.inner.close()

    @staticmethod
    def _remember_failure(store: Dict[str, Answer], path: str, exc: BootError) -> None:
        from ..errors import NotFound

        if isinstance(exc, NotFound):  # only a missing file is sure to stay missing
            store[path] = exc


def _given(answer: Answer) -> Any:
    if isinstance(answer, BaseException):
        raise answer
    return answer


__all__ = ["MemoTree"]
