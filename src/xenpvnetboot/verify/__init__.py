"""Know who published it: follow the distributions' signature chains to the files.

``.treeinfo`` checksums come from the same server as the files; they catch
corruption, not a hostile mirror nor a man in the middle of plain http.  This
package follows what the distributions *sign* down to the kernel and ramdisk,
with keys installed on this host only:

* Debian and Ubuntu mirrors: ``dists/<suite>/InRelease`` (or ``Release`` +
  ``Release.gpg``) -> the installer's ``SHA256SUMS`` -> each netboot file
  (:mod:`.debian`);
* images: a clearsigned ``CHECKSUM`` or a ``SHA256SUMS`` with its detached
  signature beside the ISO, or a signature over the ISO itself
  (:mod:`.images`);
* ``.treeinfo`` trees: nothing is signed; the verdict says so.

A verified file's expected SHA-256 goes into ``FileRef.sha256``, which the
boot's ``Sink`` checks while the file streams in: nothing is downloaded
twice.  The OpenPGP library (pysequoia) is imported on the first check only.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .keyrings import KeyringData, read_keyring_trees, read_keyrings
    from .model import (AUTO, OFF, POLICIES, REQUIRE, Failed, FileVerdict, NoChain, NoKey, Report,
                        Signer, Verdict, Verified, parse_policy)
    from .origin import Origin, location_parts
    from .verifier import Verifier, preload

#: Where each name lives.  The names are loaded on first use (PEP 562): the
#: root parent reads the keyrings with :mod:`.keyrings` alone, and must not
#: pay for the parsers and chains, which only the worker runs.
_HOMES = {
    "keyrings": ("KeyringData", "read_keyring_trees", "read_keyrings"),
    "model": ("AUTO", "OFF", "POLICIES", "REQUIRE", "Failed", "FileVerdict", "NoChain", "NoKey",
              "Report", "Signer", "Verdict", "Verified", "parse_policy"),
    "origin": ("Origin", "location_parts"),
    "verifier": ("Verifier", "preload"),
}
_HOME_OF = {name: module for module, names in _HOMES.items() for name in names}


def __getattr__(name: str) -> Any:
    module = _HOME_OF.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


__all__ = sorted(_HOME_OF)
