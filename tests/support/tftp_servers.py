"""Real TFTP servers, a lossy UDP proxy, network namespaces and a scripted
server, for the TFTP tests and the benchmark.

Servers listen on free ports of 127.0.0.1 (or inside namespaces the tests
create), are started without a shell, and are always stopped: every helper
here is a context manager or a fixture with a teardown.

tftpd-hpa (Debian package ``tftpd-hpa``) needs root.  atftpd (Debian package
``atftpd``) conflicts with tftpd-hpa, so it is unpacked privately; its binary
is found through ``$XENPVNETBOOT_ATFTPD`` or at :data:`ATFTPD_DEFAULT`.

Run as a script (``python3 tftp_servers.py fetch URL OUTPUT``) it fetches one
file with the project's client and prints the transfer statistics as JSON:
that is how a test runs the client inside another network namespace.
"""

from __future__ import annotations

import contextlib
import dataclasses
import itertools
import json
import os
import random
import selectors
import socket
import subprocess
import sys
import threading
import time
from typing import Callable, Dict, Iterator, List, Optional, Sequence, Tuple
from urllib.parse import urlsplit

import pytest

from xenpvnetboot.errors import XenPVNetBootError
from xenpvnetboot.transports import TransportOptions, tftp
from xenpvnetboot.transports.base import Sink

ATFTPD_ENV = "XENPVNETBOOT_ATFTPD"
#: Where .ci/run unpacks the atftpd package (dpkg -x atftpd_*.deb /opt/atftpd).
ATFTPD_DEFAULT = "/opt/atftpd/usr/sbin/atftpd"
TFTPD_HPA = "/usr/sbin/in.tftpd"
TESTS_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SRC_DIR = os.path.join(os.path.dirname(TESTS_DIR), "src")

Address = Tuple[str, int]


def free_udp_port(host: str = "127.0.0.1") -> int:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_DGRAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def wait_for_tftp(host: str, port: int, timeout: float = 5.0) -> None:
    """Return once a TFTP server answers at host:port (any answer will do)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    probe = tftp.encode_request("xenpvnetboot-readiness-probe")
    deadline = time.monotonic() + timeout
    with socket.socket(family, socket.SOCK_DGRAM) as sock:
        sock.settimeout(0.05)
        while time.monotonic() < deadline:
            sock.sendto(probe, (host, port))
            try:
                sock.recvfrom(2048)
                return
            except OSError:
                continue
    raise RuntimeError(f"no TFTP server answered on {host} port {port} within {timeout} s")


def atftpd_path() -> Optional[str]:
    path = os.environ.get(ATFTPD_ENV) or ATFTPD_DEFAULT
    return path if os.path.isfile(path) and os.access(path, os.X_OK) else None


@dataclasses.dataclass
class ServerProcess:
    """A TFTP server started by a test; :meth:`stop` is safe to call twice."""

    process: subprocess.Popen
    host: str
    port: int
    root: str

    def url(self, path: str = "") -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"tftp://{host}:{self.port}/{path}"

    def stop(self) -> None:
        """SIGTERM, and SIGKILL soon after: atftpd lingers a second in select()."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=0.3)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=5)


def _start(argv: List[str], host: str, port: int, root: str,
           prefix: Sequence[str] = ()) -> ServerProcess:
    process = subprocess.Popen(
        list(prefix) + argv,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    server = ServerProcess(process, host, port, root)
    if not prefix:
        try:
            wait_for_tftp(host, port)
        except BaseException:
            server.stop()
            raise
    return server


def tftpd_hpa_argv(root: str, host: str, port: int, extra: Sequence[str] = ()) -> List[str]:
    address = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    return [TFTPD_HPA, "-L", "-a", address, "-s", root, "-u", "root", *extra]


def atftpd_argv(binary: str, root: str, host: str, port: int, extra: Sequence[str] = ()) -> List[str]:
    argv = [binary, "--daemon", "--no-fork", "--port", str(port), "--bind-address", host]
    if os.geteuid() == 0:
        argv += ["--user", "root", "--group", "root"]
    return argv + ["--logfile", "/dev/null", *extra, root]


def start_tftpd_hpa(root: str, host: str = "127.0.0.1", extra: Sequence[str] = ()) -> ServerProcess:
    port = free_udp_port(host)
    return _start(tftpd_hpa_argv(root, host, port, extra), host, port, root)


def start_atftpd(binary: str, root: str, host: str = "127.0.0.1",
                 extra: Sequence[str] = ()) -> ServerProcess:
    port = free_udp_port(host)
    return _start(atftpd_argv(binary, root, host, port, extra), host, port, root)


def need_tftpd_hpa() -> None:
    from .env import need_root

    need_root()
    if not os.path.isfile(TFTPD_HPA):
        pytest.skip("needs in.tftpd (Debian package tftpd-hpa)")


def need_atftpd() -> str:
    binary = atftpd_path()
    if binary is None:
        pytest.skip(
            f"needs atftpd: unpack the Debian package atftpd into /opt/atftpd "
            f"(apt-get download atftpd; dpkg -x atftpd_*.deb /opt/atftpd) or set {ATFTPD_ENV}"
        )
    return binary  # type: ignore[return-value]


@pytest.fixture
def tftpd_hpa() -> Iterator[Callable[..., ServerProcess]]:
    """Factory: ``tftpd_hpa(root, extra_args)`` starts tftpd-hpa on loopback."""
    need_tftpd_hpa()
    servers: List[ServerProcess] = []

    def start(root: str, extra: Sequence[str] = (), host: str = "127.0.0.1") -> ServerProcess:
        server = start_tftpd_hpa(str(root), host, extra)
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


@pytest.fixture
def atftpd() -> Iterator[Callable[..., ServerProcess]]:
    """Factory: ``atftpd(root, extra_args)`` starts atftpd on loopback."""
    binary = need_atftpd()
    servers: List[ServerProcess] = []

    def start(root: str, extra: Sequence[str] = (), host: str = "127.0.0.1") -> ServerProcess:
        server = start_atftpd(binary, str(root), host, extra)
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


# --- a lossy UDP proxy --------------------------------------------------------------


class _Background:
    """A helper serving from a daemon thread; leaving the ``with`` stops it."""

    _thread: threading.Thread

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        raise NotImplementedError


class LossyProxy(_Background):
    """Forwards TFTP between a client and a server, dropping packets at random.

    The proxy keeps TFTP's transfer IDs apart: each port the server answers
    from gets its own client-facing port, so the client still sees one port
    per transfer.  Drops use a private seeded generator, so a test sees the
    same losses every run.  :meth:`blackhole` makes it forward nothing more,
    which to the client looks like a server that stopped mid-file.
    """

    def __init__(
        self,
        upstream: Address,
        loss: float = 0.0,
        seed: int = 1,
        host: str = "127.0.0.1",
        stop_after: Optional[int] = None,
    ) -> None:
        self.upstream = upstream
        self.loss = loss
        self.host = host
        self.stop_after = stop_after
        self.rng = random.Random(seed)
        self.selector = selectors.DefaultSelector()
        self.listener = self._socket()
        self.port = self.listener.getsockname()[1]
        self.forwarded = 0
        self.dropped = 0
        self._blackhole = threading.Event()
        self._stop = threading.Event()
        self._up: Dict[Address, socket.socket] = {}
        self._down: Dict[Tuple[Address, Address], socket.socket] = {}
        self._routes: Dict[socket.socket, Tuple[str, object]] = {self.listener: ("listen", None)}
        self.selector.register(self.listener, selectors.EVENT_READ)
        self._thread = threading.Thread(target=self._run, name="lossy-proxy", daemon=True)

    def _socket(self) -> socket.socket:
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.bind((self.host, 0))
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 21)
        sock.setblocking(False)
        return sock

    def url(self, path: str = "") -> str:
        return f"tftp://{self.host}:{self.port}/{path}"

    def blackhole(self) -> None:
        self._blackhole.set()

    def close(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)
        for sock in list(self._routes):
            self.selector.unregister(sock)
            sock.close()
        self.selector.close()

    def _pass(self) -> bool:
        if self._blackhole.is_set():
            return False
        if self.stop_after is not None and self.forwarded >= self.stop_after:
            self._blackhole.set()
            return False
        if self.rng.random() < self.loss:
            self.dropped += 1
            return False
        self.forwarded += 1
        return True

    def _add(self, sock: socket.socket, route: Tuple[str, object]) -> socket.socket:
        self._routes[sock] = route
        self.selector.register(sock, selectors.EVENT_READ)
        return sock

    def _upstream_for(self, client: Address) -> socket.socket:
        sock = self._up.get(client)
        if sock is None:
            sock = self._up[client] = self._add(self._socket(), ("up", client))
        return sock

    def _downstream_for(self, client: Address, tid: Address) -> socket.socket:
        sock = self._down.get((client, tid))
        if sock is None:
            sock = self._down[(client, tid)] = self._add(self._socket(), ("down", (client, tid)))
        return sock

    def _forward(self, sock: socket.socket, data: bytes, source: Address) -> None:
        kind, info = self._routes[sock]
        if kind == "listen":
            target, out = self.upstream, self._upstream_for(source)
        elif kind == "up":
            client = info  # type: ignore[assignment]
            target, out = client, self._downstream_for(client, source)  # type: ignore[arg-type]
        else:
            client, tid = info  # type: ignore[misc]
            if source != client:
                return
            target, out = tid, self._upstream_for(client)
        if self._pass():
            with contextlib.suppress(OSError):
                out.sendto(data, target)

    def _run(self) -> None:
        while not self._stop.is_set():
            for key, _ in self.selector.select(timeout=0.05):
                sock = key.fileobj
                for _ in range(64):
                    try:
                        data, source = sock.recvfrom(70000)  # type: ignore[union-attr]
                    except OSError:
                        break
                    self._forward(sock, data, source)  # type: ignore[arg-type]


# --- network namespaces with real frame loss ------------------------------------------


_namespace_counter = itertools.count()


class LossyLink:
    """Two network namespaces joined by a veth pair that drops frames.

    An nftables ``netdev`` ingress chain on each end drops ``per_mille``
    frames in a thousand at random: loss on a real Ethernet-sized link (MTU
    1500), where a block larger than a frame is fragmented and dies with any
    one of its fragments.  Addresses are from the benchmarking range
    198.18.0.0/15 and exist only inside the two namespaces.
    """

    SERVER_ADDR = "198.18.0.1"
    CLIENT_ADDR = "198.18.0.2"

    def __init__(self, per_mille: int = 10, mtu: int = 1500) -> None:
        tag = f"{os.getpid() % 100000}-{next(_namespace_counter)}"
        self.server_ns = f"xpnb-s{tag}"
        self.client_ns = f"xpnb-c{tag}"
        short = f"{os.getpid() % 10000}{next(_namespace_counter)}"
        self.server_if = f"xps{short}"[:15]
        self.client_if = f"xpc{short}"[:15]
        self.per_mille = per_mille
        self.mtu = mtu
        self._created: List[str] = []

    @staticmethod
    def _run(argv: List[str], stdin: Optional[str] = None) -> None:
        subprocess.run(argv, input=stdin, text=True, check=True, timeout=20,
                       stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

    def exec_argv(self, namespace: str, argv: Sequence[str]) -> List[str]:
        return ["ip", "netns", "exec", namespace, *argv]

    def _loss_rules(self, device: str) -> str:
        return (
            "table netdev xpnbloss {\n"
            f"  chain ingress {{ type filter hook ingress device \"{device}\" priority 0;\n"
            "    policy accept;\n"
            f"    numgen random mod 1000 < {self.per_mille} drop\n"
            "  }\n}\n"
        )

    def __enter__(self) -> "LossyLink":
        try:
            self._setup()
        except BaseException:
            self.close()
            raise
        return self

    def _setup(self) -> None:
        for namespace in (self.server_ns, self.client_ns):
            self._run(["ip", "netns", "add", namespace])
            self._created.append(namespace)
        self._run(["ip", "link", "add", self.server_if, "netns", self.server_ns, "type", "veth",
                   "peer", "name", self.client_if, "netns", self.client_ns])
        ends = ((self.server_ns, self.server_if, self.SERVER_ADDR),
                (self.client_ns, self.client_if, self.CLIENT_ADDR))
        for namespace, device, address in ends:
            self._run(["ip", "-n", namespace, "link", "set", "lo", "up"])
            self._run(["ip", "-n", namespace, "link", "set", device, "mtu", str(self.mtu), "up"])
            self._run(["ip", "-n", namespace, "addr", "add", f"{address}/30", "dev", device])
            if self.per_mille:
                self._run(self.exec_argv(namespace, ["nft", "-f", "-"]), stdin=self._loss_rules(device))

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        while self._created:
            namespace = self._created.pop()
            subprocess.run(["ip", "netns", "del", namespace], timeout=20,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def need_namespaces() -> None:
    from .env import need_program, need_root

    need_root()
    need_program("ip", "iproute2")
    need_program("nft", "nftables")


# --- a scripted server for protocol corner cases ------------------------------------


class ScriptedServer(_Background):
    """A fake TFTP server whose answers a test writes as a function.

    For each read request, ``script(session)`` runs in the server thread;
    the session sends from a fresh transfer port, can send from a second
    port (a stray transfer ID) and records every packet the client sent.
    An exception in the script is raised again by :meth:`close`.
    """

    def __init__(self, script: Callable[["ScriptedSession"], None], host: str = "127.0.0.1") -> None:
        self.script = script
        self.host = host
        self.listener = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.listener.bind((host, 0))
        self.listener.settimeout(0.05)
        self.port = self.listener.getsockname()[1]
        self.sessions: List[ScriptedSession] = []
        self.error: Optional[BaseException] = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="scripted-tftp", daemon=True)

    def url(self, path: str = "") -> str:
        return f"tftp://{self.host}:{self.port}/{path}"

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
        self.listener.close()
        for session in self.sessions:
            session.close()
        if self.error is not None:
            raise self.error

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                data, client = self.listener.recvfrom(70000)
            except OSError:
                continue
            session = ScriptedSession(self.host, client, data, self._stop)
            self.sessions.append(session)
            try:
                self.script(session)
            except BaseException as exc:  # reported by close()
                self.error = exc
                return


class ScriptedSession:
    """One transfer of a :class:`ScriptedServer`."""

    def __init__(self, host: str, client: Address, request: bytes, stop: threading.Event) -> None:
        self.client = client
        self.request = request
        self.received: List[bytes] = []
        self.stray_received: List[bytes] = []
        self._stop = stop
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((host, 0))
        self.stray = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.stray.bind((host, 0))
        self.stray.settimeout(0.5)

    def send(self, packet: bytes) -> None:
        self.sock.sendto(packet, self.client)

    def send_stray(self, packet: bytes) -> bytes:
        """Send from another port and return the client's answer to it."""
        self.stray.sendto(packet, self.client)
        answer, _ = self.stray.recvfrom(70000)
        self.stray_received.append(answer)
        return answer

    def recv(self, timeout: float = 2.0) -> Optional[bytes]:
        self.sock.settimeout(timeout)
        try:
            data, source = self.sock.recvfrom(70000)
        except OSError:
            return None
        if source != self.client:
            return None
        self.received.append(data)
        return data

    def close(self) -> None:
        self.sock.close()
        self.stray.close()


# --- the client in another namespace ------------------------------------------------


def client_argv(url: str, output: str, timeout: float, blksize: Optional[int] = None,
                windowsize: Optional[int] = None, more: Sequence[str] = ()) -> List[str]:
    """Command line running the project's client on one URL, or on several
    (*more*: further URL, OUTPUT pairs, fetched by the same process; see :func:`main`)."""
    argv = [sys.executable, os.path.abspath(__file__), "fetch", url, output, *more,
            "--timeout", str(timeout)]
    if blksize is not None:
        argv += ["--blksize", str(blksize)]
    if windowsize is not None:
        argv += ["--windowsize", str(windowsize)]
    return argv


def client_env() -> Dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = SRC_DIR + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    return env


def main(argv: Sequence[str]) -> int:
    import argparse

    parser = argparse.ArgumentParser()
    parser.add_argument("command", choices=["fetch"])
    parser.add_argument("targets", nargs="+", metavar="URL OUTPUT",
                        help="files to fetch one after the other, and where to")
    parser.add_argument("--timeout", type=float, default=10.0)
    parser.add_argument("--blksize", type=int)
    parser.add_argument("--windowsize", type=int)
    args = parser.parse_args(argv)
    if len(args.targets) % 2:
        parser.error("each URL needs an OUTPUT")
    pairs = list(zip(args.targets[0::2], args.targets[1::2]))
    parts = urlsplit(pairs[0][0])
    wait_for_tftp(parts.hostname or "", parts.port or 69)
    options = TransportOptions(timeout=args.timeout, tftp_blksize=args.blksize,
                               tftp_windowsize=args.windowsize)
    for url, output in pairs:
        head, _, name = url.rpartition("/")
        tree = tftp.open_tree(head + "/", options)
        try:
            with open(output, "wb") as out:
                tree.fetch(name, Sink(out, tree.url(name)))
        except XenPVNetBootError as exc:
            print(json.dumps({"error": str(exc)}))
            return 1
    print(json.dumps(dataclasses.asdict(tree.last_stats)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))


def wire_block(index: int, roll_to: int = 0) -> int:
    """Block number on the wire of the *index*-th block (from 1)."""
    if roll_to == 0:
        return index & 0xFFFF
    return (index - 1) % 0xFFFF + 1


def serve_file(
    session: ScriptedSession,
    data: bytes,
    blksize: int = 512,
    windowsize: int = 1,
    oack: Optional[Dict[str, str]] = None,
    roll_to: int = 0,
    timeout: float = 2.0,
) -> List[int]:
    """Send *data* the way a plain server does; return the ACK numbers seen.

    With *oack* the options are acknowledged first and ACK 0 awaited.  A
    window restarts after the block each ACK names; silence resends it.
    """
    acks: List[int] = []
    if oack is not None:
        session.send(tftp.encode_oack(oack))
        if _wait_ack(session, {0}, timeout, acks) is None:
            return acks
    total = len(data) // blksize + 1
    base = 1
    while base <= total:
        end = min(total, base + windowsize - 1)
        for index in range(base, end + 1):
            chunk = data[(index - 1) * blksize:index * blksize]
            session.send(tftp.encode_data(wire_block(index, roll_to), chunk))
        wanted = {wire_block(i, roll_to): i for i in range(base - 1, end + 1) if i >= 0}
        got = _wait_ack(session, set(wanted), timeout, acks)
        if got is None:
            return acks
        base = wanted[got] + 1
    return acks


def _wait_ack(session: ScriptedSession, wanted: set, timeout: float, acks: List[int]) -> Optional[int]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        packet = session.recv(max(0.01, deadline - time.monotonic()))
        if packet is None:
            return None
        answer = tftp.decode_packet(packet)
        if isinstance(answer, tftp.Ack):
            acks.append(answer.block)
            if answer.block in wanted:
                return answer.block
        elif isinstance(answer, tftp.Error):
            return None
    return None
