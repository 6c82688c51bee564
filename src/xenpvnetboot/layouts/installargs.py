"""Telling an installer where its packages are.

A Fedora/RHEL or SUSE installer booted from a network tree does not know
that tree's URL: without an argument it stops and asks, on a console the
administrator may not be watching.  The location is the answer, so it is
passed on, in the form each installer reads:

* anaconda (Fedora, RHEL and rebuilds): ``inst.repo=`` since Fedora 17 and
  RHEL 7, ``repo=`` in Fedora 9-16 and RHEL 6, ``method=`` before that;
  NFS as ``nfs:host:/path``;
* linuxrc (SUSE): ``install=``, NFS as ``nfs://host/path``.

Only a location the guest can reach itself is passed: http, https, ftp and
NFS.  A local directory, an image file or a TFTP root is not (the installer
then asks, or finds its medium), and neither is a URL with credentials, whose
password is never written anywhere.
"""

from __future__ import annotations

import re
from typing import Optional, Tuple
from urllib.parse import urlsplit

from ..transports import Tree
from .table import LINUXRC
from .treeinfo import major_version

#: Argument names that mean the same thing to one installer.
SYNONYMS: Tuple[Tuple[str, ...], ...] = (("inst.repo", "repo", "method"), ("install",))
_SEPARATOR = re.compile(r"(?:^|\s)---?(?=\s|$)")


def anaconda_option(name: str, version: str) -> str:
    """The installer-source option anaconda of this release reads."""
    major = major_version(version)
    if major is None:
        return "inst.repo"
    if "fedora" in name.lower():
        return "inst.repo" if major >= 17 else "repo" if major >= 9 else "method"
    return "inst.repo" if major >= 7 else "repo" if major == 6 else "method"


def _nfs_parts(url: str) -> Optional[Tuple[str, str]]:
    """(host, path) of ``nfs:[opts:]host:/path`` or ``nfs://host/path``."""
    if url.startswith("nfs://"):
        parts = urlsplit(url)
        return (parts.netloc, parts.path or "/") if parts.netloc else None
    match = re.match(r"^nfs:(?:[^/]*:)?(\[[^\]]+\]|[^:/\[\]]+):(/.*)$", url)
    return (match.group(1), match.group(2)) if match else None


def source_url(tree: Tree, installer: str) -> Optional[str]:
    """The location as *installer* spells it, or None if the guest cannot reach it."""
    if getattr(tree, "rooted", False):
        return None
    url = tree.url("")
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme in ("http", "https", "ftp"):
        return None if "@" in parts.netloc else url
    if scheme == "nfs" or url.startswith("nfs:"):
        nfs = _nfs_parts(url)
        if nfs is None:
            return None
        host, path = nfs
        return f"nfs://{host}{path}" if installer == LINUXRC else f"nfs:{host}:{path}"
    return None


def install_args(tree: Tree, installer: Optional[str], name: str = "", version: str = "") -> str:
    """``inst.repo=<location>`` and the like; '' when nothing should be added."""
    if installer is None:
        return ""
    url = source_url(tree, installer)
    if url is None or any(ch.isspace() for ch in url):
        return ""
    option = "install" if installer == LINUXRC else anaconda_option(name, version)
    return f"{option}={url}"


def _option_names(cmdline: str) -> set:
    return {word.split("=", 1)[0].strip("\"'") for word in cmdline.split()}


def merge(cmdline: str, extra: str) -> str:
    """*cmdline* with the options of *extra* the user has not given already.

    An option counts as given under any of its synonyms (``repo=`` answers
    for ``inst.repo=``).  Added options go before a ``--``/``---``
    separator, whose tail belongs to init or the installed system.
    """
    given = _option_names(cmdline)
    for group in SYNONYMS:
        if given & set(group):
            given |= set(group)
    wanted = [word for word in extra.split() if word.split("=", 1)[0] not in given]
    if not wanted:
        return cmdline
    addition = " ".join(wanted)
    separator = _SEPARATOR.search(cmdline)
    if separator is None:
        return f"{cmdline} {addition}" if cmdline.strip() else addition
    head, tail = cmdline[: separator.start()].rstrip(), cmdline[separator.start():].strip()
    return " ".join(part for part in (head, addition, tail) if part)
