"""Kernel arguments that make an installer use an injected answer file.

Three names are answer files by convention, each of one installer:

* ``ks.cfg``, a kickstart for anaconda (Fedora, RHEL and rebuilds):
  ``inst.ks=file:/ks.cfg`` (``ks=file:/ks.cfg`` before Fedora 17 and RHEL 7);
* ``preseed.cfg`` for debian-installer (Debian, Ubuntu up to 20.04), which
  loads ``/preseed.cfg`` from its initrd by itself: ``auto=true
  priority=critical`` only makes it ask nothing the file does not answer;
* ``autoinst.xml``, an AutoYaST profile for SUSE's linuxrc:
  ``autoyast=file:///autoinst.xml``.

Every other name is only injected.  The arguments of a name are added
unless the tree is known to be installed by another installer: a tree
whose installer was not recognised (an explicit kernel, a Debian tree,
which the layout table does not tag yet) still gets them, since each name
is specific to its installer and an argument another installer does not
know is ignored by it.  An argument the user gave, under any of its
names, is never added again (``debconf/priority=high`` keeps d-i at its
own priority).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, List, Optional, Tuple

from ..layouts.table import ANACONDA, LINUXRC

#: debian-installer; ``layouts/table.py`` tags no family with it yet.
DEBIAN_INSTALLER = "debian-installer"


@dataclass(frozen=True)
class Argument:
    """One argument to add, and the option names that mean the user set it already."""

    word: str
    given_as: Tuple[str, ...]


@dataclass(frozen=True)
class AnswerName:
    """A file name an installer reads as its answer file."""

    name: str
    installer: str
    arguments: Tuple[Argument, ...]
    #: Replaces the arguments for anaconda before Fedora 17 / RHEL 7.
    legacy: Tuple[Argument, ...] = ()


_KICKSTART = ("inst.ks", "ks")
KNOWN: Tuple[AnswerName, ...] = (
    AnswerName("ks.cfg", ANACONDA, (Argument("inst.ks=file:/ks.cfg", _KICKSTART),),
               legacy=(Argument("ks=file:/ks.cfg", _KICKSTART),)),
    AnswerName("preseed.cfg", DEBIAN_INSTALLER, (
        Argument("auto=true", ("auto", "auto-install/enable")),
        Argument("priority=critical", ("priority", "debconf/priority")),
    )),
    AnswerName("autoinst.xml", LINUXRC,
               (Argument("autoyast=file:///autoinst.xml", ("autoyast", "autoyast2")),)),
)


def _given(cmdline: str) -> set:
    """Option names on *cmdline* (``name=value`` or a bare ``name``), quotes dropped."""
    return {word.split("=", 1)[0].strip("\"'") for word in cmdline.split()}


def answer_args(names: Iterable[str], installer: Optional[str], cmdline: str,
                legacy_anaconda: bool = False) -> str:
    """The arguments to add for the injected *names*; '' when none.

    *installer* is the tree's (``ANACONDA``, ``LINUXRC``,
    ``DEBIAN_INSTALLER``) or None when unknown; *cmdline* is what the user
    gave (``--args``); *legacy_anaconda* asks for the ``ks=`` spelling.
    The result goes after the menu's and the installer-source arguments,
    before the user's.
    """
    wanted = set(names)
    given = _given(cmdline)
    words: List[str] = []
    for known in KNOWN:
        if known.name not in wanted or installer not in (None, known.installer):
            continue
        arguments = known.legacy if legacy_anaconda and known.legacy else known.arguments
        for argument in arguments:
            if not given & set(argument.given_as) and argument.word not in words:
                words.append(argument.word)
    return " ".join(words)
