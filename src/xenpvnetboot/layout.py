"""Which kernel and ramdisk to boot: explicit paths, or the tree's own layout.

This is the entry point the rest of the program uses; the layout knowledge
and the search live in :mod:`xenpvnetboot.layouts`.  Pairs are only taken
whole, so the kernel of one distribution is never booted with the ramdisk of
another.
"""

from __future__ import annotations

import contextlib
from typing import List, Optional, Sequence, Union

from .errors import UsageError
from .layouts import installargs
from .layouts.arch import arches_to_try
from .layouts.detect import Say, detect, failure, tell_tried
from .layouts.explicit import kernel_alone, kernel_for, ramdisk_for
from .layouts.model import FileRef, Pair, Selection
from .layouts.probe import Probe
from .layouts.report import describe
from .layouts.table import ORIGINAL_PAIRS, all_pairs
from .location import FileSpec, resolve_spec
from .transports import TransportOptions, Tree


def search_pairs(tree: Tree, pairs: Sequence[Pair], note: Optional[Say] = None) -> Selection:
    """The first pair whose kernel and ramdisk both exist in *tree*."""
    probe = Probe(tree)
    found = probe.first_complete([(pair.kernel, pair.ramdisk) for pair in pairs])
    if found is None:
        tell_tried(probe, note)
        raise failure(probe, (), f"none of the {len(pairs)} pairs searched")
    index, infos = found
    pair = pairs[index]
    return Selection(FileRef(tree, pair.kernel, infos[0]), FileRef(tree, pair.ramdisk, infos[1]),
                     f"known layout: {pair.origin}")


def ramdisks_for_kernel(spec: Union[FileSpec, str], pairs: Sequence[Pair]) -> List[str]:
    """Ramdisk specs that go with a kernel spec ending in a known pair's kernel."""
    if isinstance(spec, FileSpec):
        spec = spec.raw
    found: List[str] = []
    for pair in pairs:
        if spec == pair.kernel or spec.endswith("/" + pair.kernel):
            partner = spec[: len(spec) - len(pair.kernel)] + pair.ramdisk
            if partner not in found:
                found.append(partner)
    return found


def ramdisk_for_kernel(spec: Union[FileSpec, str], pairs: Sequence[Pair]) -> Optional[str]:
    """The first ramdisk spec that goes with *spec* (see :func:`ramdisks_for_kernel`)."""
    found = ramdisks_for_kernel(spec, pairs)
    return found[0] if found else None


def select_files(
    location: Optional[Tree],
    kernel: Union[FileSpec, str, None],
    ramdisk: Union[FileSpec, str, None],
    options: TransportOptions,
    trees: contextlib.ExitStack,
    pairs: Optional[Sequence[Pair]] = None,
    arch: Optional[str] = None,
    no_ramdisk: bool = False,
    warn: Optional[Say] = None,
) -> Selection:
    """Decide the kernel/ramdisk from the options, detecting the layout if needed.

    *arch* is the canonical guest architecture (None: the host's); *pairs*,
    if given, replaces layout detection by a plain search of those pairs.
    *no_ramdisk* (``--no-ramdisk``, an empty ``--ramdisk=``) boots the kernel
    alone.  *warn* shows why a file was guessed (see :mod:`.layouts.explicit`;
    default: a "warning:" line through *options*).  Trees opened for
    full-URL specs are entered into *trees* so the caller closes them.
    """
    arches = arches_to_try(arch)
    say: Say = warn if warn is not None else (lambda message: options.note(f"warning: {message}"))
    note = options.note if options.verbose else None
    known = all_pairs(arches) if pairs is None else list(pairs)
    if no_ramdisk and ramdisk is not None:
        raise UsageError("--no-ramdisk and a ramdisk given together")

    def resolve(spec: Union[FileSpec, str]) -> FileRef:
        tree, path, owned = resolve_spec(spec, location, options)
        if owned:
            trees.enter_context(tree)
        return FileRef(tree, path, tree.stat(path))

    def detected() -> Selection:
        if location is None:
            raise UsageError("nothing to boot: give --location, or --kernel (and --ramdisk)")
        if pairs is not None:
            return search_pairs(location, pairs, note)
        return detect(location, arches, say, note)

    if kernel is None and ramdisk is None:
        found = detected()
        return kernel_alone(found, "no ramdisk (--no-ramdisk)") if no_ramdisk else found
    if kernel is None:
        assert ramdisk is not None
        return kernel_for(resolve(ramdisk), _raw(ramdisk), location, known, say, detected)
    kernel_ref = resolve(kernel)
    if ramdisk is not None:
        return Selection(kernel_ref, resolve(ramdisk), "explicit kernel and ramdisk")
    if no_ramdisk:
        return Selection(kernel_ref, None, "explicit kernel, no ramdisk (--no-ramdisk)")
    return ramdisk_for(kernel_ref, _raw(kernel), location, known, say)


def _raw(spec: Union[FileSpec, str]) -> str:
    return spec.raw or spec.shown if isinstance(spec, FileSpec) else spec


def kernel_args(cmdline: str, selection: Selection, install_args: bool = True) -> str:
    """The command line to boot: the user's, plus the installer's source if wanted."""
    if not install_args or not selection.install_args:
        return cmdline
    return installargs.merge(cmdline, selection.install_args)


__all__ = [
    "FileRef",
    "ORIGINAL_PAIRS",
    "Pair",
    "Selection",
    "describe",
    "kernel_args",
    "ramdisk_for_kernel",
    "ramdisks_for_kernel",
    "search_pairs",
    "select_files",
]
