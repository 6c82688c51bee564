"""Which keys are trusted: the distributions' keyring packages, plus ``--keyring``.

A key is only ever read from this host: never from the server that serves
the files it is to vouch for (whoever controls the files would control the
key).  The files are read here as bytes, while the process may still be root
(a ``--runas`` child may not read ``/usr/share`` nor a private keyring);
parsing them is :mod:`.openpgp`'s job, later and only if a chain is checked.

Only keyrings of keys that sign archives and images are taken by default:
not ``debian-archive-removed-keys.gpg`` (retired keys), not the developers'
``debian-keyring.gpg``, and not ``distribution-gpg-keys``' ``copr`` directory
(a key per user project of a public build service).
"""

from __future__ import annotations

import os
import stat as stat_mod
from dataclasses import dataclass
from typing import Iterable, List, Optional, Sequence, Tuple

from ..errors import UsageError

#: Single keyring files, in the order they are searched.
SYSTEM_KEYRINGS: Tuple[str, ...] = (
    # debian-archive-keyring: archive (InRelease) keys of every supported release.
    "/usr/share/keyrings/debian-archive-keyring.gpg",
    # debian-keyring: role keys, among them the Debian CD signing key (ISO SHA256SUMS).
    "/usr/share/keyrings/debian-role-keys.gpg",
    # ubuntu-keyring: archive keys, and the CD image key of Ubuntu's ISO SHA256SUMS.
    "/usr/share/keyrings/ubuntu-archive-keyring.gpg",
    "/usr/share/keyrings/ubuntu-cloudimage-keyring.gpg",
)
#: distribution-gpg-keys: Fedora, CentOS, Rocky, Alma, openSUSE... one directory each.
DISTRIBUTION_GPG_KEYS = "/usr/share/distribution-gpg-keys"
#: Directories of distribution-gpg-keys that are not distributions' own keys.
SKIPPED_DIRECTORIES = frozenset({"copr"})

#: Largest keyring file read (the whole debian-archive-keyring.gpg is ~30 KiB).
MAX_KEYRING_SIZE = 16 << 20
#: Bytes and files read over all keyrings, whatever a directory holds.
MAX_TOTAL_SIZE = 64 << 20
MAX_FILES = 4096


@dataclass(frozen=True)
class KeyringData:
    """The bytes of one keyring file and where they came from."""

    name: str
    data: bytes
    #: Given with --keyring (searched first, and errors in it are the user's).
    explicit: bool = False


class _Budget:
    def __init__(self) -> None:
        self.files = 0
        self.size = 0

    def take(self, size: int) -> bool:
        if self.files >= MAX_FILES or self.size + size > MAX_TOTAL_SIZE:
            return False
        self.files += 1
        self.size += size
        return True


def _read(path: str, budget: _Budget, explicit: bool) -> Optional[KeyringData]:
    """One keyring file, bounded; a missing system file is simply skipped."""
    try:
        # O_NONBLOCK: a FIFO given as a keyring must not hang the boot.
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK)
        with os.fdopen(fd, "rb") as handle:
            st = os.fstat(fd)
            if not stat_mod.S_ISREG(st.st_mode):
                if explicit:
                    raise UsageError(f"--keyring {path}: not a regular file")
                return None
            if st.st_size > MAX_KEYRING_SIZE:
                if explicit:
                    raise UsageError(f"--keyring {path}: larger than {MAX_KEYRING_SIZE} bytes")
                return None
            if not budget.take(st.st_size):
                if explicit:
                    raise UsageError(f"--keyring {path}: the keyrings exceed "
                                     f"{MAX_TOTAL_SIZE} bytes or {MAX_FILES} files")
                return None
            data = handle.read(MAX_KEYRING_SIZE + 1)[:MAX_KEYRING_SIZE]
    except OSError as exc:
        if explicit:
            raise UsageError(f"--keyring {path}: {exc.strerror or exc}") from None
        return None
    return KeyringData(path, data, explicit)


def _tree_files(root: str) -> Iterable[str]:
    """Regular files below *root*, sorted, skipping the directories not trusted."""
    try:
        names = sorted(os.listdir(root))
    except OSError:
        return
    for name in names:
        path = os.path.join(root, name)
        if os.path.islink(path):
            continue
        if os.path.isdir(path):
            if name not in SKIPPED_DIRECTORIES:
                yield from _tree_files(path)
        elif os.path.isfile(path):
            yield path


def read_keyrings(
    explicit: Sequence[str] = (),
    system: bool = True,
    system_files: Sequence[str] = SYSTEM_KEYRINGS,
) -> List[KeyringData]:
    """The ``--keyring`` files (which must exist), then the installed keyring files.

    A missing, unreadable or oversized system keyring is skipped.
    """
    budget = _Budget()
    found: List[KeyringData] = []
    for path in list(explicit) + (list(system_files) if system else []):
        item = _read(path, budget, path in explicit)
        if item is not None:
            found.append(item)
    return found


def read_keyring_trees(roots: Sequence[str] = (DISTRIBUTION_GPG_KEYS,)) -> List[KeyringData]:
    """Every key file of the distribution-gpg-keys tree (hundreds of small files).

    Read only when the keyring files did not have the key a signature names,
    so that a Debian boot never walks it.
    """
    budget = _Budget()
    found: List[KeyringData] = []
    for root in roots:
        for path in _tree_files(root):
            item = _read(path, budget, False)
            if item is not None:
                found.append(item)
    return found


__all__ = ["DISTRIBUTION_GPG_KEYS", "KeyringData", "MAX_KEYRING_SIZE", "SYSTEM_KEYRINGS",
           "read_keyring_trees", "read_keyrings"]
