"""The image chain: a signed checksum list (or signature) beside an ISO.

Distributions sign their images, not the files inside: Fedora, CentOS
Stream, Rocky and Alma publish a clearsigned ``CHECKSUM`` (BSD lines; Fedora
names it after the image, ``Fedora-Server-40-1.14-x86_64-CHECKSUM``), Ubuntu
and Debian a ``SHA256SUMS`` with a detached ``SHA256SUMS.gpg`` or
``SHA256SUMS.sign``, Alpine and Arch a detached ``<image>.asc``/``.sig`` over
the image itself.  So the whole image must be hashed once, streamed through
SHA-256 (:func:`digest_source`), before the kernel and ramdisk inside it can
be trusted.

A local image costs one read of it (SHA-256 runs at ~700 MB/s here).  A remote
one costs a download of all of it, which only ``--verify=require`` pays.  And
since a remote image is then read again by ranges, a server could answer the
hashing pass and the later reads differently: :class:`CheckedSource` keeps a
digest of every 256 KiB block of the verified pass and checks each later
read against it, so what the layout code and the boot read is exactly what
was verified (the hashing pass is the only full download).
"""

from __future__ import annotations

import hashlib
import os
import re
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import List, Optional, Tuple

from ..errors import BootError
from ..transports import ByteSource, Sink, Tree
from ..ui import human_size
from .lists import parse_sums
from .model import Failed, NoChain, Verdict, Verified
from .openpgp import KeyStore, verify_detached
from .signed import (MAX_SIGNATURE_SIZE, VERDICT_ERRORS, SignedList, fetch_signed, read_optional,
                     verdict_of)

#: Block of the digests a remote image's later reads are checked against.
BLOCK = 256 << 10
#: A detached signature over the image itself needs the image in memory
#: (the library takes bytes); larger images are not checked that way.
MAX_SIGNED_IMAGE = 256 << 20

_FEDORA = re.compile(r"(Fedora-[A-Za-z0-9_]+)-[A-Za-z0-9_]+-(x86_64|aarch64|ppc64le|s390x)-"
                     r"([0-9][A-Za-z0-9_]*-[0-9][0-9.n]*)\.iso")


def checksum_lists(name: str) -> List[Tuple[str, Tuple[str, ...]]]:
    """(list, its detached signatures) to look for beside image *name*, likeliest first."""
    found: List[Tuple[str, Tuple[str, ...]]] = []
    match = _FEDORA.fullmatch(name)
    if match is not None:
        found.append((f"{match.group(1)}-{match.group(3)}-{match.group(2)}-CHECKSUM", ()))
    found.append(("CHECKSUM", ("CHECKSUM.sig", "CHECKSUM.asc")))
    found.append(("SHA256SUMS", ("SHA256SUMS.gpg", "SHA256SUMS.sign", "SHA256SUMS.asc",
                                 "SHA256SUMS.sig")))
    return found


def image_signatures(name: str) -> Tuple[str, ...]:
    """Detached signatures over the image itself (Alpine ``.asc``, Arch ``.sig``)."""
    return (f"{name}.asc", f"{name}.sig")


class _Hasher:
    """A write-only file that hashes what the source streams into it."""

    def __init__(self, blocks: bool, keep: bool) -> None:
        self.whole = hashlib.sha256()
        self.blocks: Optional[List[bytes]] = [] if blocks else None
        self.kept: Optional[List[bytes]] = [] if keep else None
        self._partial = hashlib.sha256()
        self._fill = 0

    def write(self, data: bytes) -> int:
        self.whole.update(data)
        if self.kept is not None:
            self.kept.append(bytes(data))
        if self.blocks is not None:
            view = memoryview(data)
            while view:
                take = min(len(view), BLOCK - self._fill)
                self._partial.update(view[:take])
                self._fill += take
                view = view[take:]
                if self._fill == BLOCK:
                    self.blocks.append(self._partial.digest())
                    self._partial, self._fill = hashlib.sha256(), 0
        return len(data)

    def finish(self) -> None:
        if self.blocks is not None and self._fill:
            self.blocks.append(self._partial.digest())


@dataclass(frozen=True)
class ImageDigest:
    sha256: str
    size: int
    #: SHA-256 of each BLOCK-sized piece (empty unless asked for).
    blocks: Tuple[bytes, ...] = ()
    #: The image's bytes (only when asked for, for a signature over the image).
    data: Optional[bytes] = field(default=None, repr=False)


def digest_source(source: ByteSource, blocks: bool = False, keep: bool = False) -> ImageDigest:
    """Stream all of *source* once through SHA-256 (one request for a remote image)."""
    hasher = _Hasher(blocks, keep)
    size = source.size
    sink = Sink(hasher, source.name, max_size=size)  # type: ignore[arg-type]
    source.copy_range(0, size, sink)
    if sink.error is not None:
        raise sink.error
    if sink.written != size:
        raise BootError(f"{source.name}: ended after {sink.written} of {size} bytes")
    hasher.finish()
    return ImageDigest(hasher.whole.hexdigest(), size, tuple(hasher.blocks or ()),
                       b"".join(hasher.kept) if hasher.kept is not None else None)


def sha256_source(source: ByteSource) -> str:
    """The SHA-256 of a whole byte source, streamed."""
    return digest_source(source).sha256


def sha256_fd(fd: int, length: Optional[int] = None, chunk: int = 1 << 20) -> str:
    """The SHA-256 of an open file's first *length* bytes (all: None).

    Read by offset, so the file's position does not move; *length* leaves out
    what was appended after the download (``--initrd-inject``).
    """
    digest = hashlib.sha256()
    offset = 0
    while length is None or offset < length:
        want = chunk if length is None else min(chunk, length - offset)
        data = os.pread(fd, want, offset)
        if not data:
            break
        digest.update(data)
        offset += len(data)
    return digest.hexdigest()


class CheckedSource(ByteSource):
    """Reads of an image that must match its verified hashing pass, block by block."""

    CACHE = 16  # verified blocks kept for the small reads of the image libraries
    SPAN = 16  # blocks read at once by a large read (4 MiB)

    def __init__(self, source: ByteSource, digest: ImageDigest) -> None:
        self._source = source
        self._digest = digest
        self._cache: "OrderedDict[int, bytes]" = OrderedDict()
        self.name = source.name

    @property
    def size(self) -> int:
        return self._digest.size

    def _read_blocks(self, first: int, count: int) -> List[bytes]:
        start = first * BLOCK
        data = self._source.pread(start, min(count * BLOCK, self.size - start))
        pieces = [data[i:i + BLOCK] for i in range(0, len(data), BLOCK)]
        for index, piece in enumerate(pieces, first):
            if len(piece) != min(BLOCK, self.size - index * BLOCK) or \
                    hashlib.sha256(piece).digest() != self._digest.blocks[index]:
                raise BootError(f"{self.name}: bytes {index * BLOCK}-{index * BLOCK + len(piece)} "
                                "differ from the image that was verified (changed while read?)")
        return pieces

    def _block(self, index: int) -> bytes:
        cached = self._cache.get(index)
        if cached is not None:
            self._cache.move_to_end(index)
            return cached
        for number, piece in enumerate(self._read_blocks(index, 4), index):
            self._cache[number] = piece
        while len(self._cache) > self.CACHE:
            self._cache.popitem(last=False)
        return self._cache[index]

    def pread(self, offset: int, length: int) -> bytes:
        end = min(offset + max(length, 0), self.size)
        if offset >= end:
            return b""
        first, last = offset // BLOCK, (end - 1) // BLOCK
        if last - first + 1 > self.CACHE // 2:
            pieces = self._read_blocks(first, last - first + 1)
        else:
            pieces = [self._block(i) for i in range(first, last + 1)]
        joined = b"".join(pieces)
        return joined[offset - first * BLOCK:end - first * BLOCK]

    def copy_range(self, offset: int, length: int, sink: Sink) -> None:
        end = offset + length
        while offset < end:
            first = offset // BLOCK
            data = b"".join(self._read_blocks(first, self.SPAN))
            piece = data[offset - first * BLOCK:min(end, (first + self.SPAN) * BLOCK) - first * BLOCK]
            if not piece:
                raise BootError(f"{self.name}: ends at byte {offset}, before the {end} needed")
            if sink.write(piece) != len(piece):
                raise sink.error or BootError(f"{sink.name}: write refused")
            offset += len(piece)

    def close(self) -> None:
        self._source.close()


@dataclass(frozen=True)
class ImageCheck:
    verdict: Verdict
    #: What to read the image through from now on (checked if it was remote).
    source: ByteSource


def _hashed(source: ByteSource, remote: bool, keep: bool = False) -> Tuple[ImageDigest, ByteSource]:
    digest = digest_source(source, blocks=remote, keep=keep)
    return digest, (CheckedSource(source, digest) if remote else source)


def _by_list(directory: Tree, name: str, source: ByteSource, found: SignedList,
             remote: bool, hash_image: bool) -> Optional[ImageCheck]:
    url = source.name
    expected = parse_sums(found.content, found.url).get(name)
    if expected is None:
        return None
    if not hash_image:
        return ImageCheck(Verified(found.signer, (found.url, url),
                                   note=f"lists SHA-256 {expected}; the image is not hashed in a dry run"),
                          source)
    digest, checked = _hashed(source, remote)
    if digest.sha256 != expected:
        return ImageCheck(Failed(f"{url}: SHA-256 is {digest.sha256}, but {found.url} "
                                 f"(signed by {found.signer.label}) lists {expected}"), source)
    return ImageCheck(Verified(found.signer, (found.url, url)), checked)


def _by_signature(directory: Tree, name: str, source: ByteSource, keys: KeyStore,
                  remote: bool, hash_image: bool) -> Optional[ImageCheck]:
    for sig_name in image_signatures(name):
        signature = read_optional(directory, sig_name, MAX_SIGNATURE_SIZE)
        if signature is None:
            continue
        if not hash_image:
            return ImageCheck(NoChain(f"{directory.url(sig_name)} signs all of {source.name}, "
                                      "which a dry run does not read"), source)
        if source.size > MAX_SIGNED_IMAGE:
            return ImageCheck(NoChain(f"{directory.url(sig_name)} signs {source.name}, which is "
                                      f"larger than the {human_size(MAX_SIGNED_IMAGE)} checked in "
                                      "memory"), source)
        digest, checked = _hashed(source, remote, keep=True)
        signed = verify_detached(digest.data or b"", signature, keys, source.name,
                                 directory.url(sig_name))
        return ImageCheck(Verified(signed.signer, (directory.url(sig_name), source.name)), checked)
    return None


def check_image(directory: Tree, name: str, source: ByteSource, keys: KeyStore,
                remote: bool, hash_remote: bool, hash_image: bool = True) -> ImageCheck:
    """Verify image *name* of *directory* against what is signed beside it.

    *hash_remote*: a remote image may be downloaded whole for it (``require``);
    *hash_image* false (a dry run): check the list's signature only.
    """
    url = source.name
    if remote and not hash_remote:
        return ImageCheck(NoChain(f"checking {url} means downloading all {human_size(source.size)} "
                                  "of it, which only --verify=require does"), source)
    reason = f"no signed checksum list or signature beside {url}"
    try:
        for list_name, signatures in checksum_lists(name):
            found = fetch_signed(directory, list_name, keys, signatures)
            if isinstance(found, NoChain):
                reason = found.reason
            elif found is not None:
                checked = _by_list(directory, name, source, found, remote, hash_image)
                if checked is not None:
                    return checked
                reason = f"{url} is not listed in {found.url}"
        checked = _by_signature(directory, name, source, keys, remote, hash_image)
    except VERDICT_ERRORS as exc:
        return ImageCheck(verdict_of(exc), source)
    return checked if checked is not None else ImageCheck(NoChain(reason), source)


__all__ = ["BLOCK", "CheckedSource", "ImageCheck", "ImageDigest", "checksum_lists", "check_image",
           "digest_source", "image_signatures", "sha256_fd", "sha256_source"]
