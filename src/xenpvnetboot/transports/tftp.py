"""TFTP locations: ``tftp://host[:port]/path`` (RFC 1350 and its option RFCs).

A PXE server is often the only place an install kernel is published, so the
bootloader speaks TFTP itself, with the standard library only.  Plain TFTP
moves 512 bytes per round trip, which makes a 40 MB initrd painfully slow, so
the client negotiates (RFC 2347) a larger block size (RFC 2348), the transfer
size (RFC 2349, used to refuse oversized files up front and to detect a server
that stops early), a window of blocks per acknowledgement (RFC 7440) and a
short server retransmission timeout (``timeout``, and tftpd-hpa's
``utimeout``).  Every option is optional for the server: one that ignores them
gets a plain lock-step transfer, one that refuses them gets the request again
without any.

Reception is driven by the client: it acknowledges each window (or each block
when no window was granted), acknowledges the last in-order block once as soon
as a gap shows up inside a window (the server then resends from there),
acknowledges again when the stream pauses with something unanswered, and
re-sends its last acknowledgement when nothing arrives within an adaptive
retransmission timeout.  Duplicates of blocks already received get no
immediate answer, which keeps the "Sorcerer's Apprentice" echo of doubled
packets from starting.  The transfer fails after ``options.timeout`` seconds
without progress (at once if the server's port becomes unreachable), so a dead
server never hangs the boot; such failures are :class:`TransientError` and are
retried from the start ``options.retries`` times, since TFTP cannot resume.
"""

from __future__ import annotations

import errno
import math
import select
import socket
import struct
import time
from dataclasses import dataclass
from typing import Callable, Dict, List, NamedTuple, Optional, Tuple, TypeVar, Union
from urllib.parse import quote, unquote

from ..errors import BootError, NotFound, TransientError, UsageError
from .base import (
    FileInfo, Sink, TransportOptions, Tree, clean_path, join_url_path, retry_delay, split_url,
)

#: Well-known TFTP port.
DEFAULT_PORT = 69
#: Block size asked for: the largest whose DATA packet fits an Ethernet frame
#: (1500 - 20 IP - 8 UDP - 4 TFTP).  A larger block travels as IP fragments:
#: one lost fragment loses the block, and the orphaned rest holds the
#: receiver's reassembly memory for 30 s, until the kernel drops every
#: fragment; at 1 % frame loss a 65464-byte block size stalls for good.
DEFAULT_BLKSIZE = 1468
#: IP + UDP + TFTP header bytes around a block, by address family: the block
#: size asked for by default is the path MTU less these (1468 on Ethernet,
#: 65464 on loopback, 8960 on a 9000-byte jumbo-frame network).
_HEADERS = {socket.AF_INET: 20 + 8 + 4, socket.AF_INET6: 40 + 8 + 4}
_IP_MTU = 14
_IPV6_MTU = 24
#: Blocks per acknowledgement asked for: enough to hide the round trip on a
#: LAN while a gap costs little to resend.
DEFAULT_WINDOWSIZE = 16
#: The block size of a transfer without options (RFC 1350).
PLAIN_BLKSIZE = 512
MIN_BLKSIZE = 8
MAX_BLKSIZE = 65464
MIN_WINDOWSIZE = 1
MAX_WINDOWSIZE = 65535
#: Retransmission timeout before any round trip was measured (seconds).
INITIAL_RTO = 0.2
#: Bounds of the adaptive retransmission timeout (seconds).
MIN_RTO = 0.05
MAX_RTO = 2.0
#: Shortest pause in the stream of blocks answered with an acknowledgement.
MIN_IDLE = 0.003
#: Retransmission timeout asked of the server (seconds): ``timeout`` carries
#: it rounded up to whole seconds, tftpd-hpa's ``utimeout`` exactly.  A
#: lock-step server that ignores repeated ACKs (tftpd-hpa does, against the
#: Sorcerer's Apprentice echo) resends a lost block only on this timer, so
#: each lost block costs this much; tftpd-hpa gives up after 63 times it of
#: silence, which a client acknowledging within its own timeout never nears.
SERVER_RETRANSMIT = 0.1
#: Longest server error text kept in a message.
MAX_MESSAGE = 200

# Opcodes (RFC 1350, RFC 2347).
RRQ, WRQ, DATA, ACK, ERROR, OACK = 1, 2, 3, 4, 5, 6

# Error codes (RFC 1350, RFC 2347).
ERR_UNDEFINED = 0
ERR_NOT_FOUND = 1
ERR_ACCESS = 2
ERR_DISK_FULL = 3
ERR_ILLEGAL = 4
ERR_UNKNOWN_TID = 5
ERR_EXISTS = 6
ERR_NO_USER = 7
ERR_OPTIONS = 8

ERROR_NAMES = {
    ERR_UNDEFINED: "error",
    ERR_NOT_FOUND: "file not found",
    ERR_ACCESS: "access violation",
    ERR_DISK_FULL: "disk full or allocation exceeded",
    ERR_ILLEGAL: "illegal TFTP operation",
    ERR_UNKNOWN_TID: "unknown transfer ID",
    ERR_EXISTS: "file already exists",
    ERR_NO_USER: "no such user",
    ERR_OPTIONS: "option negotiation refused",
}

# Linux socket options missing from older Python builds.
_SO_RCVBUFFORCE = getattr(socket, "SO_RCVBUFFORCE", 33)
_IP_RECVERR = getattr(socket, "IP_RECVERR", 11)
_IPV6_RECVERR = getattr(socket, "IPV6_RECVERR", 25)
_MSG_ERRQUEUE = getattr(socket, "MSG_ERRQUEUE", 0x2000)
#: ICMP errors that mean nobody will answer at that address and port.
_UNREACHABLE = {errno.ECONNREFUSED, errno.EHOSTUNREACH, errno.ENETUNREACH, errno.EHOSTDOWN}

_T = TypeVar("_T")
_HEADER = struct.Struct("!HH")
_OPCODE = struct.Struct("!H")


class PacketError(BootError):
    """A datagram is not a well-formed TFTP packet."""


class Request(NamedTuple):
    opcode: int
    filename: str
    mode: str
    options: Dict[str, str]


class Data(NamedTuple):
    block: int
    payload: bytes


class Ack(NamedTuple):
    block: int


class Error(NamedTuple):
    code: int
    message: str


class OptionAck(NamedTuple):
    options: Dict[str, str]


Packet = Union[Request, Data, Ack, Error, OptionAck]


# --- packet encoding and decoding -------------------------------------------------


def _field(text: str, what: str) -> bytes:
    """One NUL-terminated string field; a NUL inside would shift every field."""
    raw = text.encode("utf-8")
    if b"\0" in raw:
        raise PacketError(f"TFTP {what} {text!r} contains a NUL byte")
    return raw + b"\0"


def _check_block(block: int) -> None:
    if not 0 <= block <= 0xFFFF:
        raise PacketError(f"TFTP block number {block} out of range")


def encode_request(
    filename: str,
    options: Optional[Dict[str, str]] = None,
    mode: str = "octet",
    opcode: int = RRQ,
) -> bytes:
    """An RRQ (or WRQ) packet with its RFC 2347 options in the given order."""
    if opcode not in (RRQ, WRQ):
        raise PacketError(f"opcode {opcode} is not a request")
    head = _OPCODE.pack(opcode) + _field(filename, "file name") + _field(mode, "mode")
    return head + _option_fields(options or {})


def encode_data(block: int, payload: bytes) -> bytes:
    _check_block(block)
    return _HEADER.pack(DATA, block) + payload


def encode_ack(block: int) -> bytes:
    _check_block(block)
    return _HEADER.pack(ACK, block)


def encode_error(code: int, message: str) -> bytes:
    if not 0 <= code <= 0xFFFF:
        raise PacketError(f"TFTP error code {code} out of range")
    return _HEADER.pack(ERROR, code) + _field(message, "error message")


def encode_oack(options: Dict[str, str]) -> bytes:
    return _OPCODE.pack(OACK) + _option_fields(options)


def _option_fields(options: Dict[str, str]) -> bytes:
    return b"".join(_field(name, "option name") + _field(value, "option value")
                    for name, value in options.items())


def _split_strings(body: bytes, what: str) -> List[str]:
    """NUL-terminated ASCII strings; protocol fields are netascii."""
    if not body.endswith(b"\0"):
        raise PacketError(f"TFTP {what} is not NUL-terminated")
    try:
        return body[:-1].decode("ascii").split("\0")
    except UnicodeDecodeError:
        raise PacketError(f"TFTP {what} is not ASCII") from None


def _option_pairs(strings: List[str], what: str) -> Dict[str, str]:
    """Option names and values; names are case-insensitive (RFC 2347)."""
    if len(strings) % 2:
        raise PacketError(f"TFTP {what} has an option without a value")
    options: Dict[str, str] = {}
    for name, value in zip(strings[0::2], strings[1::2]):
        if not name:
            raise PacketError(f"TFTP {what} has an empty option name")
        key = name.lower()
        if key in options:
            raise PacketError(f"TFTP {what} repeats option {key!r}")
        options[key] = value
    return options


def _decode_request(opcode: int, body: bytes) -> Request:
    strings = _split_strings(body, "request")
    if len(strings) < 2:
        raise PacketError("TFTP request lacks a file name or mode")
    options = _option_pairs(strings[2:], "request")
    return Request(opcode, strings[0], strings[1].lower(), options)


def _decode_error(body: bytes) -> Error:
    if len(body) < 2:
        raise PacketError("TFTP ERROR packet is truncated")
    (code,) = _OPCODE.unpack_from(body)
    text = body[2:].split(b"\0", 1)[0]
    return Error(code, text.decode("utf-8", "replace"))


def decode_packet(datagram: bytes) -> Packet:
    """Parse one datagram; anything malformed raises :class:`PacketError`.

    Only ERROR messages are decoded leniently (a missing terminator, any
    bytes): they are shown to the user, and a sloppy server's reason is
    better than none.
    """
    if len(datagram) < 2:
        raise PacketError("TFTP packet shorter than an opcode")
    (opcode,) = _OPCODE.unpack_from(datagram)
    body = bytes(datagram[2:])
    if opcode in (RRQ, WRQ):
        return _decode_request(opcode, body)
    if opcode == DATA:
        if len(body) < 2:
            raise PacketError("TFTP DATA packet is truncated")
        return Data(_OPCODE.unpack_from(body)[0], body[2:])
    if opcode == ACK:
        if len(body) != 2:
            raise PacketError("TFTP ACK packet has the wrong length")
        return Ack(_OPCODE.unpack_from(body)[0])
    if opcode == ERROR:
        return _decode_error(body)
    if opcode == OACK:
        return OptionAck(_option_pairs(_split_strings(body, "OACK"), "OACK") if body else {})
    raise PacketError(f"unknown TFTP opcode {opcode}")


def clean_message(text: str) -> str:
    """A server's error text made safe for one line of a log."""
    printable = "".join(ch if ch.isprintable() else " " for ch in text)
    cleaned = " ".join(printable.split())
    if len(cleaned) > MAX_MESSAGE:
        cleaned = cleaned[: MAX_MESSAGE - 3] + "..."
    return cleaned


def error_for(url: str, packet: Error) -> BootError:
    """The exception an ERROR packet from the server becomes."""
    name = ERROR_NAMES.get(packet.code, f"error code {packet.code}")
    text = clean_message(packet.message)
    detail = f"{name} ({text})" if text and text.lower() != name else name
    if packet.code == ERR_NOT_FOUND:
        return NotFound(f"{url}: {detail}")
    return BootError(f"{url}: TFTP server: {detail}")


# --- option negotiation -----------------------------------------------------------


@dataclass(frozen=True)
class Negotiated:
    """What a transfer runs with once the server has answered."""

    blksize: int = PLAIN_BLKSIZE
    windowsize: int = 1
    tsize: Optional[int] = None
    options: bool = False


def request_options(blksize: int, windowsize: int, want_tsize: bool = True) -> Dict[str, str]:
    """The options sent in an RRQ; a default value is not worth asking for."""
    options: Dict[str, str] = {}
    if blksize != PLAIN_BLKSIZE:
        options["blksize"] = str(blksize)
    if want_tsize:
        options["tsize"] = "0"
    if windowsize > 1:
        options["windowsize"] = str(windowsize)
    options["timeout"] = str(max(1, math.ceil(SERVER_RETRANSMIT)))
    options["utimeout"] = str(int(SERVER_RETRANSMIT * 1_000_000))
    return options


def _int_option(options: Dict[str, str], name: str) -> Optional[int]:
    value = options.get(name)
    if value is None:
        return None
    if not value.isdigit() or len(value) > 20:
        raise PacketError(f"server sent {name}={value!r}, not a number")
    return int(value)


def accept_oack(requested: Dict[str, str], oack: Dict[str, str]) -> Negotiated:
    """Check an OACK against the request (RFC 2347) and read what it grants.

    A server may only lower what was asked and may not add options: anything
    else is a broken negotiation, answered by the caller with ERROR 8.
    """
    extra = sorted(set(oack) - set(requested))
    if extra:
        raise PacketError(f"server acknowledged options it was not asked for: {', '.join(extra)}")
    blksize = _int_option(oack, "blksize")
    if blksize is not None and not MIN_BLKSIZE <= blksize <= int(requested["blksize"]):
        raise PacketError(f"server granted blksize {blksize}, not asked for")
    windowsize = _int_option(oack, "windowsize")
    if windowsize is not None and not MIN_WINDOWSIZE <= windowsize <= int(requested["windowsize"]):
        raise PacketError(f"server granted windowsize {windowsize}, not asked for")
    _int_option(oack, "timeout")
    _int_option(oack, "utimeout")
    return Negotiated(
        blksize=blksize or PLAIN_BLKSIZE,
        windowsize=windowsize or 1,
        tsize=_int_option(oack, "tsize"),
        options=True,
    )


class RetransmitTimer:
    """Adaptive retransmission timeout (the Jacobson/Karels estimator of TCP).

    A fixed timeout is either too long on a LAN (a lost packet stalls the
    transfer for a second) or too short on a slow link (spurious resends).
    Samples come only from acknowledgements that were sent once (Karn's rule),
    and each timeout doubles the value.  Unlike TCP, the doubling is undone as
    soon as data flows again (:meth:`reset`): under heavy loss few clean
    samples arrive, and a timeout stuck at its maximum would leave recovery to
    the server's own, slow retransmissions.
    """

    def __init__(self, initial: float = INITIAL_RTO) -> None:
        self.srtt: Optional[float] = None
        self.rttvar = 0.0
        self.base = initial
        self.value = initial
        #: A pause this long in a stream of blocks means the server waits.
        self.idle = MIN_IDLE

    def sample(self, rtt: float) -> None:
        if self.srtt is None:
            self.srtt = rtt
            self.rttvar = rtt / 2
        else:
            self.rttvar = 0.75 * self.rttvar + 0.25 * abs(self.srtt - rtt)
            self.srtt = 0.875 * self.srtt + 0.125 * rtt
        self.base = self.value = min(MAX_RTO, max(MIN_RTO, self.srtt + 4 * self.rttvar))
        self.idle = min(self.base, max(MIN_IDLE, 2 * self.srtt))

    def backoff(self) -> None:
        self.value = min(MAX_RTO, self.value * 2)

    def reset(self) -> None:
        self.value = self.base


# --- URLs -------------------------------------------------------------------------


@dataclass(frozen=True)
class TftpLocation:
    """A parsed ``tftp://`` URL: server and the remote directory or file."""

    url: str
    host: str
    port: int
    root: str

    def remote_name(self, path: str) -> str:
        """The file name sent in the request for a path below the root."""
        if not self.root:
            return path
        if not path:
            return self.root
        return (self.root if self.root.endswith("/") else self.root + "/") + path


def parse_url(url: str) -> TftpLocation:
    """Split a ``tftp://`` URL (RFC 3617); only octet mode is meaningful here."""
    parts = split_url(url)
    port = parts.port
    if parts.scheme.lower() != "tftp":
        raise UsageError(f"{url}: not a tftp:// URL")
    if parts.query or parts.fragment:
        raise UsageError(f"{url}: query strings and fragments are not supported")
    if parts.username is not None or parts.password is not None:
        raise UsageError(f"{url}: TFTP has no user names or passwords")
    host = parts.hostname
    if not host:
        raise UsageError(f"{url}: no server host")
    if port == 0:
        raise UsageError(f"{url}: port 0 is not a valid TFTP port")
    path, _, mode = parts.path.partition(";mode=")
    if mode and mode.lower() not in ("octet", "binary"):
        raise UsageError(f"{url}: only octet mode is supported, not {mode!r}")
    base = url.split(";mode=", 1)[0]
    root = unquote(path)
    root = root[1:] if root.startswith("/") else root
    return TftpLocation(url=base, host=host, port=port or DEFAULT_PORT, root=root)


def check_option_ranges(blksize: int, windowsize: int) -> None:
    if not MIN_BLKSIZE <= blksize <= MAX_BLKSIZE:
        raise UsageError(
            f"TFTP block size {blksize} is out of range ({MIN_BLKSIZE}..{MAX_BLKSIZE})"
        )
    if not MIN_WINDOWSIZE <= windowsize <= MAX_WINDOWSIZE:
        raise UsageError(
            f"TFTP window size {windowsize} is out of range ({MIN_WINDOWSIZE}..{MAX_WINDOWSIZE})"
        )


# --- one transfer -----------------------------------------------------------------


@dataclass
class TransferStats:
    """How the last transfer went (what was negotiated, what was lost)."""

    blksize: int = PLAIN_BLKSIZE
    windowsize: int = 1
    tsize: Optional[int] = None
    options: bool = False
    blocks: int = 0
    bytes: int = 0
    timeouts: int = 0
    idle_acks: int = 0
    gaps: int = 0
    duplicates: int = 0
    stray: int = 0
    seconds: float = 0.0


class _OptionsRefused(Exception):
    """The server answered the options with ERROR 8 or an invalid OACK."""


class _NextAddress(Exception):
    """This server address refused or cannot be reached: try the next one."""


def _receive_buffer_slot(blksize: int) -> int:
    """Kernel memory one queued DATA datagram costs (payload rounded up, plus
    the buffer head), so that the receive buffer really holds a window."""
    size = blksize + 4 + 64
    return (1 << (size - 1).bit_length()) + 512


class _Transfer:
    """One read request: its socket, the server's transfer ID and the timers."""

    def __init__(
        self,
        url: str,
        sockaddr: Tuple,
        family: int,
        options: TransportOptions,
        stats: TransferStats,
    ) -> None:
        self.url = url
        self.server = sockaddr
        self.options = options
        self.stats = stats
        self.tid: Optional[Tuple[str, int]] = None
        self.timer = RetransmitTimer()
        self.sock = socket.socket(family, socket.SOCK_DGRAM)
        self.sock.setblocking(False)
        self._enable_icmp_errors(family)
        self.poller = select.poll()
        self.poller.register(self.sock, select.POLLIN)
        self.buf = bytearray(MAX_BLKSIZE + 5)
        self.view = memoryview(self.buf)
        self.finished = False

    def _enable_icmp_errors(self, family: int) -> None:
        """Let "port unreachable" reach us: a missing server fails at once."""
        try:
            if family == socket.AF_INET6:
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

    def close(self) -> None:
        self.poller.unregister(self.sock)
        self.sock.close()

    # sending

    def send(self, packet: bytes, addr: Optional[Tuple] = None) -> None:
        target = addr if addr is not None else (self.tid or self.server)
        try:
            self.sock.sendto(packet, target)
        except OSError as exc:
            if addr is not None:
                return  # an answer to a stray packet may fail quietly
            reason = exc.strerror or str(exc)
            if self.tid is None:
                raise _NextAddress(reason) from None
            raise TransientError(f"{self.url}: cannot send to the TFTP server: {reason}") from None

    def abort(self, code: int, message: str) -> None:
        """Tell the server to stop sending (best effort: it times out anyway)."""
        if self.tid is not None and not self.finished:
            self.finished = True
            try:
                self.sock.sendto(encode_error(code, message), self.tid)
            except OSError:
                pass

    # receiving

    def wait(self, until: float) -> Optional[Tuple[int, Tuple]]:
        """Next datagram from anyone, or None once *until* (monotonic) passes."""
        while True:
            try:
                return self.sock.recvfrom_into(self.buf)
            except BlockingIOError:
                pass
            except OSError as exc:
                self._socket_error(exc)
                continue
            remaining = until - time.monotonic()
            if remaining <= 0:
                return None
            self.poller.poll(max(1, int(remaining * 1000 + 0.999)))

    def _socket_error(self, exc: OSError) -> None:
        """An ICMP error: fatal only if the server we talk to is unreachable."""
        target = self.tid or self.server
        for err, addr in self._queued_errors():
            if err not in _UNREACHABLE:
                continue
            if addr is not None and tuple(addr[:2]) != tuple(target[:2]):
                continue  # about an answer to a stray packet
            reason = "connection refused" if err == errno.ECONNREFUSED else "unreachable"
            if self.tid is None:
                raise _NextAddress(reason)
            raise TransientError(
                f"{self.url}: the TFTP server stopped the transfer ({reason}) "
                f"after {self.stats.bytes} bytes"
            )

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

    def from_server(self, addr: Tuple) -> bool:
        """Lock onto the first transfer ID; answer any other with ERROR 5."""
        if self.tid is None:
            if addr[0] != self.server[0]:
                self._reject_stray(addr)
                return False
            self.tid = (addr[0], addr[1]) + tuple(self.server[2:])
            return True
        if addr[1] == self.tid[1] and addr[0] == self.tid[0]:
            return True
        self._reject_stray(addr)
        return False

    def _reject_stray(self, addr: Tuple) -> None:
        self.stats.stray += 1
        self.send(encode_error(ERR_UNKNOWN_TID, "unknown transfer ID"), addr)

    def parse(self, datagram: bytes) -> Packet:
        """Decode a packet from the server; a malformed one ends the transfer."""
        try:
            packet = decode_packet(datagram)
        except PacketError as exc:
            raise self.fail_protocol(str(exc)) from None
        if isinstance(packet, Error):
            self.finished = True  # the server has ended the transfer itself
        return packet

    def fail_protocol(self, problem: str) -> BootError:
        self.abort(ERR_ILLEGAL, problem)
        return BootError(f"{self.url}: TFTP protocol error: {problem}")


class _Request:
    """Sends an RRQ and waits for the server's first answer."""

    def __init__(self, transfer: _Transfer, filename: str, options: Dict[str, str]) -> None:
        self.transfer = transfer
        self.packet = encode_request(filename, options)
        self.options = options

    def run(self) -> Union[Negotiated, Data]:
        """The negotiated settings (OACK) or the first DATA packet."""
        transfer = self.transfer
        start = time.monotonic()
        deadline = start + transfer.options.timeout
        sent_at = start
        resent = False
        transfer.send(self.packet)
        while True:
            got = transfer.wait(min(deadline, sent_at + transfer.timer.value))
            if got is not None and transfer.from_server(got[1]):
                if not resent:
                    transfer.timer.sample(time.monotonic() - sent_at)
                return self._answer(bytes(transfer.view[: got[0]]))
            now = time.monotonic()  # checked after strays too: a flood must not stop the clock
            if now >= deadline:
                raise TransientError(
                    f"{transfer.url}: no answer from the TFTP server within "
                    f"{transfer.options.timeout:g} s"
                )
            if now >= sent_at + transfer.timer.value:
                transfer.timer.backoff()
                transfer.stats.timeouts += 1
                sent_at, resent = now, True
                transfer.send(self.packet)

    def _answer(self, datagram: bytes) -> Union[Negotiated, Data]:
        transfer = self.transfer
        packet = transfer.parse(datagram)
        if isinstance(packet, Error):
            if packet.code == ERR_OPTIONS and self.options:
                raise _OptionsRefused(packet.message)
            raise error_for(transfer.url, packet)
        if isinstance(packet, OptionAck) and self.options:
            try:
                return accept_oack(self.options, packet.options)
            except PacketError as exc:
                transfer.abort(ERR_OPTIONS, str(exc))
                raise _OptionsRefused(str(exc)) from None
        if isinstance(packet, Data) and packet.block == 1:
            return packet
        raise transfer.fail_protocol(f"unexpected {type(packet).__name__} answer to a read request")


class _Receiver:
    """The DATA/ACK loop of one transfer, writing blocks into a sink.

    Three clocks run.  The retransmission timeout fires when nothing at all
    was heard for a while after our last acknowledgement: it is resent with
    backoff.  The idle acknowledgement fires when the stream pauses while
    something is unanswered: servers disagree on where a window ends after a
    resend (atftpd keeps counting the old window), and a server waiting for an
    acknowledgement is best answered within a couple of round trips, not a
    full timeout.  The progress deadline (``options.timeout`` without a new
    block) ends the transfer.
    """

    def __init__(self, transfer: _Transfer, settings: Negotiated, sink: Sink) -> None:
        self.transfer = transfer
        self.timer = transfer.timer
        self.sink = sink
        self.blksize = settings.blksize
        self.window = settings.windowsize
        self.last = 0  # wire number of the last in-order block
        self.wrap_to = 0  # what block numbers roll over to after 65535
        self.blocks = 0
        self.acked = 0  # blocks count at the last acknowledgement
        self.gap_acked = False  # the current gap was reported already
        self.stale = False  # duplicates or blocks past a gap arrived since our ACK
        self.ack_sent_at: Optional[float] = None
        now = time.monotonic()
        self.sent_at = now
        self.heard_at = now
        self.progress_at = now

    def acknowledge(self, sample: bool) -> None:
        """ACK the last in-order block; *sample*: time the answer to it."""
        self.acked = self.blocks
        self.stale = False
        self.sent_at = time.monotonic()
        self.ack_sent_at = self.sent_at if sample else None
        self.transfer.send(_HEADER.pack(ACK, self.last))

    def run(self, first: Optional[Data]) -> None:
        """Receive until the last block; the common case is kept short."""
        transfer = self.transfer
        buf, view = transfer.buf, transfer.view
        if first is None:
            self.acknowledge(sample=True)  # ACK 0 accepts the OACK
        elif self.on_data(first.block, first.payload):
            return
        while True:
            got = transfer.wait(self.wakeup())
            if got is None:
                self.on_quiet()
                continue
            n, addr = got
            blocks = self.blocks
            if transfer.from_server(addr):
                self.heard_at = time.monotonic()
                if n >= 4 and buf[1] == DATA and buf[0] == 0:
                    if self.on_data((buf[2] << 8) | buf[3], view[4:n]):
                        return
                else:
                    self.on_other(bytes(view[:n]))
            if self.blocks == blocks and time.monotonic() >= self.wakeup():
                self.on_quiet()  # a flood of useless packets must not stop the clocks

    def wakeup(self) -> float:
        """When to stop waiting for the next packet (see the class docstring)."""
        timer = self.timer
        when = min(
            self.progress_at + self.transfer.options.timeout,
            max(self.sent_at, self.heard_at) + timer.value,
        )
        if self.blocks > self.acked:
            when = min(when, self.heard_at + timer.idle)
        elif self.stale:
            # a duplicate ACK: not sooner than half a timeout after the last,
            # or an echo of one stray resend would go on for ever
            when = min(when, max(self.heard_at + timer.idle, self.sent_at + timer.value / 2))
        return when

    def on_quiet(self) -> None:
        """Nothing arrived in time: fail, retransmit, or answer the pause."""
        transfer = self.transfer
        now = time.monotonic()
        if now >= self.progress_at + transfer.options.timeout:
            transfer.abort(ERR_UNDEFINED, "timed out")
            raise TransientError(
                f"{transfer.url}: no data from the TFTP server for "
                f"{transfer.options.timeout:g} s (after {self.sink.written} bytes)"
            )
        if now >= max(self.sent_at, self.heard_at) + self.timer.value:
            transfer.stats.timeouts += 1
            self.timer.backoff()
            self.gap_acked = False
        else:
            transfer.stats.idle_acks += 1
        self.acknowledge(sample=False)

    def expected(self, block: int) -> bool:
        """Is *block* the next one?  Accepts a server that rolls over to 1."""
        nxt = self.last + 1
        if nxt <= 0xFFFF:
            return block == nxt
        if block == self.wrap_to:
            return True
        if block == 1 and self.window == 1:
            self.wrap_to = 1  # lock-step leaves no doubt about what 1 means
            return True
        return False

    def on_data(self, block: int, payload) -> bool:
        """Handle one DATA packet; True once the last block is in."""
        if block != self.last + 1 and not self.expected(block):
            self.out_of_order(block)
            return False
        size = len(payload)
        if size > self.blksize:
            raise self.transfer.fail_protocol(
                f"block {block} has {size} bytes, more than the block size {self.blksize}"
            )
        self.store(bytes(payload))
        self.last = block
        self.blocks += 1
        self.gap_acked = self.stale = False
        now = time.monotonic()
        self.progress_at = now
        timer = self.timer
        if self.ack_sent_at is not None:
            timer.sample(now - self.ack_sent_at)
            self.ack_sent_at = None
        elif timer.value != timer.base:
            timer.reset()
        final = size < self.blksize
        if final or self.blocks - self.acked >= self.window:
            self.acknowledge(sample=not final)
        if final:
            self.transfer.finished = True
        return final

    def out_of_order(self, block: int) -> None:
        """A block past a gap is reported at once, so the server resends from
        the gap (RFC 7440); a duplicate only marks the stream as stale, since
        answering each one would make the server resend again."""
        stats = self.transfer.stats
        ahead = (block - self.last - 1) & 0xFFFF
        if ahead >= self.window:
            stats.duplicates += 1
            self.stale = True
        elif not self.gap_acked:
            stats.gaps += 1
            self.gap_acked = True
            self.acknowledge(sample=False)
        else:
            self.stale = True

    def store(self, data: bytes) -> None:
        sink = self.sink
        if sink.write(data) != len(data):
            self.transfer.abort(ERR_DISK_FULL, "transfer stopped by the client")
            raise sink.error or BootError(f"{self.transfer.url}: output refused the data")
        self.transfer.stats.blocks += 1
        self.transfer.stats.bytes += len(data)

    def on_other(self, datagram: bytes) -> None:
        transfer = self.transfer
        packet = transfer.parse(datagram)
        if isinstance(packet, Error):
            raise error_for(transfer.url, packet)
        if isinstance(packet, OptionAck) and self.blocks == 0:
            self.acknowledge(sample=False)  # our ACK 0 was lost
            return
        raise transfer.fail_protocol(f"unexpected {type(packet).__name__} packet during a transfer")


# --- the tree ---------------------------------------------------------------------


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



class TftpTree(Tree):
    """The files below a ``tftp://`` URL."""

    def __init__(self, location: TftpLocation, options: TransportOptions) -> None:
        self.location = location
        self.options = options
        self.blksize = options.tftp_blksize if options.tftp_blksize is not None else DEFAULT_BLKSIZE
        #: Without --tftp-blksize, the block size follows the path MTU of each address.
        self.fixed_blksize = options.tftp_blksize is not None
        self.windowsize = (
            options.tftp_windowsize if options.tftp_windowsize is not None else DEFAULT_WINDOWSIZE
        )
        check_option_ranges(self.blksize, self.windowsize)
        self._addresses: Optional[List[Tuple[int, Tuple]]] = None
        #: Details of the last transfer or size query, for messages and tests.
        self.last_stats: Optional[TransferStats] = None

    def url(self, path: str) -> str:
        return join_url_path(self.location.url, quote(clean_path(path), safe="/"))

    def stat(self, path: str) -> FileInfo:
        return self._with_retries(lambda: self._stat_once(path))

    def fetch(self, path: str, sink: Sink) -> None:
        self._with_retries(lambda: self._fetch_once(path, sink), sink)

    # internals

    def _with_retries(self, operation: Callable[[], _T], sink: Optional[Sink] = None) -> _T:
        """Run *operation* again after a failure a retry may cure.

        TFTP cannot resume, so a retried fetch starts the file over.
        """
        attempt = 0
        while True:
            try:
                return operation()
            except TransientError as exc:
                if attempt >= self.options.retries:
                    raise
                delay = retry_delay(attempt)
                if not self.options.may_retry(delay):
                    raise BootError(f"{exc}; no time left to retry before libxl's timeout") from None
                self.options.note(f"{exc}; retrying in {delay:g} s")
                time.sleep(delay)
                attempt += 1
                if sink is not None:
                    sink.rewind()

    def _stat_once(self, path: str) -> FileInfo:
        transfer, answer = self._open(path, want_tsize=True)
        try:
            if isinstance(answer, Negotiated):
                transfer.abort(ERR_OPTIONS, "only the transfer size was wanted")
                return FileInfo(size=answer.tsize)
            if len(answer.payload) < PLAIN_BLKSIZE:
                transfer.send(encode_ack(1))  # the whole file came: finish politely
                transfer.finished = True
                return FileInfo(size=len(answer.payload))
            transfer.abort(ERR_UNDEFINED, "only the existence of the file was wanted")
            return FileInfo()
        finally:
            transfer.close()

    def _fetch_once(self, path: str, sink: Sink) -> None:
        transfer, answer = self._open(path, want_tsize=True)
        stats = transfer.stats
        started = time.monotonic()
        try:
            if isinstance(answer, Negotiated):
                sink.expect(answer.tsize)
                _Receiver(transfer, answer, sink).run(None)
            else:
                _Receiver(transfer, Negotiated(), sink).run(answer)
            sink.check_complete()
        except BaseException as exc:
            refused = isinstance(exc, BootError) and exc is sink.error  # too large, disk full
            transfer.abort(ERR_DISK_FULL if refused else ERR_UNDEFINED, "transfer aborted by the client")
            raise
        finally:
            stats.seconds = time.monotonic() - started
            transfer.close()


    def _resolve(self, url: str) -> List[Tuple[int, Tuple]]:
        if self._addresses is None:
            loc = self.location
            try:
                infos = socket.getaddrinfo(loc.host, loc.port, type=socket.SOCK_DGRAM)
            except socket.gaierror as exc:
                kind = TransientError if exc.errno == socket.EAI_AGAIN else BootError
                raise kind(f"{url}: cannot resolve {loc.host}: {exc.strerror or exc}") from None
            seen: List[Tuple[int, Tuple]] = []
            for family, _type, _proto, _name, sockaddr in infos:
                if (family, sockaddr) not in seen and family in (socket.AF_INET, socket.AF_INET6):
                    seen.append((family, sockaddr))
            if not seen:
                raise BootError(f"{url}: {loc.host} has no IPv4 or IPv6 address")
            self._addresses = seen
        return self._addresses

    def _open(self, path: str, want_tsize: bool) -> Tuple[_Transfer, Union[Negotiated, Data]]:
        """Send the read request and return the transfer with its first answer.

        Each address of the host is tried until one answers; a server that
        refuses the options is asked again without any.
        """
        url = self.url(path)
        filename = self.location.remote_name(clean_path(path))
        reasons = []
        for family, sockaddr in self._resolve(url):
            try:
                return self._request(url, filename, family, sockaddr, want_tsize)
            except _NextAddress as exc:
                reasons.append(f"{sockaddr[0]} port {sockaddr[1]}: {exc}")
        raise TransientError(f"{url}: no TFTP server answers ({'; '.join(reasons)})")

    def _request(
        self, url: str, filename: str, family: int, sockaddr: Tuple, want_tsize: bool
    ) -> Tuple[_Transfer, Union[Negotiated, Data]]:
        for with_options in (True, False):
            stats = TransferStats()
            self.last_stats = stats
            transfer = _Transfer(url, sockaddr, family, self.options, stats)
            try:
                options: Dict[str, str] = {}
                if with_options:
                    blksize = self.blksize if self.fixed_blksize else path_blksize(family, sockaddr)
                    window = transfer.size_receive_buffer(blksize, self.windowsize)
                    options = request_options(blksize, window, want_tsize)
                answer = _Request(transfer, filename, options).run()
            except _OptionsRefused as exc:
                transfer.close()
                self.options.note(
                    f"{url}: the TFTP server refused the options ({clean_message(str(exc))}); "
                    "asking again without them"
                )
                continue
            except BaseException:
                transfer.abort(ERR_UNDEFINED, "transfer aborted by the client")
                transfer.close()
                raise
            self._record(stats, answer)
            if self.options.verbose and isinstance(answer, Negotiated):
                self.options.note(
                    f"{url}: TFTP options granted: blksize {answer.blksize}, windowsize "
                    f"{answer.windowsize}, tsize {answer.tsize}"
                )
            if options and isinstance(answer, Data):
                self.options.note(f"{url}: the TFTP server ignored the options: 512-byte blocks")
            return transfer, answer
        raise BootError(f"{url}: the TFTP server refused the request without options too")

    @staticmethod
    def _record(stats: TransferStats, answer: Union[Negotiated, Data]) -> None:
        if isinstance(answer, Negotiated):
            stats.blksize, stats.windowsize = answer.blksize, answer.windowsize
            stats.tsize, stats.options = answer.tsize, True


def open_tree(url: str, options: TransportOptions) -> Tree:
    """The tree rooted at a ``tftp://`` URL (see the module docstring)."""
    return TftpTree(parse_url(url), options)
