"""One boot's signature checks: which chain applies to each selected file.

The boot calls two things, in this order:

1. :meth:`Verifier.image_hook` while it opens an image location (between the
   byte source and the filesystem reader): the image is checked against what
   is signed beside it, and the source returned is what everything inside the
   image must then be read through;
2. :meth:`Verifier.check` once the kernel and ramdisk are chosen, which
   returns a :class:`~.model.Report` to enforce, print and apply.

Files in a verified image take the image's verdict; files below a mirror's
``dists/<suite>/`` follow the Debian chain; a ``.treeinfo`` tree has no
signature to follow, nor has anything else known today.
"""

from __future__ import annotations

from typing import Callable, Dict, Optional, Sequence, Tuple

from ..errors import BootError
from ..layouts.model import Selection
from ..preloading import import_optional
from ..transports import ByteSource, Tree
from .keyrings import KeyringData, read_keyring_trees
from .model import REQUIRE, FileVerdict, NoChain, Report, Verdict, same_for_all
from .origin import Origin

TREEINFO = (".treeinfo", "treeinfo")
NO_TREEINFO_SIGNATURE = (".treeinfo trees carry no signature: its checksums come from the same "
                         "server as the files and catch corruption, not a hostile mirror")


def _has_treeinfo(tree: Tree) -> bool:
    for name in TREEINFO:
        try:
            tree.stat(name)
            return True
        except BootError:
            continue
    return False


class Verifier:
    """The keys and policy of one boot, and the image verdict once known."""

    def __init__(
        self,
        policy: str,
        keyrings: Sequence[KeyringData],
        fallback: Optional[Callable[[], Sequence[KeyringData]]] = read_keyring_trees,
        dry_run: bool = False,
    ) -> None:
        from .openpgp import KeyStore

        self.policy = policy
        self.dry_run = dry_run
        self.keys = KeyStore(keyrings, fallback)
        self._image: Optional[Tuple[str, Verdict]] = None

    def image_hook(self, directory: Tree, name: str, source: ByteSource, remote: bool) -> ByteSource:
        """Check image *name* of *directory*; return the source to read it through."""
        from .images import check_image

        checked = check_image(directory, name, source, self.keys, remote=remote,
                              hash_remote=self.policy == REQUIRE, hash_image=not self.dry_run)
        self._image = (source.name, checked.verdict)
        return checked.source

    @property
    def image_verdict(self) -> Optional[Verdict]:
        return self._image[1] if self._image is not None else None

    def check(self, selection: Selection, origins: Sequence[Origin]) -> Report:
        """The verdict of each selected file.

        *origins* are the trees the files may come from: the location's first
        (it is the image, when the location is one), then the trees of
        ``--kernel``/``--ramdisk`` given as full URLs.  A file whose tree is
        in none of them has no chain.
        """
        from .debian import check_mirror

        refs = selection.refs()
        verdicts: Dict[str, FileVerdict] = {}
        for index, origin in enumerate(origins):
            group = [(role, ref) for role, ref in refs if ref.tree is origin.tree and role not in verdicts]
            if not group:
                continue
            if index == 0 and self._image is not None:
                report = same_for_all(group, self._image[1])
            else:
                report = check_mirror(group, origin, self.keys) or same_for_all(
                    group, NoChain(NO_TREEINFO_SIGNATURE if _has_treeinfo(origin.tree)
                                   else f"no signed checksum list is known for {origin.tree.url('')}"))
            verdicts.update((item.role, item) for item in report.files)
        for role, ref in refs:
            if role not in verdicts:
                verdicts[role] = FileVerdict(role, ref.url, NoChain("no signed checksum list is known for it"))
        return Report(tuple(verdicts[role] for role, _ in refs))


#: What a --runas child must have in memory before it loses access to the
#: Python installation.
_PRELOAD = (
    "pysequoia", "pysequoia.packet", "email.utils", "hashlib",
    "xenpvnetboot.verify.openpgp", "xenpvnetboot.verify.debian", "xenpvnetboot.verify.images",
    "xenpvnetboot.verify.signed",
)


def preload() -> None:
    """Import the library and the chains now (see :func:`xenpvnetboot.location.preload`)."""
    import_optional(_PRELOAD)


__all__ = ["NO_TREEINFO_SIGNATURE", "Verifier", "preload"]
