"""NFS locations, read in userspace: nothing is mounted, no kernel client needed.

Location forms (the first two are those of the original tool)::

    nfs:HOST:/PATH                  a directory tree on an NFS export
    nfs+iso:HOST:/PATH/IMAGE        an ISO or filesystem image on an export,
                                    read in place by offset
    nfs:OPTIONS:HOST:/PATH          either of the above with options,
    nfs+iso:OPTIONS:HOST:/PATH      as in Anaconda's ``inst.repo=nfs:...``

``HOST`` is a host name, an IPv4 address or a bracketed IPv6 address
(``nfs:[::1]:/srv/install``).  ``OPTIONS`` is a comma-separated list of
``key=value`` items, told from a host name by its ``=`` (host names never
contain one):

``vers=3``, ``vers=4``, ``vers=4.0``, ``vers=4.1`` (or ``nfsvers=``)
    Use only this NFS version (``4``: 4.1, else 4.0).  Without it the
    versions are negotiated as ``mount -t nfs`` does: 4.1, then 4.0, then 3.
``port=N``
    The NFS service port (default 2049; NFSv3 asks rpcbind when absent).
``mountport=N``
    The NFSv3 MOUNT service port (default: ask rpcbind on port 111).

Example: ``nfs:vers=3,port=2050:[fd00::1]:/srv/install``.

NFSv4 paths are walked from the server's root (pseudo) filesystem, following
symlinks in the location path the way a mount does.  NFSv3 mounts the
location directory itself through the MOUNT protocol (nfs-rs cannot do
NFSv3 over IPv6, so such locations use NFSv4 only).  Below the location,
symlinks are resolved here, one component at a time, and may not lead out
of it: neither ``..`` nor a link reaches other files of the server, and
absolute link targets (which name files of whatever host mounts the
export) are refused.

Connecting, all versions together, takes at most ``--timeout`` seconds, and
so does each later call; its error names the server, the path and what each
version answered.  A missing file is :class:`NotFound`; a server that went
silent or away mid-session is :class:`TransientError`.

The client library, ``nfs-rs`` (Python >= 3.11, Linux x86_64), is imported
only when an NFS location is used.
"""

from .client import Connection, Entry
from .connect import connect
from .library import describe_error, preload
from .spec import DEFAULT_VERSIONS, VERSION_CHOICES, NfsSpec, parse_spec, split_path
from .tree import BLOCK, NfsSource, NfsTree, open_nfs
from .walk import resolve

__all__ = [
    "BLOCK", "Connection", "DEFAULT_VERSIONS", "Entry", "NfsSource", "NfsSpec", "NfsTree",
    "VERSION_CHOICES", "connect", "describe_error", "open_nfs", "parse_spec", "preload", "resolve",
    "split_path",
]
