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

from .keyrings import KeyringData, read_keyring_trees, read_keyrings
from .model import (AUTO, OFF, POLICIES, REQUIRE, Failed, FileVerdict, NoChain, NoKey, Report,
                    Signer, Verdict, Verified, parse_policy)
from .origin import Origin, location_parts
from .verifier import Verifier, preload

__all__ = [
    "AUTO", "OFF", "POLICIES", "REQUIRE", "Failed", "FileVerdict", "KeyringData", "NoChain",
    "NoKey", "Origin", "Report", "Signer", "Verdict", "Verified", "Verifier", "location_parts",
    "parse_policy", "preload", "read_keyring_trees", "read_keyrings",
]
