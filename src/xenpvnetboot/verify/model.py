"""What a signature check found, per file, and what each policy does with it.

The verdicts are plain values so that a ``--runas`` child can send them to
its parent (:meth:`Report.to_wire`) and the dry run can print them; nothing
here imports the OpenPGP library.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Callable, Collection, Dict, List, Optional, Sequence, Tuple, Union

from ..errors import BootError, UsageError
from ..layouts.model import FileRef, Selection
from ..layouts.text import printable
from .lists import is_hex_sha256

AUTO = "auto"
REQUIRE = "require"
OFF = "off"
POLICIES = (AUTO, REQUIRE, OFF)


def parse_policy(text: str) -> str:
    """The ``--verify`` value, checked."""
    value = text.strip().lower()
    if value not in POLICIES:
        raise UsageError(f"--verify={text}: choose one of {', '.join(POLICIES)}")
    return value


def spaced(fingerprint: str) -> str:
    """``B8B80B5B...`` in the groups of four that ``gpg`` and the keyrings' docs use."""
    hexa = fingerprint.upper()
    return " ".join(hexa[i:i + 4] for i in range(0, len(hexa), 4))


@dataclass(frozen=True)
class Signer:
    """The installed key that vouched for a list."""

    #: The certificate's (primary key's) fingerprint, lower-case hex.
    fingerprint: str
    #: Its first user ID, made printable.
    owner: str
    #: The (sub)key that made the signature.
    key: str = ""

    @property
    def label(self) -> str:
        return f"{spaced(self.fingerprint)} ({self.owner})" if self.owner else spaced(self.fingerprint)


@dataclass(frozen=True)
class Verified:
    """The file's hash comes from a list an installed key signed."""

    signer: Signer
    #: URLs from the signed file down to the list naming this file (or the image).
    chain: Tuple[str, ...]
    #: The file's expected SHA-256; None when an image's verified hash covers it.
    sha256: Optional[str] = None
    #: What was left unchecked (a dry run does not hash an image).
    note: str = ""


@dataclass(frozen=True)
class NoChain:
    """Nothing signed covers the file (the reason says why)."""

    reason: str


@dataclass(frozen=True)
class NoKey:
    """A signature exists, but no installed key made it."""

    signed: str
    key_ids: Tuple[str, ...]

    @property
    def reason(self) -> str:
        keys = ", ".join(spaced(k) for k in self.key_ids) or "an unnamed key"
        return f"{self.signed} is signed by {keys}, which no installed keyring holds (add it with --keyring)"


@dataclass(frozen=True)
class Failed:
    """A signature that does not verify, or a hash that differs: never booted."""

    reason: str


Verdict = Union[Verified, NoChain, NoKey, Failed]


@dataclass(frozen=True)
class FileVerdict:
    role: str
    url: str
    verdict: Verdict

    def line(self) -> str:
        """One console line: what was verified and by which key, or why not."""
        v = self.verdict
        if isinstance(v, Verified):
            via = " -> ".join(v.chain)
            note = f" ({v.note})" if v.note else ""
            return f"Verified {self.role} {self.url}: signed by {v.signer.label} via {via}{note}"
        if isinstance(v, Failed):
            return f"{self.role} {self.url}: {v.reason}"
        return f"Not verified: {self.role} {self.url}: {v.reason}"


@dataclass(frozen=True)
class Report:
    """The verdict of each selected file (kernel first)."""

    files: Tuple[FileVerdict, ...]

    def lines(self) -> List[str]:
        """One console line per file; two files vouched for by one chain share it."""
        lines: List[str] = []
        files = list(self.files)
        while files:
            item = files.pop(0)
            v = item.verdict
            if files and isinstance(v, Verified) and isinstance(files[0].verdict, Verified) \
                    and (v.signer, v.chain) == (files[0].verdict.signer, files[0].verdict.chain):
                other = files.pop(0)
                note = f" ({v.note})" if v.note else ""
                lines.append(f"Verified {item.role} {item.url} and {other.role} {other.url}: "
                             f"signed by {v.signer.label} via {' -> '.join(v.chain)}{note}")
            else:
                lines.append(item.line())
        return lines

    def verdict(self, role: str) -> Optional[Verdict]:
        return next((f.verdict for f in self.files if f.role == role), None)

    def enforce(self, policy: str, warn: Callable[[str], None],
                info: Optional[Callable[[str], None]] = None,
                pinned: Collection[str] = ()) -> None:
        """Refuse what the policy refuses, then say what was verified and what not.

        A failure refuses under every policy.  ``require`` also refuses a file
        no installed key vouches for, unless its role is in *pinned* (the
        administrator gave its SHA-256 by hand, which vouches as much).
        Nothing is printed before a refusal: its one line is the message.
        """
        unverified = [item for item in self.files if not isinstance(item.verdict, Verified)]
        for item in unverified:
            if isinstance(item.verdict, Failed):
                raise BootError(item.verdict.reason)
        for item in unverified:
            if policy == REQUIRE and item.role not in pinned:
                raise BootError(f"{item.url}: not verified ({item.verdict.reason}); "
                                "--verify=require refuses it")
        if info is not None:
            verified = Report(tuple(item for item in self.files if isinstance(item.verdict, Verified)))
            for line in verified.lines():
                info(line)
        for line in _unverified_lines(unverified, pinned):
            warn(line)

    def apply(self, selection: Selection) -> Selection:
        """The selection with each verified file's expected SHA-256 attached.

        The boot's streaming check (``FileRef.sha256`` -> ``Sink``) then
        compares as the bytes arrive; a hash already there (``.treeinfo``,
        ``--kernel-sha256``) that disagrees with the signed one refuses the boot.
        """
        refs: Dict[str, Optional[FileRef]] = {"kernel": selection.kernel, "ramdisk": selection.ramdisk}
        for item in self.files:
            ref = refs.get(item.role)
            v = item.verdict
            if ref is None or not isinstance(v, Verified) or v.sha256 is None:
                continue
            if ref.sha256 is not None and ref.sha256.lower() != v.sha256:
                raise BootError(
                    f"{ref.url}: the signed list {v.chain[-1]} gives SHA-256 {v.sha256}, "
                    f"but {ref.sha256.lower()} was expected"
                )
            refs[item.role] = dataclasses.replace(ref, sha256=v.sha256)
        return dataclasses.replace(selection, kernel=refs["kernel"], ramdisk=refs["ramdisk"])

    def confirm(self, role: str, actual_sha256: str) -> None:
        """Refuse an output file whose hash is not the signed one (the parent's check).

        Under ``--runas`` the parent trusts the child's verdicts only together
        with what it can recompute: the SHA-256 of the files it is handed.
        """
        v = self.verdict(role)
        if isinstance(v, Verified) and v.sha256 is not None and actual_sha256.lower() != v.sha256:
            raise BootError(f"the unprivileged helper wrote a {role} with SHA-256 {actual_sha256}, "
                            f"not the {v.sha256} that {v.chain[-1]} lists")

    # -- the --runas child's report ------------------------------------------

    def to_wire(self) -> List[Dict[str, object]]:
        return [_verdict_to_wire(item) for item in self.files]

    @classmethod
    def from_wire(cls, value: object) -> "Report":
        """Rebuild a child's report; anything unexpected is a bad report."""
        if not isinstance(value, list) or len(value) > 2:
            raise BootError("the unprivileged helper sent a bad verification report")
        return cls(tuple(_verdict_from_wire(item) for item in value))


def _unverified_lines(items: Sequence[FileVerdict], pinned: Collection[str]) -> List[str]:
    """One warning per reason: a kernel and ramdisk unverified for the same
    reason share a line (the usual case: a tree that signs nothing)."""
    lines: List[str] = []
    rest = list(items)
    while rest:
        item = rest.pop(0)
        hand = "; its SHA-256 was given by hand" if item.role in pinned else ""
        same = [other for other in rest if other.verdict == item.verdict and
                (other.role in pinned) == (item.role in pinned)]
        if same:
            rest.remove(same[0])
            lines.append(f"Not verified: {item.role} {item.url} and {same[0].role} "
                         f"{same[0].url}: {item.verdict.reason}{hand}")
        else:
            lines.append(item.line() + hand)
    return lines


_WIRE_TEXT = 2048


def _verdict_to_wire(item: FileVerdict) -> Dict[str, object]:
    v = item.verdict
    out: Dict[str, object] = {"role": item.role, "url": item.url, "kind": type(v).__name__}
    if isinstance(v, Verified):
        out.update(fingerprint=v.signer.fingerprint, owner=v.signer.owner, key=v.signer.key,
                   chain=list(v.chain), sha256=v.sha256, note=v.note)
    elif isinstance(v, NoKey):
        out.update(signed=v.signed, key_ids=list(v.key_ids))
    else:
        out["reason"] = v.reason
    return out


def _text(obj: Dict[str, object], key: str) -> str:
    value = obj.get(key)
    if not isinstance(value, str) or len(value) > _WIRE_TEXT:
        raise BootError("the unprivileged helper sent a bad verification report")
    return printable(value, _WIRE_TEXT)


def _texts(obj: Dict[str, object], key: str) -> Tuple[str, ...]:
    value = obj.get(key)
    if not isinstance(value, list) or len(value) > 8:
        raise BootError("the unprivileged helper sent a bad verification report")
    return tuple(_text({"v": item}, "v") for item in value)


def _verdict_from_wire(obj: object) -> FileVerdict:
    if not isinstance(obj, dict) or obj.get("role") not in ("kernel", "ramdisk"):
        raise BootError("the unprivileged helper sent a bad verification report")
    kind = obj.get("kind")
    verdict: Verdict
    if kind == "Verified":
        sha256 = obj.get("sha256")
        if sha256 is not None and not (isinstance(sha256, str) and is_hex_sha256(sha256)):
            raise BootError("the unprivileged helper sent a bad verification report")
        verdict = Verified(Signer(_text(obj, "fingerprint"), _text(obj, "owner"), _text(obj, "key")),
                           _texts(obj, "chain"), sha256.lower() if sha256 else None,
                           _text(obj, "note"))
    elif kind == "NoKey":
        verdict = NoKey(_text(obj, "signed"), _texts(obj, "key_ids"))
    elif kind in ("NoChain", "Failed"):
        verdict = (NoChain if kind == "NoChain" else Failed)(_text(obj, "reason"))
    else:
        raise BootError("the unprivileged helper sent a bad verification report")
    return FileVerdict(str(obj["role"]), _text(obj, "url"), verdict)


def same_for_all(refs: Sequence[Tuple[str, FileRef]], verdict: Verdict) -> Report:
    """One verdict for every file (no chain anywhere, an image's verdict...)."""
    return Report(tuple(FileVerdict(role, ref.url, verdict) for role, ref in refs))


__all__ = ["AUTO", "OFF", "POLICIES", "REQUIRE", "Failed", "FileVerdict", "NoChain", "NoKey",
           "Report", "Signer", "Verdict", "Verified", "parse_policy", "same_for_all", "spaced"]
