"""Guest architectures: the names users type, and the one each layout uses.

Distributions name the same architecture differently (Debian ``amd64``,
SUSE ``x86_64``, Debian media ``install.amd``), so the command line accepts
the common spellings and the layout table maps one canonical name to each
family's own directory names.  Only what Xen guests run is accepted: 32- and
64-bit x86 and 64-bit Arm.
"""

from __future__ import annotations

import os
import re
from typing import Optional, Tuple

X86_64 = "x86_64"
I686 = "i686"
AARCH64 = "aarch64"
X86 = (X86_64, I686)

#: Every spelling accepted by ``--arch`` (lower case) -> the canonical name.
ALIASES = {
    "x86_64": X86_64,
    "amd64": X86_64,
    "x64": X86_64,
    "i386": I686,
    "i486": I686,
    "i586": I686,
    "i686": I686,
    "x86": I686,
    "aarch64": AARCH64,
    "arm64": AARCH64,
}


def canonical_arch(name: str) -> Optional[str]:
    """The canonical name of *name*, or None for an architecture we do not know."""
    return ALIASES.get(name.strip().lower())


#: A microarchitecture level after an architecture name (``x86_64_v2``), as
#: AlmaLinux 10 and CentOS Stream name their builds for newer CPUs.
_LEVEL = re.compile(r"^(?P<base>.+?)[_-]v\d{1,2}$")


def base_arch(name: str) -> Optional[str]:
    """The canonical architecture of *name*, a level variant (``x86_64_v2``) included."""
    found = canonical_arch(name)
    if found is None:
        match = _LEVEL.match(name.strip().lower())
        if match is not None:
            found = canonical_arch(match.group("base"))
    return found


def host_arch() -> str:
    """The architecture of this host, as the default guest architecture.

    Xen runs on x86 and Arm only; on anything else (a test machine, say)
    x86_64 is the useful default.
    """
    return canonical_arch(os.uname().machine) or X86_64


def arches_to_try(requested: Optional[str]) -> Tuple[str, ...]:
    """Architectures to search, best first.

    An explicit ``--arch`` is the only one tried.  Without it, the host's
    architecture comes first, and on a 64-bit x86 host a 32-bit tree is
    acceptable too, since such a host runs 32-bit PV guests.
    """
    if requested is not None:
        return (requested,)
    host = host_arch()
    return (X86_64, I686) if host == X86_64 else (host,)
