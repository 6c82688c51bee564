"""One TFTP read request as a state machine without sockets or clocks.

The machine is told what happened -- :meth:`ReadMachine.datagram` (a datagram
and where it came from), :meth:`ReadMachine.tick` (the time, once
:attr:`ReadMachine.deadline` has passed), and the caller's decisions
(:meth:`~ReadMachine.accept`, :meth:`~ReadMachine.abort`) -- and answers with
a list of actions: :class:`Send` a datagram, :class:`Store` a payload,
:class:`Locked` (the server's transfer ID is known), :class:`Answered` (the
first answer, for the caller to accept or abort), :class:`Finished`,
:class:`Fail`.  Every time it uses comes in with an event, so loss,
reordering, duplicates, strangers and hostile servers are played out in tests
without a socket or a sleep; :mod:`.driver` connects it to the network.

Reception is driven by the client: it acknowledges each window (or each block
when no window was granted), acknowledges the last in-order block once as soon
as a gap shows up inside a window (the server then resends from there),
acknowledges again when the stream pauses with something unanswered, and
re-sends its last acknowledgement when nothing arrives within an adaptive
retransmission timeout.  Duplicates of blocks already received get no
immediate answer, which keeps the "Sorcerer's Apprentice" echo of doubled
packets from starting.  Three clocks run: the retransmission timeout (nothing
heard for a while after our last acknowledgement: resend it, with backoff),
the idle acknowledgement (the stream pauses while something is unanswered:
servers disagree on where a window ends after a resend, and one waiting for
an acknowledgement is best answered within a couple of round trips), and the
progress deadline (``timeout`` seconds without a new block end the transfer).

A block is acknowledged before it is handed out to be stored: in lock-step
the server reads and sends the next block while the client writes this one.
"""

from __future__ import annotations

import math
from typing import Dict, List, Optional, Union

from ...errors import BootError, TransientError
from .actions import (
    Action, Address, Answered, Fail, Finished, Locked, NextAddress, OptionsRefused, Send, Store,
    TransferStats,
)
from .negotiation import PLAIN_BLKSIZE, Negotiated, RetransmitTimer, accept_oack
from .packets import (
    ACK, DATA, ERR_DISK_FULL, ERR_ILLEGAL, ERR_OPTIONS, ERR_UNDEFINED, ERR_UNKNOWN_TID,
    HEADER, Data, Error, OptionAck, PacketError, decode_packet, encode_error, encode_request,
    error_for,
)

# Phases of a read request.
REQUESTING = "requesting"  # RRQ sent, waiting for the first answer
ANSWERED = "answered"  # the first answer is in; the caller accepts or aborts
RECEIVING = "receiving"
DONE = "done"  # the last block is in
CLOSED = "closed"  # failed or aborted
_TERMINAL = (DONE, CLOSED)

_UNKNOWN_TID = encode_error(ERR_UNKNOWN_TID, "unknown transfer ID")


class ReadMachine:
    """The client side of one RRQ: see the module docstring.

    *server* is the address the request goes to; only datagrams from that
    host count, and the port of the first one becomes the transfer ID.
    *timeout* is both how long the first answer may take and how long the
    transfer may go without a new block.
    """

    def __init__(self, filename: str, options: Dict[str, str], server: Address,
                 url: str, timeout: float) -> None:
        self.url = url
        self.server = server
        self.options = options
        self.timeout = timeout
        self.request = encode_request(filename, options)
        self.stats = TransferStats()
        self.timer = RetransmitTimer()
        self.state = REQUESTING
        self.tid: Optional[Address] = None
        self.settings = Negotiated()
        self._first: Optional[bytes] = None
        self._request_deadline = 0.0
        self._resent = False
        self.blksize = PLAIN_BLKSIZE
        self.window = 1
        self._tsize: Optional[int] = None
        self._max_size: Optional[int] = None
        self._ceiling = math.inf  # bytes that may be handed out in all
        self.last = 0  # wire number of the last in-order block
        self._wrap_to = 0  # what block numbers roll over to after 65535
        self.blocks = 0
        self.stored = 0
        self._acked = 0  # blocks count at the last acknowledgement
        self._gap_acked = False  # the current gap was reported already
        self._stale = False  # duplicates or blocks past a gap arrived since our ACK
        self._ack_sent_at: Optional[float] = None
        self.sent_at = self.heard_at = self.progress_at = 0.0

    # -- the caller's side ------------------------------------------------------------

    @property
    def peer(self) -> Address:
        """Where packets of the transfer go: the transfer ID once known."""
        return self.tid if self.tid is not None else self.server

    @property
    def terminal(self) -> bool:
        return self.state in _TERMINAL

    def start(self, now: float) -> List[Action]:
        """Send the read request."""
        self.sent_at = now
        self._request_deadline = now + self.timeout
        return [Send(self.request, self.server)]

    @property
    def deadline(self) -> float:
        """When :meth:`tick` is due if nothing arrives (``inf``: never)."""
        state = self.state
        timer = self.timer
        if state is RECEIVING:
            when = min(self.progress_at + self.timeout,
                       max(self.sent_at, self.heard_at) + timer.value)
            if self.blocks > self._acked:
                when = min(when, self.heard_at + timer.idle)
            elif self._stale:
                # a duplicate ACK: not sooner than half a timeout after the last,
                # or an echo of one stray resend would go on for ever
                when = min(when, max(self.heard_at + timer.idle, self.sent_at + timer.value / 2))
            return when
        if state is REQUESTING:
            return min(self._request_deadline, self.sent_at + timer.value)
        return math.inf

    def accept(self, now: float, max_size: Optional[int] = None) -> List[Action]:
        """Go on with the transfer the server answered; hand out at most
        *max_size* bytes (and never more than the announced transfer size)."""
        if self.state is not ANSWERED:
            return []
        settings = self.settings
        self.state = RECEIVING
        self.blksize, self.window = settings.blksize, settings.windowsize
        self._tsize, self._max_size = settings.tsize, max_size
        self._ceiling = min(x for x in (settings.tsize, max_size, math.inf) if x is not None)
        self.sent_at = self.heard_at = self.progress_at = now
        first, self._first = self._first, None
        if first is None:
            return [self._acknowledge(now, sample=True)]  # ACK 0 accepts the OACK
        return self._on_data(1, first, now)

    def abort(self, code: int, message: str) -> List[Action]:
        """Stop: tell the server (it times out anyway if that is lost)."""
        if self.state in _TERMINAL:
            return []
        self.state = CLOSED
        if self.tid is None:
            return []
        return [Send(encode_error(code, message), self.tid)]

    def unreachable(self, reason: str) -> List[Action]:
        """The network says nobody listens at the peer's address and port."""
        if self.state in _TERMINAL:
            return []
        self.state = CLOSED
        if self.tid is None:
            return [Fail(NextAddress(reason))]
        return [Fail(TransientError(f"{self.url}: the TFTP server stopped the transfer "
                                    f"({reason}) after {self.stored} bytes"))]

    def send_failed(self, to: Address, reason: str) -> List[Action]:
        """A :class:`Send` could not go out: only one to the peer matters."""
        if self.state in _TERMINAL or to != self.peer:
            return []
        self.state = CLOSED
        if self.tid is None:
            return [Fail(NextAddress(reason))]
        return [Fail(TransientError(f"{self.url}: cannot send to the TFTP server: {reason}"))]

    # -- events -------------------------------------------------------------------------

    def datagram(self, data: Union[bytes, memoryview], source: Address, now: float) -> List[Action]:
        """A datagram arrived from *source*."""
        tid = self.tid
        if source is not tid and source != tid:
            return self._from_elsewhere(data, source, now)
        state = self.state
        if state is RECEIVING:
            self.heard_at = now
            blocks = self.blocks
            if len(data) >= 4 and data[1] == DATA and data[0] == 0:
                actions = self._on_data((data[2] << 8) | data[3], data[4:], now)
            else:
                actions = self._other(data, now)
            if self.blocks == blocks and now >= self.deadline:
                actions += self.tick(now)  # a flood of useless packets must not stop the clocks
            return actions
        if state is REQUESTING:
            return self._answer(data, now)
        return []

    def tick(self, now: float) -> List[Action]:
        """Time passed: fail, retransmit, or answer a pause, whichever is due."""
        state = self.state
        if state is RECEIVING:
            return self._quiet(now)
        if state is REQUESTING:
            return self._request_timer(now)
        return []

    # -- the request ------------------------------------------------------------------

    def _from_elsewhere(self, data: Union[bytes, memoryview], source: Address,
                        now: float) -> List[Action]:
        """Lock onto the first transfer ID; answer any other with ERROR 5."""
        state = self.state
        if state in _TERMINAL:
            return []
        tid = self.tid
        if tid is None and state is REQUESTING and source[0] == self.server[0]:
            tid = self.tid = (source[0], source[1]) + tuple(self.server[2:])
            return [Locked(tid)] + self.datagram(data, tid, now)
        if tid is not None and source[0] == tid[0] and source[1] == tid[1]:
            return self.datagram(data, tid, now)  # the same port, another form of address
        self.stats.stray += 1
        actions: List[Action] = [Send(_UNKNOWN_TID, source)]
        if now >= self.deadline:
            actions += self.tick(now)
        return actions

    def _request_timer(self, now: float) -> List[Action]:
        if now >= self._request_deadline:
            self.state = CLOSED
            return [Fail(TransientError(f"{self.url}: no answer from the TFTP server within "
                                        f"{self.timeout:g} s"))]
        if now >= self.sent_at + self.timer.value:
            self.timer.backoff()
            self.stats.timeouts += 1
            self.sent_at, self._resent = now, True
            return [Send(self.request, self.server)]
        return []

    def _answer(self, data: Union[bytes, memoryview], now: float) -> List[Action]:
        """The first datagram from the server: the settings, or the reason not."""
        self.heard_at = now
        if not self._resent:
            self.timer.sample(now - self.sent_at)
        try:
            packet = decode_packet(data)
        except PacketError as exc:
            return self._protocol_failure(str(exc))
        if isinstance(packet, Error):
            self.state = CLOSED  # the server has ended the transfer itself
            if packet.code == ERR_OPTIONS and self.options:
                return [Fail(OptionsRefused(packet.message))]
            return [Fail(error_for(self.url, packet))]
        if isinstance(packet, OptionAck) and self.options:
            try:
                settings = accept_oack(self.options, packet.options)
            except PacketError as exc:
                return self.abort(ERR_OPTIONS, str(exc)) + [Fail(OptionsRefused(str(exc)))]
            return self._answered(settings, None)
        if isinstance(packet, Data) and packet.block == 1:
            return self._answered(Negotiated(), packet.payload)
        return self._protocol_failure(f"unexpected {type(packet).__name__} answer to a read request")

    def _answered(self, settings: Negotiated, first: Optional[bytes]) -> List[Action]:
        self.state = ANSWERED
        self.settings, self._first = settings, first
        stats = self.stats
        stats.blksize, stats.windowsize = settings.blksize, settings.windowsize
        stats.tsize, stats.options = settings.tsize, settings.options
        return [Answered(settings, first)]

    def _protocol_failure(self, problem: str) -> List[Action]:
        return self.abort(ERR_ILLEGAL, problem) + [
            Fail(BootError(f"{self.url}: TFTP protocol error: {problem}"))]

    # -- receiving --------------------------------------------------------------------

    def _acknowledge(self, now: float, sample: bool) -> Send:
        """ACK the last in-order block; *sample*: time the answer to it."""
        self._acked = self.blocks
        self._stale = False
        self.sent_at = now
        self._ack_sent_at = now if sample else None
        return Send(HEADER.pack(ACK, self.last), self.tid)  # type: ignore[arg-type]

    def _on_data(self, block: int, payload: Union[bytes, memoryview], now: float) -> List[Action]:
        if block != self.last + 1 and not self._expected(block):
            return self._out_of_order(block, now)
        size = len(payload)
        if size > self.blksize:
            return self._protocol_failure(
                f"block {block} has {size} bytes, more than the block size {self.blksize}")
        stored = self.stored + size
        if stored > self._ceiling:
            return self._overflow(stored)
        self.stored = stored
        self.last = block
        blocks = self.blocks = self.blocks + 1
        stats = self.stats
        stats.blocks = blocks
        stats.bytes = stored
        self._gap_acked = self._stale = False
        self.progress_at = now
        timer = self.timer
        if self._ack_sent_at is not None:
            timer.sample(now - self._ack_sent_at)
            self._ack_sent_at = None
        elif timer.value != timer.base:
            timer.reset()
        if size < self.blksize:
            self.state = DONE
            return [self._acknowledge(now, sample=False), Store(payload), Finished(stored)]
        if blocks - self._acked >= self.window:
            # _acknowledge(now, sample=True) written out: in lock-step, every block comes here
            self._acked = blocks
            self.sent_at = self._ack_sent_at = now
            return [Send(HEADER.pack(ACK, block), self.tid), Store(payload)]  # type: ignore[arg-type]
        return [Store(payload)]

    def _expected(self, block: int) -> bool:
        """Is *block* the next one?  Accepts a server that rolls over to 1."""
        nxt = self.last + 1
        if nxt <= 0xFFFF:
            return block == nxt
        if block == self._wrap_to:
            return True
        if block == 1 and self.window == 1:
            self._wrap_to = 1  # lock-step leaves no doubt about what 1 means
            return True
        return False

    def _out_of_order(self, block: int, now: float) -> List[Action]:
        """A block past a gap is reported at once, so the server resends from
        the gap (RFC 7440); a duplicate only marks the stream as stale, since
        answering each one would make the server resend again."""
        stats = self.stats
        ahead = (block - self.last - 1) & 0xFFFF
        if ahead >= self.window:
            stats.duplicates += 1
            self._stale = True
        elif not self._gap_acked:
            stats.gaps += 1
            self._gap_acked = True
            return [self._acknowledge(now, sample=False)]
        else:
            self._stale = True
        return []

    def _overflow(self, total: int) -> List[Action]:
        """More data than allowed or announced: stop before handing it out
        (the limits in the order :class:`~..base.Sink` checks them)."""
        if self._max_size is not None and total > self._max_size:
            problem = f"more than {self._max_size} bytes received (--max-size)"
        else:
            problem = f"server sent more than the {self._tsize} bytes it announced"
        return self.abort(ERR_DISK_FULL, "transfer stopped by the client") + [
            Fail(BootError(f"{self.url}: {problem}"))]

    def _other(self, data: Union[bytes, memoryview], now: float) -> List[Action]:
        """Anything but a DATA packet from the server during the transfer."""
        try:
            packet = decode_packet(data)
        except PacketError as exc:
            return self._protocol_failure(str(exc))
        if isinstance(packet, Error):
            self.state = CLOSED
            return [Fail(error_for(self.url, packet))]
        if isinstance(packet, OptionAck) and self.blocks == 0:
            return [self._acknowledge(now, sample=False)]  # our ACK 0 was lost
        return self._protocol_failure(f"unexpected {type(packet).__name__} packet during a transfer")

    def _quiet(self, now: float) -> List[Action]:
        """Nothing arrived in time: fail, retransmit, or answer the pause."""
        if now >= self.progress_at + self.timeout:
            return self.abort(ERR_UNDEFINED, "timed out") + [Fail(TransientError(
                f"{self.url}: no data from the TFTP server for {self.timeout:g} s "
                f"(after {self.stored} bytes)"))]
        if now < self.deadline:
            return []
        if now >= max(self.sent_at, self.heard_at) + self.timer.value:
            self.stats.timeouts += 1
            self.timer.backoff()
            self._gap_acked = False
        else:
            self.stats.idle_acks += 1
        return [self._acknowledge(now, sample=False)]


__all__ = ["ANSWERED", "CLOSED", "DONE", "RECEIVING", "REQUESTING", "ReadMachine"]
