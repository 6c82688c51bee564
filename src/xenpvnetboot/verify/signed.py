"""Fetching a signed list from a tree: clearsigned, or beside its detached signature.

Shared by the mirror chain and the image chain.  Each outcome is a value or
one of the verification exceptions, which :func:`verdict_of` turns into the
verdict every file depending on the list gets.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Optional, Sequence, Union

from ..errors import BootError, NotFound
from ..layouts.text import looks_like_html
from ..transports import Tree
from .lists import MAX_LIST_SIZE, ListError
from .model import Failed, NoChain, NoKey, Signer, Verdict
from .openpgp import (BadSignature, KeyStore, MissingKey, is_clearsigned, verify_clearsigned,
                      verify_detached)

#: Largest detached signature read (one is ~1 KiB; Debian's three ~3 KiB).
MAX_SIGNATURE_SIZE = 64 << 10


@dataclass(frozen=True)
class SignedList:
    """The verified text of a list, its URL and who signed it."""

    url: str
    content: bytes
    signer: Signer


def read_optional(tree: Tree, path: str, limit: int) -> Optional[bytes]:
    """The bytes of *path*, or None if it does not exist; bounded by *limit*."""
    try:
        return tree.read_bytes(path, limit)
    except NotFound:
        return None


def fetch_signed(
    tree: Tree,
    path: str,
    keys: KeyStore,
    detached: Sequence[str] = (),
    data: Optional[bytes] = None,
) -> Union[SignedList, NoChain, None]:
    """Verify the list at *path*; None if it does not exist (or is an HTML page).

    A clearsigned file is checked as it is; otherwise the first of the
    *detached* signature files that exists is used.  An unsigned list is
    :class:`NoChain` -- unless *detached* is empty, meaning the format is
    always clearsigned (``InRelease``), when it is a bad signature.  Raises
    :class:`MissingKey` or :class:`BadSignature`.
    """
    url = tree.url(path)
    if data is None:
        data = read_optional(tree, path, MAX_LIST_SIZE)
        if data is None or looks_like_html(data[:512].decode("latin-1")):
            return None  # a sloppy server's error page for a missing file
    if is_clearsigned(data):
        signed = verify_clearsigned(data, keys, url)
        return SignedList(url, signed.content, signed.signer)
    if not detached:
        raise BadSignature(f"{url}: is not a clearsigned file")
    for name in detached:
        signature = read_optional(tree, name, MAX_SIGNATURE_SIZE)
        if signature is not None:
            signed = verify_detached(data, signature, keys, url, tree.url(name))
            return SignedList(url, data, signed.signer)
    return NoChain(f"{url} is not signed (no {' or '.join(n.rsplit('/', 1)[-1] for n in detached)} beside it)")


def verdict_of(exc: BootError) -> Verdict:
    """The verdict of a check that raised: no key, or a failure naming the URL."""
    if isinstance(exc, MissingKey):
        return NoKey(exc.source, exc.key_ids)
    return Failed(str(exc))


#: The exceptions that become verdicts rather than ending the boot at once.
VERDICT_ERRORS = (MissingKey, BadSignature, ListError)


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


__all__ = ["MAX_SIGNATURE_SIZE", "SignedList", "VERDICT_ERRORS", "fetch_signed", "read_optional",
           "sha256_hex", "verdict_of"]
