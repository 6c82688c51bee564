"""A real NFS server (nfs-ganesha, FSAL VFS) on loopback for the NFS tests.

One server speaks NFSv3, v4.0 and v4.1 on 127.0.0.1; NFSv3 needs rpcbind
(ganesha's registration fails without it), so rpcbind is started too unless
one already answers on port 111, in which case it is left alone.  Further
NFSv4-only servers (on ::1, limited to 4.0, short-lived) can run beside it:
being v4-only, they never touch the NFSv3 registrations of the first one.

Both daemons run in the foreground with their output in files (a captured
pipe that nobody reads would block them), and are stopped by process id.
Programs run from argument lists, never through a shell.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from typing import List, Optional, Sequence

import pytest

from .env import need_program, need_root

#: Where Debian's nfs-ganesha-vfs package puts the VFS backend.
FSAL_VFS = "/usr/lib/x86_64-linux-gnu/ganesha/libfsalvfs.so"
NFS_PORT = 2049
RPCBIND_PORT = 111
READY_TIMEOUT = 15.0


@dataclass
class Export:
    """One EXPORT block: a directory served under a pseudo path."""

    path: str
    pseudo: str
    protocols: str = "3, 4"
    squash: str = "No_Root_Squash"


def port_is_free(host: str, port: int) -> bool:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def free_port(host: str = "127.0.0.1") -> int:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def tail(path: str) -> str:
    """The end of a log file, for the message of a server that did not start."""
    try:
        with open(path, "rb") as handle:
            return handle.read()[-3000:].decode(errors="replace")
    except OSError:
        return ""


def answers(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def need_ganesha() -> None:
    """Skip unless ganesha, its VFS backend, rpcbind and root are all here."""
    need_root()
    need_program("ganesha.nfsd", "nfs-ganesha")
    need_program("rpcbind", "rpcbind")
    if not os.path.exists(FSAL_VFS):
        pytest.skip("needs the Debian package nfs-ganesha-vfs")
    pytest.importorskip("nfs_rs", reason="needs the Python package nfs-rs")


class Daemon:
    """A foreground daemon whose output goes to a file, stopped by pid."""

    def __init__(self, argv: Sequence[str], log: str) -> None:
        self.name = os.path.basename(argv[0])
        self.log = log
        with open(log, "ab") as out:
            self.process = subprocess.Popen(
                list(argv), stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT
            )

    def alive(self) -> bool:
        return self.process.poll() is None

    def wait_listening(self, host: str, ports: Sequence[int], logs: Sequence[str] = ()) -> None:
        """Return once every port answers; stop the daemon and raise if it dies first."""
        deadline = time.monotonic() + READY_TIMEOUT
        while not all(answers(host, port) for port in ports):
            if not self.alive() or time.monotonic() > deadline:
                text = "".join(tail(path) for path in (*logs, self.log))
                self.stop()
                raise RuntimeError(f"{self.name} did not start:\n{text}")
            time.sleep(0.02)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


class Rpcbind:
    """rpcbind on port 111, started only if none answers there already."""

    def __init__(self, workdir: str) -> None:
        self.daemon: Optional[Daemon] = None
        if answers("127.0.0.1", RPCBIND_PORT):
            return
        # Not "-h 127.0.0.1": Debian 12's rpcbind dies of a double free with it.
        self.daemon = Daemon([need_program("rpcbind", "rpcbind"), "-f"],
                             os.path.join(workdir, "rpcbind.log"))
        self.daemon.wait_listening("127.0.0.1", [RPCBIND_PORT])

    def stop(self) -> None:
        if self.daemon is not None:
            self.daemon.stop()
            self.daemon = None


@dataclass
class GaneshaServer:
    """One ganesha.nfsd serving *exports* on *address*.

    ``protocols`` is the NFS_CORE_PARAM list ("3, 4" or "4"); ``minor``
    limits the NFSv4 minor versions (e.g. "0").  The port is 2049 when free,
    else any free one (then locations need ``port=``, see :meth:`spec`).
    """

    workdir: str
    exports: List[Export]
    address: str = "127.0.0.1"
    protocols: str = "3, 4"
    minor: Optional[str] = None
    port: int = 0
    mount_port: int = 0
    daemon: Optional[Daemon] = field(default=None, repr=False)

    @property
    def host(self) -> str:
        """The host part of a location: IPv6 in brackets."""
        return f"[{self.address}]" if ":" in self.address else self.address

    def spec(self, path: str, **options: object) -> str:
        """``[OPTIONS:]HOST:/PATH`` for this server (what follows ``nfs:``)."""
        items = dict(options)
        if self.port != NFS_PORT:
            items.setdefault("port", self.port)
        prefix = ",".join(f"{key}={value}" for key, value in items.items())
        return f"{prefix + ':' if prefix else ''}{self.host}:{path}"

    def config(self) -> str:
        core = [
            f"Protocols = {self.protocols};",
            "Enable_NLM = false;",
            "Enable_RQUOTA = false;",
            "mount_path_pseudo = true;",
            f"Bind_addr = {self.address};",
            f"NFS_Port = {self.port};",
        ]
        if "3" in self.protocols:
            core.append(f"MNT_Port = {self.mount_port};")
        v4 = ["Graceless = true;", f"RecoveryRoot = {os.path.join(self.workdir, 'recovery')};"]
        if self.minor is not None:
            v4.append(f"Minor_Versions = {self.minor};")
        blocks = [
            "NFS_CORE_PARAM {\n    " + "\n    ".join(core) + "\n}",
            "NFSv4 {\n    " + "\n    ".join(v4) + "\n}",
            "NFS_KRB5 {\n    Active_krb5 = false;\n}",
        ]
        for number, export in enumerate(self.exports, 1):
            blocks.append(
                "EXPORT {\n"
                f"    Export_Id = {number};\n"
                f"    Path = {export.path};\n"
                f"    Pseudo = {export.pseudo};\n"
                "    Access_Type = RO;\n"
                f"    Squash = {export.squash};\n"
                "    Anonymous_Uid = 65534;\n"
                "    Anonymous_Gid = 65534;\n"
                "    Transports = TCP;\n"
                f"    Protocols = {export.protocols};\n"
                "    SecType = sys;\n"
                "    FSAL { Name = VFS; }\n"
                "}"
            )
        return "\n".join(blocks) + "\n"

    def start(self) -> "GaneshaServer":
        os.makedirs(os.path.join(self.workdir, "recovery"), exist_ok=True)
        if not self.port:
            self.port = NFS_PORT if port_is_free(self.address, NFS_PORT) else free_port(self.address)
        if "3" in self.protocols and not self.mount_port:
            self.mount_port = free_port(self.address)
        conf = os.path.join(self.workdir, "ganesha.conf")
        with open(conf, "w") as handle:
            handle.write(self.config())
        argv = [
            need_program("ganesha.nfsd", "nfs-ganesha"), "-F",
            "-L", os.path.join(self.workdir, "ganesha.log"),
            "-f", conf,
            "-p", os.path.join(self.workdir, "ganesha.pid"),
        ]
        self.daemon = Daemon(argv, os.path.join(self.workdir, "ganesha.out"))
        ports = [self.port] + ([self.mount_port] if self.mount_port else [])
        self.daemon.wait_listening(self.address, ports, [os.path.join(self.workdir, "ganesha.log")])
        return self

    def stop(self) -> None:
        if self.daemon is not None:
            self.daemon.stop()
            self.daemon = None


def make_export_dir(path: str) -> str:
    """A directory the server may serve (and squashed users may enter)."""
    os.makedirs(path, exist_ok=True)
    os.chmod(path, 0o755)
    return path
