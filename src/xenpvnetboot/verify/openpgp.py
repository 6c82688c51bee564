"""OpenPGP signatures, checked with Sequoia (``pysequoia``): no external program.

The library is imported on the first check only, so a boot that verifies
nothing never loads it.  Sequoia applies the OpenPGP rules: a signature is
good when an installed key that was valid *when the signature was made*
made it -- a key that has since expired still vouches for what it signed
before, one that had expired, or that is revoked, does not -- and weak
algorithms (SHA-1, short RSA) are refused by its standard policy.

The library only says "no valid signature"; to tell the administrator what to
do, a failure is classified here: no installed key made any of the
signatures (:class:`MissingKey`: which key IDs to look for), or a known key's
signature is bad (:class:`BadSignature`: revoked, expired at signing time, or
the data was altered).  For a clearsigned file only the text the signature
covers is returned: nothing outside the signed block is ever read.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from types import ModuleType
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

from ..errors import BootError
from ..layouts.text import printable
from .keyrings import KeyringData
from .model import Signer, spaced

_CLEAR_START = b"-----BEGIN PGP SIGNED MESSAGE-----"
_SIG_START = b"-----BEGIN PGP SIGNATURE-----"
#: Signatures tried in one detached block (real ones have one to three).
MAX_SIGNATURES = 8


class MissingKey(BootError):
    """Signed, but by no installed key."""

    def __init__(self, source: str, key_ids: Sequence[str]) -> None:
        self.source = source
        self.key_ids = tuple(dict.fromkeys(k.lower() for k in key_ids))
        super().__init__(f"{source}: signed by {', '.join(map(spaced, self.key_ids))}, "
                         "which no installed keyring holds")


class BadSignature(BootError):
    """The signature does not verify: the boot fails whatever the policy."""


def library() -> ModuleType:
    """pysequoia, or one line naming the package to install."""
    try:
        import pysequoia
    except ImportError as exc:
        raise BootError(
            f"checking signatures needs the Python package pysequoia (pip install pysequoia), "
            f"or --verify=off: {exc}"
        ) from None
    return pysequoia


def _first_line(exc: BaseException) -> str:
    """The library's message without the Rust backtrace that RUST_BACKTRACE adds."""
    text = str(exc).strip().splitlines()
    return printable(text[0]) if text else type(exc).__name__


def is_clearsigned(data: bytes) -> bool:
    return data.lstrip()[: len(_CLEAR_START)] == _CLEAR_START


class KeyStore:
    """The trusted certificates, parsed on first use and indexed by key handle.

    *fallback* supplies more keyrings (distribution-gpg-keys) that are parsed
    only when a signature names a key the first ones do not have.
    """

    def __init__(self, keyrings: Sequence[KeyringData],
                 fallback: Optional[Callable[[], Sequence[KeyringData]]] = None) -> None:
        self._pending: List[KeyringData] = list(keyrings)
        self._fallback = fallback
        self._by_handle: Dict[str, List[Any]] = {}
        self._by_fingerprint: Dict[str, Any] = {}
        #: Keyring files whose certificates could not be parsed (for --verbose).
        self.skipped: List[str] = []

    def _load(self, items: Sequence[KeyringData]) -> None:
        pgp = library()
        for item in items:
            try:
                certs = pgp.Cert.split_bytes(item.data)
            except Exception as exc:  # hostile or foreign bytes: the library raises anything
                if item.explicit:
                    raise BootError(f"--keyring {item.name}: not an OpenPGP keyring "
                                    f"(a GnuPG keybox? export it with gpg --export): "
                                    f"{_first_line(exc)}") from None
                self.skipped.append(item.name)
                continue
            if not certs and item.explicit:
                raise BootError(f"--keyring {item.name}: holds no OpenPGP certificate")
            handles = _handles(item.data, certs)
            for cert in certs:
                known = self._by_fingerprint.get(cert.fingerprint)
                if known is not None:
                    self._merge(known, cert)
                    continue
                self._by_fingerprint[cert.fingerprint] = cert
                for handle in handles.get(cert.fingerprint) or _handles(bytes(cert), [cert])[cert.fingerprint]:
                    self._by_handle.setdefault(handle, []).append(cert)

    def _merge(self, known: Any, again: Any) -> None:
        """One certificate met in two keyrings: keep both copies' signatures.

        A revocation or a new expiry shipped in one keyring must count even
        when an older copy of the key is in another.
        """
        try:
            merged = known.merge(again)
        except Exception:  # not mergeable: keep the first copy
            return
        self._by_fingerprint[known.fingerprint] = merged
        for bucket in self._by_handle.values():
            for index, cert in enumerate(bucket):
                if cert is known:
                    bucket[index] = merged

    def load(self) -> None:
        """Parse the keyrings given so far (an error names a bad --keyring file)."""
        pending, self._pending = self._pending, []
        self._load(pending)

    def _match(self, handles: Sequence[str]) -> List[Any]:
        found: List[Any] = []
        for handle in handles:
            for cert in self._by_handle.get(handle.lower(), ()):
                if cert not in found:
                    found.append(cert)
        return found

    def lookup(self, handles: Sequence[str]) -> List[Any]:
        """The certificates holding any of these fingerprints or key IDs."""
        self.load()
        found = self._match(handles)
        if not found and self._fallback is not None:
            fallback, self._fallback = self._fallback, None
            self._load(fallback())
            found = self._match(handles)
        return found

    def signer(self, fingerprint: str, key: str) -> Signer:
        cert = self._by_fingerprint.get(fingerprint)
        ids = cert.user_ids if cert is not None else []
        return Signer(fingerprint.lower(), printable(str(ids[0])) if ids else "", key.lower())


def _handles(data: bytes, certs: Sequence[Any]) -> Dict[str, List[str]]:
    """Certificate fingerprint -> fingerprints and key IDs of its primary key and subkeys.

    Read from the keyring's packets in one pass: serialising each certificate
    again (``bytes(cert)``) costs ~10 ms apiece, this a fraction of that.
    """
    from pysequoia.packet import PacketPile

    primaries = {cert.fingerprint for cert in certs}
    found: Dict[str, List[str]] = {}
    current: Optional[str] = None
    try:
        packets = list(PacketPile.from_bytes(data))
    except Exception:
        return found
    for packet in packets:
        fingerprint = packet.fingerprint
        if fingerprint is None:
            continue
        if fingerprint in primaries:
            current = fingerprint
        if current is not None:
            found.setdefault(current, []).extend(
                handle.lower() for handle in (fingerprint, packet.key_id) if handle)
    return found


@dataclass(frozen=True)
class Signed:
    """Bytes an installed key signed, and that key."""

    content: bytes
    signer: Signer


@dataclass(frozen=True)
class _SigInfo:
    """What the signature packets say before any check: when, and by whom."""

    blob: bytes
    created: Optional[datetime]
    handles: Tuple[str, ...]


def _signature_packets(blob: bytes) -> List[_SigInfo]:
    """Each signature packet of an armored or binary block."""
    from pysequoia.packet import PacketPile

    try:
        packets = list(PacketPile.from_bytes(blob))
    except Exception:  # not OpenPGP at all
        return []
    found = []
    for packet in packets:
        if packet.signature_version is None:
            continue
        handles = tuple(h for h in (packet.issuer_fingerprint, packet.issuer_key_id) if h)
        found.append(_SigInfo(bytes(packet), packet.signature_created, handles))
    return found


def _why_bad(certs: Sequence[Any], signatures: Sequence[_SigInfo], keys: KeyStore) -> str:
    """The most telling reason a known key's signature failed."""
    for cert in certs:
        label = keys.signer(cert.fingerprint, "").label
        if cert.is_revoked:
            return f"the key {label} is revoked"
        expires = cert.expiration
        for sig in signatures:
            created = sig.created
            if created is not None and expires is not None and created > expires \
                    and cert in keys.lookup(sig.handles):
                return (f"the key {label} expired on {expires:%Y-%m-%d}, "
                        f"before the signature was made on {created:%Y-%m-%d}")
    return "the signature does not match the data (altered on the server or on the way)"


def _verify(source: str, keys: KeyStore, signature_blob: bytes, **kwargs: Any) -> Signed:
    pgp = library()
    keys.load()
    asked: List[str] = []
    given: List[Any] = []

    def store(handles: List[str]) -> List[Any]:
        asked.extend(handles)
        certs = keys.lookup(handles)
        given.extend(c for c in certs if c not in given)
        return certs

    try:
        result = pgp.verify(store=store, **kwargs)
        valid = list(result.valid_sigs)
    except BootError:
        raise
    except Exception as exc:  # the library reports every failure alike
        signatures = _signature_packets(signature_blob)
        if not asked and not signatures:
            raise BadSignature(f"{source}: carries no OpenPGP signature ({_first_line(exc)})") from None
        if not given:
            ids = asked or [sig.handles[0] for sig in signatures if sig.handles]
            raise MissingKey(source, ids) from None
        raise BadSignature(f"{source}: bad signature: {_why_bad(given, signatures, keys)}") from None
    if not valid:
        raise BadSignature(f"{source}: no valid signature")
    first = valid[0]
    return Signed(result.bytes if result.bytes is not None else b"",
                  keys.signer(first.certificate, first.signing_key))


def verify_clearsigned(data: bytes, keys: KeyStore, source: str) -> Signed:
    """The text a clearsigned file (``InRelease``, Fedora's ``CHECKSUM``) signs."""
    start = data.find(_SIG_START)
    return _verify(source, keys, data[start:] if start >= 0 else b"", bytes=data)


def verify_detached(data: bytes, signature: bytes, keys: KeyStore, source: str,
                    signature_source: str) -> Signed:
    """*data* under a detached signature (``Release.gpg``, ``SHA256SUMS.gpg``, ``.asc``).

    Such a file may hold several signatures (Debian signs with two or three
    keys); the library reads only the first of a block, so each is tried in
    turn and the first good one wins.
    """
    pgp = library()
    signatures = _signature_packets(signature)
    if not signatures:
        raise BadSignature(f"{signature_source}: not an OpenPGP signature")
    missing: List[str] = []
    bad: Optional[BadSignature] = None
    for sig in signatures[:MAX_SIGNATURES]:
        try:
            return _verify(source, keys, sig.blob, bytes=data, signature=pgp.Sig.from_bytes(sig.blob))
        except MissingKey as exc:
            missing.extend(exc.key_ids)
        except BadSignature as exc:
            bad = bad or exc
    if bad is not None:
        raise bad
    raise MissingKey(source, missing)


__all__ = ["BadSignature", "KeyStore", "MissingKey", "Signed", "is_clearsigned", "library",
           "verify_clearsigned", "verify_detached"]
