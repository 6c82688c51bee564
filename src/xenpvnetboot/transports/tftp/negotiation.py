"""What a TFTP read asks for, what the server grants, and the client's timer.

Pure functions and values: the options of a read request (RFC 2347 with
RFC 2348 block size, RFC 2349 transfer size, RFC 7440 window size, and the
server retransmission timeout), the check of an OACK against them, and the
adaptive retransmission timeout, which is fed round-trip samples and never
reads a clock itself.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Dict, Optional

from ...errors import UsageError
from .packets import PacketError

#: Block size asked for: the largest whose DATA packet fits an Ethernet frame
#: (1500 - 20 IP - 8 UDP - 4 TFTP).  A larger block travels as IP fragments:
#: one lost fragment loses the block, and the orphaned rest holds the
#: receiver's reassembly memory for 30 s, until the kernel drops every
#: fragment; at 1 % frame loss a 65464-byte block size stalls for good.
DEFAULT_BLKSIZE = 1468
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
#: Digits accepted in a numeric option value (a 64-bit number has 20).
_MAX_DIGITS = 20


@dataclass(frozen=True)
class Negotiated:
    """What a transfer runs with once the server has answered."""

    blksize: int = PLAIN_BLKSIZE
    windowsize: int = 1
    tsize: Optional[int] = None
    options: bool = False


def check_option_ranges(blksize: int, windowsize: int) -> None:
    """Refuse a --tftp-blksize or --tftp-windowsize that TFTP cannot carry."""
    if not MIN_BLKSIZE <= blksize <= MAX_BLKSIZE:
        raise UsageError(
            f"TFTP block size {blksize} is out of range ({MIN_BLKSIZE}..{MAX_BLKSIZE})"
        )
    if not MIN_WINDOWSIZE <= windowsize <= MAX_WINDOWSIZE:
        raise UsageError(
            f"TFTP window size {windowsize} is out of range ({MIN_WINDOWSIZE}..{MAX_WINDOWSIZE})"
        )


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
    if not value.isdigit() or len(value) > _MAX_DIGITS:
        raise PacketError(f"server sent {name}={value!r}, not a number")
    return int(value)


def _granted(oack: Dict[str, str], requested: Dict[str, str], name: str, low: int) -> Optional[int]:
    """A granted value: at least *low* and at most what was asked for."""
    value = _int_option(oack, name)
    if value is not None and not low <= value <= int(requested[name]):
        raise PacketError(f"server granted {name} {value}, not asked for")
    return value


def accept_oack(requested: Dict[str, str], oack: Dict[str, str]) -> Negotiated:
    """Check an OACK against the request (RFC 2347) and read what it grants.

    A server may only lower what was asked and may not add options: anything
    else is a broken negotiation, answered by the caller with ERROR 8.
    """
    extra = sorted(set(oack) - set(requested))
    if extra:
        raise PacketError(f"server acknowledged options it was not asked for: {', '.join(extra)}")
    blksize = _granted(oack, requested, "blksize", MIN_BLKSIZE)
    windowsize = _granted(oack, requested, "windowsize", MIN_WINDOWSIZE)
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
        """One round trip measured (in lock-step, one per block: kept cheap)."""
        srtt = self.srtt
        if srtt is None:
            srtt, rttvar = rtt, rtt / 2
        else:
            rttvar = 0.75 * self.rttvar + 0.25 * abs(srtt - rtt)
            srtt = 0.875 * srtt + 0.125 * rtt
        self.srtt, self.rttvar = srtt, rttvar
        rto = srtt + 4 * rttvar
        rto = MIN_RTO if rto < MIN_RTO else MAX_RTO if rto > MAX_RTO else rto
        self.base = self.value = rto
        idle = 2 * srtt
        self.idle = MIN_IDLE if idle < MIN_IDLE else rto if idle > rto else idle

    def backoff(self) -> None:
        self.value = min(MAX_RTO, self.value * 2)

    def reset(self) -> None:
        self.value = self.base
