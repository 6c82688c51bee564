"""``.treeinfo``: the install-tree metadata of Fedora, RHEL and their rebuilds.

Two generations exist.  The old one (RHEL 5/6, Fedora up to about 20) has a
``[general]`` section with ``family``, ``version`` and ``arch``; the
productmd one (Fedora 21+, RHEL 7+, CentOS Stream, Rocky, Alma, some SUSE
trees) has ``[header]``, ``[release]`` (``name``, ``version``) and
``[tree]`` (``arch``, ``platforms``), and usually still a ``[general]`` for
old readers.  Both name boot images in ``[images-<platform>]`` sections,
where ``xen`` is the Xen PV platform, and may list ``[checksums]`` as
``path = sha256:<hex>``.

The file comes from the network, so the parser is deliberately forgiving
(it never fails on odd text: a line it does not understand is skipped) and
the interpretation is strict where safety is concerned: a path leaving the
tree refuses the whole file, and a malformed checksum for a file we boot is
an error rather than a skipped check.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Tuple

from ..errors import BootError
from .arch import AARCH64, I686, X86, X86_64, base_arch, canonical_arch
from .text import printable

#: Where the file lives, tried in this order (some mirrors drop the dot).
NAMES = (".treeinfo", "treeinfo")
#: Largest ``.treeinfo`` read; real ones are a few KiB.
MAX_SIZE = 1 << 20
#: ``[images-<name>]`` section names of each architecture, best first.
PLATFORM_NAMES = {
    X86_64: ("x86_64",),
    I686: ("i386", "i686", "i586"),
    AARCH64: ("aarch64",),
}
#: Sections whose presence makes a file a ``.treeinfo`` at all.
_IDENTIFYING = ("general", "tree", "release", "product", "header")
_SHA256 = re.compile(r"[0-9a-f]{64}")
_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:")

Sections = Dict[str, Dict[str, str]]


class TreeInfoError(BootError):
    """A ``.treeinfo`` that cannot be trusted or used."""


def parse_ini(data: bytes) -> Sections:
    """Sections (lower-case names) of key/value pairs; never fails on any input.

    Keys keep their case (``[checksums]`` keys are file paths); a repeated key
    or section merges, later values winning, as configparser would with
    ``strict=False``.  Lines before the first section, comments and lines
    without ``=`` or ``:`` are ignored.
    """
    text = data.decode("utf-8", "replace")
    if text.startswith("\ufeff"):
        text = text[1:]
    sections: Sections = {}
    current: Optional[Dict[str, str]] = None
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line[0] in "#;":
            continue
        if line[0] == "[":
            end = line.find("]")
            name = line[1:end].strip().lower() if end > 0 else ""
            current = sections.setdefault(name, {}) if name else None
            continue
        if current is None:
            continue
        cut = line.find("=")
        if cut < 0:
            cut = line.find(":")
        if cut <= 0:
            continue
        current[line[:cut].strip()] = line[cut + 1:].strip()
    return sections


def _get(section: Optional[Dict[str, str]], key: str) -> str:
    """The value of *key* (any case) in *section*, or ''."""
    if not section:
        return ""
    for name, value in section.items():
        if name.lower() == key:
            return value
    return ""


def _first(sections: Sections, *where: Tuple[str, str]) -> str:
    for section, key in where:
        value = _get(sections.get(section), key)
        if value:
            return value
    return ""


def safe_path(value: str, source: str) -> str:
    """*value* as a clean tree-relative path; refuse anything leaving the tree."""
    bad = (
        value.startswith(("/", "~"))
        or "\\" in value
        or _URL.match(value) is not None
        or any(not ch.isprintable() for ch in value)
        or ".." in value.split("/")
    )
    path = "/".join(part for part in value.split("/") if part not in ("", "."))
    if bad or not path:
        raise TreeInfoError(
            f"{source}: refusing it, it names {printable(value)!r}, "
            "which is not a file inside the tree"
        )
    return path


@dataclass(frozen=True)
class TreeInfo:
    """What a ``.treeinfo`` says, with every path checked."""

    source: str
    name: str = ""
    version: str = ""
    arch: str = ""
    platforms: Tuple[str, ...] = ()
    #: platform -> (kernel, initrd), for sections naming both.
    images: Dict[str, Tuple[str, str]] = field(default_factory=dict)
    #: path -> the checksum as written (``sha256:<hex>``).
    checksums: Dict[str, str] = field(default_factory=dict)

    @property
    def label(self) -> str:
        """e.g. ``Fedora 40 x86_64``, safe to print."""
        parts = (self.name, self.version, self.tree_arch)
        return printable(" ".join(p for p in parts if p)) or "unnamed tree"

    @property
    def is_suse(self) -> bool:
        return "suse" in self.name.lower()

    @property
    def tree_arch(self) -> str:
        """The architecture as written: ``arch``, else the first non-xen platform."""
        if self.arch:
            return self.arch
        return next((p for p in self.platforms if p != "xen"), "")

    def check_arch(self, arches: Tuple[str, ...]) -> None:
        """Refuse a tree built for an architecture the guest cannot run."""
        written = self.tree_arch
        if written and base_arch(written) not in arches:
            raise TreeInfoError(
                f"{self.source}: the tree is for {printable(written, 20)}, not "
                f"{' or '.join(arches)} (choose the guest architecture with --arch)"
            )

    def platform_order(self, arches: Tuple[str, ...]) -> List[str]:
        """``[images-*]`` platforms to try: ``xen`` on x86, then the tree's arch.

        A section named after a level variant of the architecture
        (``[images-x86_64_v2]``) counts as that architecture, after the
        exact name: the plain build runs on every CPU of the architecture.
        """
        written = self.tree_arch.lower()
        tree_arch = base_arch(written) if written else None
        wanted = (tree_arch,) if tree_arch else arches
        order: List[str] = []
        if any(arch in X86 for arch in wanted):
            order.append("xen")
        if written and canonical_arch(written):
            order.append(written)
        for arch in wanted:
            order.extend(PLATFORM_NAMES.get(arch, (arch,)))
        variants = sorted(name for name in self.images if name not in order
                          and not canonical_arch(name) and base_arch(name) in wanted)
        return list(dict.fromkeys(order + ([written] if written else []) + variants))

    def sha256(self, path: str) -> Optional[str]:
        """The SHA-256 listed for *path*, if any; other algorithms are not checked."""
        value = self.checksums.get(path)
        if value is None:
            return None
        algorithm, _, digest = value.partition(":")
        if algorithm.strip().lower() != "sha256":
            return None
        digest = digest.strip().lower()
        if not _SHA256.fullmatch(digest):
            raise TreeInfoError(f"{self.source}: malformed SHA-256 checksum for {path}")
        return digest


def _images(sections: Sections, source: str) -> Dict[str, Tuple[str, str]]:
    images: Dict[str, Tuple[str, str]] = {}
    for name, section in sections.items():
        if not name.startswith("images-"):
            continue
        paths = {key.lower(): safe_path(value, source) for key, value in section.items() if value}
        if "kernel" in paths and "initrd" in paths:
            images[name[len("images-"):]] = (paths["kernel"], paths["initrd"])
    return images


def _checksums(sections: Sections, source: str) -> Dict[str, str]:
    return {safe_path(key, source): value for key, value in sections.get("checksums", {}).items()}


def _split_list(value: str) -> Tuple[str, ...]:
    return tuple(item for item in re.split(r"[\s,]+", value.lower()) if item)


def load(data: bytes, source: str) -> Optional[TreeInfo]:
    """Interpret *data*; None if it is no ``.treeinfo`` at all (an error page, say).

    Raises :class:`TreeInfoError` for a file naming paths outside the tree.
    """
    sections = parse_ini(data)
    if not any(name in sections for name in _IDENTIFYING) and not any(
        name.startswith("images-") for name in sections
    ):
        return None
    for value in sections.get("stage2", {}).values():
        if value:
            safe_path(value, source)
    return TreeInfo(
        source=source,
        name=_first(sections, ("release", "name"), ("product", "name"), ("general", "family"),
                    ("general", "name")),
        version=_first(sections, ("release", "version"), ("product", "version"),
                       ("general", "version")),
        arch=_first(sections, ("tree", "arch"), ("general", "arch")),
        platforms=_split_list(_first(sections, ("tree", "platforms"), ("general", "platforms"))),
        images=_images(sections, source),
        checksums=_checksums(sections, source),
    )


def major_version(version: str) -> Optional[int]:
    """The leading number of a version string (``6.10`` -> 6), if any."""
    match = re.match(r"\s*(\d{1,6})", version)
    return int(match.group(1)) if match else None


__all__ = ["MAX_SIZE", "NAMES", "TreeInfo", "TreeInfoError", "load", "major_version",
           "parse_ini", "safe_path"]
