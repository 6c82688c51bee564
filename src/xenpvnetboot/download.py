"""Stream the selected files into their output files, through the cache when there is one.

Files in the same tree are fetched together (the curl transport overlaps
them on one multi handle), and ``--check`` inspects each one as it arrives
(a tap on its :class:`~.transports.Sink`, see :mod:`.check`).  Each cached
file's lock is held only while that file is fetched: a kernel's entry is
stored and released the moment its last byte is in, while the ramdisk may
still be arriving (see :mod:`.cache`).
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Callable, Dict, List, Optional, Sequence, Tuple

from .boot import Target, check_free_space, safe_basename
from .layout import FileRef, Selection
from .transports import Sink, TransportOptions, Tree
from .ui import UI, Progress, human_size

if TYPE_CHECKING:
    from .cache import Cache, Entry
    from .check import BootChecker

Refs = List[Tuple[str, FileRef]]
#: role -> the cache entry a file came from or went into, and the digest of its bytes.
Kept = Dict[str, Tuple["Entry", Optional[str]]]


def download(
    selection: Selection,
    targets: Dict[str, Target],
    options: TransportOptions,
    ui: UI,
    cache: Optional["Cache"] = None,
    checker: Optional["BootChecker"] = None,
    inject: bytes = b"",
) -> Dict[str, Tuple[str, int]]:
    """Fill the targets of *selection*; return each role's (basename, size).

    *inject* (a cpio archive of ``--initrd-inject``'s files) is appended to
    the ramdisk's output file after its checksum held and before the check
    reads it; a cached copy is never changed.  The check's reports are kept
    with the cache entries, for the next boot of the same bytes.
    """
    refs = selection.refs()
    # A ramdisk made of several files (a boot menu's entry) is no one URL's bytes.
    cached = [(role, ref) for role, ref in refs if role != "ramdisk" or not selection.ramdisks]
    entries = _lock(cache, cached, options, ui) if cache is not None else {}
    stored = False
    kept: Kept = {}
    # The ramdisk's output gets more bytes after its download: the check reads it then.
    grows = bool(inject) or bool(selection.ramdisks)
    try:
        sizes: Dict[str, int] = {}
        misses: Refs = []
        for role, ref in refs:
            entry = entries.get(role)
            if entry is not None and _take(entry, targets[role], ref, sizes, role):
                ui.info(f"Using the cached {role} {ref.url} ({human_size(ref.info.size)})")
                if checker is not None and checker.keeps(role) \
                        and not (grows and role == "ramdisk"):
                    digest = _content_sha256(entry)
                    kept[role] = (entry, digest)
                    checker.recall(role, entry, digest, targets[role].read_fd, ref.url)
                entry.unlock()
                del entries[role]
            else:
                misses.append((role, ref))
        sizes.update(_stream(misses, targets, options, ui, checker, entries, kept, grows))
        for role, ref in misses:  # sizes not announced: stored only now
            if role in entries:
                _store(entries.pop(role), targets[role], ref)
        stored = bool(misses) and cache is not None
        for role, size in sizes.items():
            targets[role].downloaded = size
        if selection.ramdisks and "ramdisk" in sizes:
            sizes["ramdisk"] += _append_files(selection.ramdisks, targets["ramdisk"], options, ui)
        if inject and "ramdisk" in sizes:
            appended = targets["ramdisk"].append(inject, dict(refs)["ramdisk"].url)
            sizes["ramdisk"] = appended.size
            if appended.note:
                ui.warning(appended.note)
        if checker is not None:
            checker.remember(checker.check(*[(targets[role].read_fd, ref.url)
                                             for role, ref in refs]), kept)
    except BaseException:
        if checker is not None:
            checker.abandon()
        for target in targets.values():
            target.discard()
        raise
    finally:
        for entry in entries.values():
            entry.unlock()
    if stored and cache is not None:
        cache.evict()
    return {role: (safe_basename(ref.path, role), sizes[role]) for role, ref in refs}


def _append_files(refs: Sequence[FileRef], target: Target, options: TransportOptions,
                  ui: UI) -> int:
    """Stream *refs* one after the other onto the end of *target* (the further
    ramdisks of a menu entry: the kernel reads concatenated archives in order)."""
    import os

    assert target.read_fd is not None
    added = 0
    with os.fdopen(os.dup(target.read_fd), "r+b") as handle:
        handle.seek(0, os.SEEK_END)
        for ref in refs:
            ui.info(f"Fetching ramdisk {ref.url} ({human_size(ref.info.size)}), appended")
            sink = Sink(handle, ref.url, max_size=options.max_size - added, sha256=ref.sha256)
            sink.expect(ref.info.size)
            ref.tree.fetch(ref.path, sink)
            added += sink.written
        handle.flush()
    return added


def _take(entry: "Entry", target: Target, ref: FileRef, sizes: Dict[str, int], role: str) -> bool:
    """Fill *target* from a still valid entry; False (a download, then) otherwise."""
    try:
        if not entry.valid_for(ref.info, ref.sha256):
            return False
        sizes[role] = target.fill_from(entry)
    except OSError:
        return False
    return True


def _content_sha256(entry: "Entry") -> Optional[str]:
    """The digest that keys the check's reports of a cached file (see :mod:`.cache`)."""
    try:
        return entry.content_sha256(compute=True)
    except OSError:
        return None


def _lock(cache: "Cache", refs: Refs, options: TransportOptions, ui: UI) -> Dict[str, "Entry"]:
    """The locked entries of the cacheable files; a stalled holder's are left out."""
    from .cache import lock_entries, trust_of

    wanted = {}
    for role, ref in refs:
        trust = trust_of(getattr(ref.tree, "scheme", ""), options.insecure, options.ca_cert_data)
        if trust is not None and cache.cacheable(ref):
            wanted[role] = cache.entry(ref, trust)
    locked, skipped = lock_entries(wanted)
    for why in skipped:
        ui.info(why[0].upper() + why[1:])
    return locked


def _store(entry: "Entry", target: Target, ref: FileRef, digest: Optional[str] = None) -> bool:
    """Keep a complete, verified file (whose bytes have SHA-256 *digest*, if
    computed) in the cache and release its lock; whether it was kept.

    The cache only saves time: a file it cannot keep is booted all the same.
    """
    try:
        target.fileobj.flush()
        entry.store(target.partial, ref.info, ref.sha256, digest)
    except OSError:
        return False
    finally:
        entry.unlock()
    return True


def _on_complete(hooks: List[Callable[[Sink], None]]) -> Optional[Callable[[Sink], None]]:
    if not hooks:
        return None

    def run(sink: Sink) -> None:
        for hook in hooks:
            hook(sink)

    return run


def _progress(bar: Optional[Progress], entry: Optional["Entry"]) -> Optional[Callable[[Sink], None]]:
    if entry is None:
        return bar

    def both(sink: Sink) -> None:
        entry.progress(sink.written)
        if bar is not None:
            bar(sink)

    return both


def _stream(
    refs: Refs,
    targets: Dict[str, Target],
    options: TransportOptions,
    ui: UI,
    checker: Optional["BootChecker"],
    entries: Dict[str, "Entry"],
    kept: Optional[Kept] = None,
    grows: bool = False,
) -> Dict[str, int]:
    """Download *refs* into their targets; return the bytes written per role.

    A file whose entry is locked is stored, and its lock released, as soon as
    its last byte is written and its checksum holds; *entries* loses it then,
    and *kept* (when given) gains it with the SHA-256 of its bytes.  The
    checker inspects each file as it arrives, but for a ramdisk that
    *grows* after its download (``--initrd-inject``, a menu entry's further
    ramdisks).
    """
    if not refs:
        return {}
    sinks: List[Tuple[str, Sink, Optional[Progress]]] = []
    by_tree: Dict[int, List[Tuple[Tree, str, Sink]]] = {}
    for role, ref in refs:
        ui.info(f"Fetching {role} {ref.url} ({human_size(ref.info.size)})")
        bar = ui.progress(role)
        target = targets[role]
        entry = entries.get(role)
        as_fetched = not (grows and role == "ramdisk")  # what the check reads
        mine = kept if as_fetched and checker is not None and checker.keeps(role) else None
        hooks: List[Callable[[Sink], None]] = []
        if entry is not None:
            hooks.append(functools.partial(_complete_entry, entries, role, target, ref, mine))
        tap = None
        if checker is not None and target.read_fd is not None and as_fetched:
            tap = checker.tap(role, target.read_fd, ref.url)
        sink = Sink(target.fileobj, ref.url, max_size=options.max_size,
                    progress=_progress(bar, entry), sha256=ref.sha256,
                    on_complete=_on_complete(hooks), tap=tap,
                    digest=entry is not None and mine is not None)
        sink.expect(ref.info.size)  # a file over --max-size is refused first, by name
        sinks.append((role, sink, bar))
        by_tree.setdefault(id(ref.tree), []).append((ref.tree, ref.path, sink))
    check_free_space(targets[refs[0][0]], [ref for _, ref in refs])
    # Both files at once, not the kernel first: its inspection is bound by its
    # decompression from its first byte on (liblzma takes in a few MB/s of a
    # kernel), so the kernel alone at the link's full rate would not end it
    # sooner, and would only start the ramdisk later.
    for jobs in by_tree.values():
        jobs[0][0].fetch_many([(path, sink) for _, path, sink in jobs])
    for role, sink, bar in sinks:
        targets[role].finish()
        if bar is not None:
            bar.done(sink)
    return {role: sink.written for role, sink, _ in sinks}


def _complete_entry(entries: Dict[str, "Entry"], role: str, target: Target, ref: FileRef,
                    kept: Optional[Kept], sink: Sink) -> None:
    """The last byte is in: store the file if it is what was asked for."""
    entry = entries.get(role)
    if entry is None or not sink.digest_matches():
        return
    del entries[role]
    digest = sink.hexdigest()
    if _store(entry, target, ref, digest) and kept is not None:
        kept[role] = (entry, digest)


__all__ = ["download"]
