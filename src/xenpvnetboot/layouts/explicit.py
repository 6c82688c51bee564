"""A ``--kernel`` without ``--ramdisk``, or a ``--ramdisk`` without ``--kernel``.

The original xenpvnetboot searched its six default paths for whichever file
was not named, each on its own, so a configuration naming one file booted
with whatever that list gave first.  Such configurations must keep booting,
but the better guess comes first: the file that belongs with the one named
(its partner in the same row of the layout table, or the file next to it
with a name the table pairs with its name, ``vmlinuz-virt`` and
``initramfs-virt``), and only then the original list.  Every guess but the
row partner is a warning naming the file taken and why; ``--no-ramdisk``
(or an empty ``--ramdisk=``) boots a kernel alone on purpose.
"""

from __future__ import annotations

import posixpath
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional, Sequence

from ..errors import BootError
from ..transports import Tree
from ..transports.base import clean_path
from .model import FileRef, Pair, Selection
from .probe import Probe
from .table import ORIGINAL_PAIRS, kernel_names, ramdisk_names

Say = Callable[[str], None]
ROW = "row"
NAME = "name"


@dataclass(frozen=True)
class Guess:
    """A path where the missing file may be, and what makes it a candidate."""

    path: str
    how: str  # ROW or NAME


def partners(spec: str, path: str, pairs: Sequence[Pair], kernel_named: bool) -> List[Guess]:
    """Where the file that goes with *path* (given as *spec*) may be, best first.

    *spec* is the text the user gave (a row matches its end, as
    ``.../images/pxeboot/vmlinuz``); *path* is where it resolved to, in the
    tree the guesses are made in.
    """
    here = posixpath.dirname(path)
    named = posixpath.basename(path)
    offsets: List[tuple] = []
    for pair in pairs:
        given, other = (pair.kernel, pair.ramdisk) if kernel_named else (pair.ramdisk, pair.kernel)
        if spec == given or spec.endswith("/" + given):
            offsets.append((posixpath.relpath(other, posixpath.dirname(given) or "."), ROW))
    names = ramdisk_names(named) if kernel_named else kernel_names(named)
    offsets += [(name, NAME) for name in names]
    guesses: Dict[str, Guess] = {}
    for offset, how in offsets:
        try:
            where = clean_path(posixpath.join(here, offset))
        except BootError:  # the row climbs out of this tree
            continue
        if where and where != path and where not in guesses:
            guesses[where] = Guess(where, how)
    return list(guesses.values())


class Probes:
    """One :class:`Probe` per tree, so that a path is asked about once."""

    def __init__(self) -> None:
        self._probes: Dict[int, Probe] = {}

    def of(self, tree: Tree) -> Probe:
        return self._probes.setdefault(id(tree), Probe(tree))

    def first(self, tree: Tree, paths: Sequence[str]) -> Optional[tuple]:
        """(index, FileInfo) of the first of *paths* present in *tree*."""
        found = self.of(tree).first_complete([(path,) for path in paths])
        return None if found is None else (found[0], found[1][0])


def _partner(probes: Probes, ref: FileRef, guesses: List[Guess]) -> Optional[tuple]:
    hit = probes.first(ref.tree, [guess.path for guess in guesses])
    if hit is None:
        return None
    guess = guesses[hit[0]]
    return guess, FileRef(ref.tree, guess.path, hit[1])


def ramdisk_for(kernel: FileRef, spec: str, location: Optional[Tree], pairs: Sequence[Pair],
                warn: Say) -> Selection:
    """The ramdisk to boot *kernel* with when only the kernel is named."""
    probes = Probes()
    found = _partner(probes, kernel, partners(spec, kernel.path, pairs, kernel_named=True))
    if found is not None:
        guess, ref = found
        if guess.how == ROW:
            return Selection(kernel, ref, "explicit kernel, ramdisk of its known pair")
        warn(f"no ramdisk named: taking {ref.url}, found next to the kernel under a name the "
             "layout table pairs with its name (name the ramdisk with --ramdisk, or boot the "
             "kernel alone with --no-ramdisk)")
        return Selection(kernel, ref, f"explicit kernel, ramdisk {posixpath.basename(ref.path)} "
                                      "next to it")
    if location is not None:
        hit = probes.first(location, [pair.ramdisk for pair in ORIGINAL_PAIRS])
        if hit is not None:
            ref = FileRef(location, ORIGINAL_PAIRS[hit[0]].ramdisk, hit[1])
            warn(f"no ramdisk named and none belongs with {kernel.url}: taking {ref.url}, the "
                 "first ramdisk of the original xenpvnetboot's list, as it did (it may not suit "
                 "this kernel: name the ramdisk with --ramdisk, or boot the kernel alone with "
                 "--no-ramdisk)")
            return Selection(kernel, ref, "explicit kernel, first ramdisk of the original "
                                          "xenpvnetboot's list")
    warn(f"no ramdisk named and none found for {kernel.url}: booting the kernel alone "
         "(--no-ramdisk says so without this warning)")
    return Selection(kernel, None, "explicit kernel, no ramdisk")


def kernel_for(ramdisk: FileRef, spec: str, location: Optional[Tree], pairs: Sequence[Pair],
               warn: Say, detected: Callable[[], Selection]) -> Selection:
    """The kernel to boot when only the ramdisk is named; *detected* searches the location."""
    probes = Probes()
    found = _partner(probes, ramdisk, partners(spec, ramdisk.path, pairs, kernel_named=False))
    if found is not None:
        guess, ref = found
        why = ("the kernel that pairs with it in the layout table" if guess.how == ROW else
               "found next to it under a name the layout table pairs with its name")
        warn(f"no kernel named: taking {ref.url} for the ramdisk {ramdisk.url}, {why}")
        reason = "kernel of its known pair" if guess.how == ROW else "kernel next to it"
        return Selection(ref, ramdisk, f"explicit ramdisk, {reason}")
    if location is None:
        raise BootError(f"{ramdisk.url}: no kernel found for this ramdisk: none pairs with it "
                        "in the layout table and there is no --location to search (name the "
                        "kernel with --kernel)")
    hit = probes.first(location, [pair.kernel for pair in ORIGINAL_PAIRS])
    if hit is not None:
        ref = FileRef(location, ORIGINAL_PAIRS[hit[0]].kernel, hit[1])
        warn(f"no kernel named and none pairs with the ramdisk {ramdisk.url}: taking {ref.url}, "
             "the first kernel of the original xenpvnetboot's list, as it did")
        return Selection(ref, ramdisk, "explicit ramdisk, first kernel of the original "
                                       "xenpvnetboot's list")
    layout = detected()
    warn(f"no kernel named and none pairs with the ramdisk {ramdisk.url}: taking "
         f"{layout.kernel.url}, the kernel of the layout found ({layout.reason})")
    return Selection(layout.kernel, ramdisk, layout.reason + ", explicit ramdisk",
                     layout.install_args, layout.installer)


def kernel_alone(selection: Selection, why: str) -> Selection:
    """*selection* without its ramdisk (``--no-ramdisk``)."""
    return Selection(selection.kernel, None, f"{selection.reason}, {why}",
                     selection.install_args, selection.installer)


__all__ = ["Guess", "Probes", "kernel_alone", "kernel_for", "partners", "ramdisk_for"]
