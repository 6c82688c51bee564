"""The sockets, the clock and ``poll`` under a :class:`~.machine.ReadMachine`.

A :class:`Channel` is the UDP socket of one transfer.  Once the server's
transfer ID is known the socket is connected to it, so a block costs one
``recv`` into a buffer allocated once, no source address, and one ``send``
of the acknowledgement; the payload goes to the sink as a view of that
buffer, never copied.  A second, unconnected socket on the same port (shared
with ``SO_REUSEPORT``, which only the same user may join) still hears
strangers, whom the machine answers with ERROR 5 as RFC 1350 asks; where it
cannot be had the first socket stays unconnected.  The channel reads before
it polls: on a fast path the next block is usually there already, and where
it is not, the failed read costs time the client spends waiting anyway.

ICMP errors are enabled (``IP_RECVERR``): "port unreachable" from the server
ends the transfer at once instead of after the timeout.
"""

from __future__ import annotations

import errno
import select
import socket
import struct
import time
from typing import List, Optional, Tuple, Union

from ...errors import BootError
from ..base import Sink
from .actions import Action, Address, Answered, Fail, Finished, Locked, Send, Store
from .machine import ReadMachine
from .negotiation import DEFAULT_BLKSIZE, MAX_BLKSIZE, MIN_WINDOWSIZE, PLAIN_BLKSIZE
from .packets import ERR_DISK_FULL

#: IP + UDP + TFTP header bytes around a block, by address family: the block
#: size asked for by default is the path MTU less these (1468 on Ethernet,
#: 65464 on loopback, 8960 on a 9000-byte jumbo-frame network).
_HEADERS = {socket.AF_INET: 20 + 8 + 4, socket.AF_INET6: 40 + 8 + 4}
_IP_MTU = 14
_IPV6_MTU = 24
# Linux socket options missing from older Python builds.
_SO_RCVBUFFORCE = getattr(socket, "SO_RCVBUFFORCE", 33)
_SO_REUSEPORT = getattr(socket, "SO_REUSEPORT", 15)
_IP_RECVERR = getattr(socket, "IP_RECVERR", 11)
_IPV6_RECVERR = getattr(socket, "IPV6_RECVERR", 25)
_MSG_ERRQUEUE = getattr(socket, "MSG_ERRQUEUE", 0x2000)
#: ICMP errors that mean nobody will answer at that address and port.
_UNREACHABLE = {errno.ECONNREFUSED, errno.EHOSTUNREACH, errno.ENETUNREACH, errno.EHOSTDOWN}


def path_blksize(family: int, sockaddr: Tuple) -> int:
    """The largest block whose DATA packet crosses the path to *sockaddr* unfragmented.

    Connecting a UDP socket sends nothing; it only looks up the route, whose
    MTU the kernel then reports.  When it cannot tell, the Ethernet size.
    """
    level, option = (socket.IPPROTO_IPV6, _IPV6_MTU) if family == socket.AF_INET6 else (
        socket.IPPROTO_IP, _IP_MTU)
    try:
        with socket.socket(family, socket.SOCK_DGRAM) as probe:
            probe.connect(sockaddr)
            mtu = probe.getsockopt(level, option)
    except OSError:
        return DEFAULT_BLKSIZE
    return max(PLAIN_BLKSIZE, min(MAX_BLKSIZE, mtu - _HEADERS.get(family, _HEADERS[socket.AF_INET])))


def _receive_buffer_slot(blksize: int) -> int:
    """Kernel memory one queued DATA datagram costs (payload rounded up, plus
    the buffer head), so that the receive buffer really holds a window."""
    size = blksize + 4 + 64
    return (1 << (size - 1).bit_length()) + 512


class _Unreachable(Exception):
    """An ICMP error about the peer: *args[0]* says which."""


Datagram = Tuple[Union[bytes, memoryview], Address]


class Channel:
    """The socket(s) of one transfer; see the module docstring."""

    def __init__(self, family: int, server: Address) -> None:
        self.family = family
        self.server = server
        self.sock = socket.socket(family, socket.SOCK_DGRAM)
        self.sock.setblocking(False)
        self._enable_icmp_errors()
        self.poller = select.poll()
        self.poller.register(self.sock, select.POLLIN)
        self.buf = bytearray(MAX_BLKSIZE + 5)
        self.view = memoryview(self.buf)
        #: The transfer ID the socket is connected to (None: not connected).
        self.peer: Optional[Address] = None
        #: Connected, and nothing from before the connect is left in the queue:
        #: every datagram read is the peer's.
        self._only_peer = False
        self._side: Optional[socket.socket] = None
        self._side_fd = -1
        self._side_ready = False

    def _enable_icmp_errors(self) -> None:
        """Let "port unreachable" reach us: a missing server fails at once."""
        try:
            if self.family == socket.AF_INET6:
                self.sock.setsockopt(socket.IPPROTO_IPV6, _IPV6_RECVERR, 1)
            else:
                self.sock.setsockopt(socket.IPPROTO_IP, _IP_RECVERR, 1)
        except OSError:
            pass

    def size_receive_buffer(self, blksize: int, windowsize: int) -> int:
        """Make room for a whole window; return the window that really fits.

        The default buffer holds about 90 blocks of 1468 bytes but only a few
        of 64 KiB, and every datagram beyond it is dropped by the kernel.
        SO_RCVBUFFORCE passes net.core.rmem_max for a privileged caller.
        """
        slot = _receive_buffer_slot(blksize)
        wanted = slot * windowsize
        if self.sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF) < wanted:
            for option in (_SO_RCVBUFFORCE, socket.SO_RCVBUF):
                try:
                    self.sock.setsockopt(socket.SOL_SOCKET, option, wanted)
                    break
                except OSError:
                    continue
        granted = self.sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)
        return max(MIN_WINDOWSIZE, min(windowsize, granted // slot))

    def lock(self, tid: Address) -> None:
        """Connect to the transfer ID, keeping an ear open for strangers."""
        side = None
        try:
            side = socket.socket(self.family, socket.SOCK_DGRAM)
            side.setblocking(False)
            self.sock.setsockopt(socket.SOL_SOCKET, _SO_REUSEPORT, 1)
            side.setsockopt(socket.SOL_SOCKET, _SO_REUSEPORT, 1)
            side.bind(self.sock.getsockname())
            self.sock.connect(tid)
        except OSError:
            if side is not None:
                side.close()
            try:
                self.sock.setsockopt(socket.SOL_SOCKET, _SO_REUSEPORT, 0)
            except OSError:
                pass
            return  # stay unconnected: every datagram then says where it came from
        # what was queued before the connect may be anyone's: it is read with
        # its source until the queue is first found empty
        self.peer = tid
        self._side, self._side_fd = side, side.fileno()
        self.poller.register(side, select.POLLIN)

    def close(self) -> None:
        for sock in (self.sock, self._side):
            if sock is not None:
                self.poller.unregister(sock)
                sock.close()

    def send(self, packet: bytes, to: Address) -> None:
        if to is self.peer:
            self.sock.send(packet)
        else:
            self.sock.sendto(packet, to)

    def read(self) -> Optional[Datagram]:
        """The next queued datagram and its source, or None if there is none."""
        if self._only_peer:
            try:
                n = self.sock.recv_into(self.buf)
                return self.view[:n], self.peer  # type: ignore[return-value]
            except BlockingIOError:
                pass
            except OSError as exc:
                self._socket_error(exc)
            return self._read_side()
        try:
            n, source = self.sock.recvfrom_into(self.buf)
            return self.view[:n], source
        except BlockingIOError:
            self._only_peer = self.peer is not None
        except OSError as exc:
            self._socket_error(exc)
        return self._read_side()

    def _read_side(self) -> Optional[Datagram]:
        if not self._side_ready:
            return None
        try:
            n, source = self._side.recvfrom_into(self.buf)  # type: ignore[union-attr]
            return self.view[:n], source
        except OSError:
            self._side_ready = False
            return None

    def wait(self, until: float) -> bool:
        """Wait for a datagram until *until* (monotonic); False if none came."""
        remaining = until - time.monotonic()
        if remaining <= 0:
            return False
        events = self.poller.poll(max(1, int(remaining * 1000 + 0.999)))
        for fd, _ in events:
            if fd == self._side_fd:
                self._side_ready = True
        return bool(events)

    def _socket_error(self, exc: OSError) -> None:
        """An ICMP error: fatal only if the server we talk to is unreachable."""
        target = self.peer or self.server
        for err, addr in self._queued_errors():
            if err not in _UNREACHABLE:
                continue
            if addr is not None and tuple(addr[:2]) != tuple(target[:2]):
                continue  # about an answer to a stray packet
            raise _Unreachable("connection refused" if err == errno.ECONNREFUSED else "unreachable")

    def _queued_errors(self) -> List[Tuple[int, Optional[Tuple]]]:
        errors = []
        for _ in range(64):
            try:
                _, ancdata, _, addr = self.sock.recvmsg(1, 512, _MSG_ERRQUEUE)
            except OSError:
                break
            for _level, _type, data in ancdata:
                if len(data) >= 4:
                    errors.append((struct.unpack_from("=I", data)[0], addr or None))
        return errors


Outcome = Union[Answered, Finished]


class Transfer:
    """A :class:`ReadMachine` run over a :class:`Channel` with the real clock."""

    def __init__(self, machine: ReadMachine, channel: Channel) -> None:
        self.machine = machine
        self.channel = channel

    def request(self) -> Answered:
        """Send the request; the server's first answer (errors are raised)."""
        outcome = self._execute(self.machine.start(time.monotonic()), None)
        return outcome if outcome is not None else self._pump(None)  # type: ignore[return-value]

    def receive(self, sink: Optional[Sink]) -> Finished:
        """Accept the answer and receive the file into *sink* (None: drop it)."""
        limit = sink.max_size if sink is not None else None
        outcome = self._execute(self.machine.accept(time.monotonic(), limit), sink)
        return outcome if outcome is not None else self._pump(sink)  # type: ignore[return-value]

    def abort(self, code: int, message: str) -> None:
        """Tell the server to stop (best effort: it times out anyway)."""
        for action in self.machine.abort(code, message):
            if isinstance(action, Send):
                try:
                    self.channel.send(action.packet, action.to)
                except OSError:
                    pass

    def close(self) -> None:
        self.channel.close()

    def _pump(self, sink: Optional[Sink]) -> Outcome:
        """Feed datagrams and timeouts to the machine until it has an outcome."""
        machine, channel, clock = self.machine, self.channel, time.monotonic
        read, datagram, execute = channel.read, machine.datagram, self._execute
        while True:
            try:
                got = read()
                if got is not None:
                    actions = datagram(got[0], got[1], clock())
                elif channel.wait(machine.deadline):
                    continue
                else:
                    actions = machine.tick(clock())
            except _Unreachable as exc:
                actions = machine.unreachable(str(exc))
            outcome = execute(actions, sink)
            if outcome is not None:
                return outcome

    def _execute(self, actions: List[Action], sink: Optional[Sink]) -> Optional[Outcome]:
        """Carry the actions out in order; raise a failure, return an outcome."""
        outcome = None
        for action in actions:
            kind = type(action)
            if kind is Send:
                try:
                    self.channel.send(action.packet, action.to)  # type: ignore[union-attr]
                except OSError as exc:
                    self._execute(self.machine.send_failed(action.to, exc.strerror or str(exc)),
                                  sink)
            elif kind is Store:
                payload = action.payload  # type: ignore[union-attr]
                if sink is not None and sink.write(payload) != len(payload):
                    self.abort(ERR_DISK_FULL, "transfer stopped by the client")
                    raise sink.error or BootError(f"{self.machine.url}: output refused the data")
            elif kind is Fail:
                raise action.error  # type: ignore[union-attr]
            elif kind is Locked:
                self.channel.lock(action.tid)  # type: ignore[union-attr]
            else:
                outcome = action
        return outcome  # type: ignore[return-value]


__all__ = ["Channel", "Transfer", "path_blksize"]
