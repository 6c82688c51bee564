"""The host's servers for the scenarios, on 127.0.0.1 (10.0.2.2 from dom0).

QEMU's user-mode network connects dom0's 10.0.2.2:PORT to the host's
127.0.0.1:PORT, and its built-in TFTP server answers on 10.0.2.2:69.  The
HTTP server is the test suite's own (support/http_server.py: ranges, HEAD,
faults), serving the guest media; under ``/stall/`` the kernel stalls after
a few bytes, for the timeout scenario.  NFS is nfs-ganesha (NFSv4 only, so
no rpcbind), exporting the same tree as ``/srv``.
"""

from __future__ import annotations

import os
from contextlib import ExitStack
from typing import Dict, Optional

from support import nfs_server
from support.http_server import TestHTTPServer

from .media import Media
from .scenarios import NETBOOT_XEN, RESTRICT_USER
from .steps import Missing

#: The host as dom0 sees it through QEMU's user-mode network.
HOST = "10.0.2.2"
NFS_PSEUDO = "/srv"
#: Where the runner copies the ISO inside dom0, and where the harness's bootloaders are.
DOM0_ISO = "/var/lib/xen/iso/debian-12-netboot.iso"
DOM0_BIN = "/job/dom0/bin"
#: The job's test data in dom0 (scenarios.DATA and the media's keyring).
DOM0_DATA = "/job/data"
DOM0_PROBES = "/job/out/probes"


def nfs_unavailable() -> Optional[str]:
    """Why the NFS server cannot run here, or None."""
    if os.geteuid() != 0:
        return "nfs-ganesha needs root"
    for program, package in (("ganesha.nfsd", "nfs-ganesha"),):
        if not any(os.access(os.path.join(d, program), os.X_OK)
                   for d in ("/usr/bin", "/usr/sbin", "/bin", "/sbin")):
            return f"needs {program} (Debian package {package})"
    if not os.path.exists(nfs_server.FSAL_VFS):
        return "needs the Debian package nfs-ganesha-vfs"
    return None


class Servers:
    """Started for one run; :meth:`hosts` fills the scenarios' placeholders."""

    def __init__(self, media: Media, workdir: str, want_nfs: bool) -> None:
        self.stack = ExitStack()
        self.http = TestHTTPServer(media.www)
        self.http.faults[f"/stall/{NETBOOT_XEN}/vmlinuz"] = "stall"
        self.nfs: Optional[nfs_server.GaneshaServer] = None
        self.nfs_missing = nfs_unavailable() if want_nfs else "not wanted"
        self.media = media
        self.workdir = workdir
        self.want_nfs = want_nfs

    def __enter__(self) -> "Servers":
        self.http.start()
        self.stack.callback(self.http.stop)
        if self.want_nfs and self.nfs_missing is None:
            nfs_dir = os.path.join(self.workdir, "nfs")
            os.makedirs(nfs_dir, exist_ok=True)
            export = nfs_server.Export(path=self.media.www, pseudo=NFS_PSEUDO, protocols="4")
            try:
                self.nfs = nfs_server.GaneshaServer(nfs_dir, [export], protocols="4").start()
            except RuntimeError as exc:  # did not start: its scenarios are skipped with this
                self.nfs_missing = " ".join(str(exc).split())[:300]
            else:
                self.stack.callback(self.nfs.stop)
        return self

    def __exit__(self, *exc: object) -> None:
        self.stack.close()

    def hosts(self) -> Dict[str, str]:
        hosts = {
            "http": f"http://{HOST}:{self.http.port}",
            "tftp": f"tftp://{HOST}",
            "iso": DOM0_ISO,
            "bin": DOM0_BIN,
            "data": DOM0_DATA,
            "signer": self.media.signer,
            "probe": DOM0_PROBES,
            "user": RESTRICT_USER,
        }
        if self.nfs is not None:
            port = "" if self.nfs.port == nfs_server.NFS_PORT else f"port={self.nfs.port}:"
            hosts["nfs"] = f"{port}{HOST}:{NFS_PSEUDO}"
        return hosts

    def missing(self, piece: str) -> Optional[str]:
        """Why a scenario needing *piece* cannot run, or None."""
        if piece == "nfs":
            return None if self.nfs is not None else f"no NFS server: {self.nfs_missing}"
        raise Missing(f"unknown piece {piece!r}")
