"""The TFTP read state machine on its own: no socket, no clock, no sleep.

Each test plays a server's datagrams and the passing of time into a
:class:`ReadMachine` and checks the actions it answers with: loss,
reordering, duplicates, strangers, hostile packets, block number rollover,
and a fuzz test of random event sequences against its invariants.
"""

from __future__ import annotations

import random
from typing import List, Optional, Tuple

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from xenpvnetboot.errors import BootError, NotFound, TransientError
from xenpvnetboot.transports.tftp import (
    MIN_RTO, Ack, Error, Request, decode_packet, encode_ack, encode_data, encode_error,
    encode_oack, request_options,
)
from xenpvnetboot.transports.tftp.actions import (
    Answered, Fail, Finished, Locked, NextAddress, OptionsRefused, Send, Store,
)
from xenpvnetboot.transports.tftp.machine import CLOSED, DONE, ReadMachine
from xenpvnetboot.transports.tftp.packets import (
    ERR_DISK_FULL, ERR_ILLEGAL, ERR_OPTIONS, ERR_UNDEFINED, ERR_UNKNOWN_TID,
)

SERVER = ("192.0.2.1", 69)
TID = ("192.0.2.1", 40000)
STRANGER = ("198.51.100.7", 5555)
URL = "tftp://192.0.2.1/f"
TIMEOUT = 5.0


def payload(size: int, seed: int = 3) -> bytes:
    return random.Random(seed).randbytes(size)


class Play:
    """Drives a machine the way the socket driver does, recording what it asks.

    ``sent`` holds (decoded packet, destination); ``stores`` the wire number
    of the block each stored payload came from; ``data`` what was stored.
    """

    def __init__(self, options=None, timeout: float = TIMEOUT, max_size: Optional[int] = None,
                 auto_accept: bool = True) -> None:
        self.options = request_options(8, 4) if options is None else options
        self.machine = ReadMachine("f", self.options, SERVER, URL, timeout)
        self.max_size = max_size
        self.auto_accept = auto_accept
        self.now = 100.0
        self.sent: List[Tuple[object, tuple]] = []
        self.stores: List[int] = []
        self.data = bytearray()
        self.outcome: object = None
        self.actions: List[object] = []
        self._block: Optional[int] = None  # the block number of the datagram being handled
        self.run(self.machine.start(self.now))

    # events

    def datagram(self, packet: bytes, source=TID, after: float = 0.001) -> List[object]:
        self.now += after
        self._block = (packet[2] << 8 | packet[3]) if packet[:2] == b"\0\3" and len(packet) >= 4 else None
        return self.run(self.machine.datagram(memoryview(bytearray(packet)), source, self.now))

    def tick(self, at: Optional[float] = None) -> List[object]:
        self.now = max(self.now, self.machine.deadline) if at is None else at
        self._block = None
        return self.run(self.machine.tick(self.now))

    def accept(self) -> List[object]:
        self._block = 1
        return self.run(self.machine.accept(self.now, self.max_size))

    def run(self, actions) -> List[object]:
        actions = list(actions)
        self.actions.extend(actions)
        for action in actions:
            if isinstance(action, Send):
                self.sent.append((decode_packet(action.packet), action.to))
            elif isinstance(action, Store):
                assert self._block is not None, "a store without a DATA packet"
                self.stores.append(self._block)
                self.data += bytes(action.payload)  # the view is only valid now
            elif isinstance(action, (Finished, Fail)):
                assert self.outcome is None, "a second outcome"
                self.outcome = action
            elif isinstance(action, Answered) and self.auto_accept:
                self.accept()
        return actions

    # what happened

    def acks(self) -> List[int]:
        return [packet.block for packet, _ in self.sent if isinstance(packet, Ack)]

    def errors(self) -> List[Tuple[int, tuple]]:
        return [(packet.code, to) for packet, to in self.sent if isinstance(packet, Error)]

    @property
    def error(self) -> Exception:
        assert isinstance(self.outcome, Fail), self.outcome
        return self.outcome.error


def blocks_of(data: bytes, blksize: int) -> List[bytes]:
    return [data[i:i + blksize] for i in range(0, len(data) + 1, blksize)]


def negotiated(play: Play, blksize: int = 8, windowsize: int = 4, tsize: Optional[int] = None) -> None:
    options = {"blksize": str(blksize)}
    if windowsize > 1:
        options["windowsize"] = str(windowsize)
    if tsize is not None:
        options["tsize"] = str(tsize)
    play.datagram(encode_oack(options))


# --- the request -------------------------------------------------------------------------


def test_request_then_lock_then_ack_zero():
    play = Play()
    packet, to = play.sent[0]
    assert isinstance(packet, Request) and to == SERVER
    assert packet.options == request_options(8, 4)
    actions = play.datagram(encode_oack({"blksize": "8", "windowsize": "4", "tsize": "20"}))
    assert [type(a) for a in actions] == [Locked, Answered]
    assert actions[0] == Locked(TID) and play.machine.tid == TID
    assert play.sent[-1] == (Ack(0), TID)
    stats = play.machine.stats
    assert (stats.blksize, stats.windowsize, stats.tsize, stats.options) == (8, 4, 20, True)


def test_whole_file_in_windows_with_the_ack_before_each_store():
    data = payload(8 * 9 + 3)
    play = Play()
    negotiated(play, tsize=len(data))
    for n, chunk in enumerate(blocks_of(data, 8), 1):
        actions = play.datagram(encode_data(n, chunk))
        kinds = [type(a) for a in actions]
        if n % 4 == 0 or n == 10:
            assert kinds[:2] == [Send, Store]  # acknowledged first, stored after
    assert bytes(play.data) == data and play.stores == list(range(1, 11))
    assert play.acks() == [0, 4, 8, 10]
    assert play.outcome == Finished(len(data)) and play.machine.state == DONE


def test_plain_server_answers_with_block_one():
    data = payload(600)
    play = Play()
    actions = play.datagram(encode_data(1, data[:512]))
    assert isinstance(actions[1], Answered) and actions[1].first == data[:512]
    assert play.acks() == [1] and play.stores == [1]
    play.datagram(encode_data(2, data[512:]))
    assert bytes(play.data) == data and play.acks() == [1, 2]
    assert play.machine.stats.options is False and play.machine.stats.blksize == 512


def test_request_is_resent_then_times_out():
    play = Play()
    first_deadline = play.machine.deadline
    play.tick()
    assert [type(p) for p, _ in play.sent] == [Request, Request]
    assert play.machine.deadline - play.now == pytest.approx(0.4)  # backed off
    while play.outcome is None:
        play.tick()
    assert isinstance(play.error, TransientError)
    assert str(play.error) == f"{URL}: no answer from the TFTP server within 5 s"
    assert play.now == pytest.approx(first_deadline - 0.2 + TIMEOUT)
    assert play.machine.stats.timeouts == len(play.sent) - 1


def test_an_early_tick_does_nothing():
    play = Play()
    assert play.tick(at=play.now + 0.01) == []
    negotiated(play)
    assert play.tick(at=play.now + 0.001) == [] and play.acks() == [0]


def test_no_answer_from_a_resend_is_not_timed():
    """Karn's rule: the answer to a resent request says nothing of the round trip."""
    play = Play()
    play.tick()
    play.datagram(encode_oack({"blksize": "8"}), after=0.9)
    assert play.machine.timer.srtt is None


@pytest.mark.parametrize(
    "answer, kind, text",
    [
        (encode_error(1, "File not found"), NotFound, f"{URL}: file not found"),
        (encode_error(2, "nope"), BootError, f"{URL}: TFTP server: access violation (nope)"),
        (encode_error(8, "no options"), OptionsRefused, "no options"),
        (encode_ack(1), BootError, f"{URL}: TFTP protocol error: unexpected Ack answer to a read request"),
        (encode_data(2, b"x"), BootError, "unexpected Data answer"),
        (b"\0\1f\0octet\0", BootError, "unexpected Request answer"),
        (b"\0\x09", BootError, "unknown TFTP opcode 9"),
        (b"\0", BootError, "shorter than an opcode"),
    ],
)
def test_first_answers_that_end_the_request(answer, kind, text):
    play = Play()
    play.datagram(answer)
    assert type(play.error) is kind and text in str(play.error)
    assert play.machine.state == CLOSED
    # a server's own ERROR is not answered; a broken packet gets ERROR 4
    expected = [] if answer[:2] == b"\0\5" else [(ERR_ILLEGAL, TID)]
    assert play.errors() == expected


@pytest.mark.parametrize(
    "oack",
    [{"blksize": "9000"}, {"blksize": "4"}, {"windowsize": "5"}, {"windowsize": "0"},
     {"tsize": "-1"}, {"tsize": "1" * 21}, {"multicast": "x"}, {"timeout": "soon"},
     {"blksize": "8 "}],
)
def test_oack_with_values_out_of_range_is_refused_with_error_8(oack):
    play = Play()
    play.datagram(encode_oack(oack))
    assert isinstance(play.error, OptionsRefused)
    assert play.errors() == [(ERR_OPTIONS, TID)] and play.stores == []


def test_oack_without_options_asked_is_a_protocol_error():
    play = Play(options={})
    play.datagram(encode_oack({"blksize": "8"}))
    assert "unexpected OptionAck answer" in str(play.error)


# --- strangers ---------------------------------------------------------------------------


def test_strangers_get_error_5_and_change_nothing():
    play = Play()
    play.datagram(encode_oack({"blksize": "8"}), source=STRANGER)  # another host: not the server
    assert play.machine.tid is None and play.errors() == [(ERR_UNKNOWN_TID, STRANGER)]
    negotiated(play, windowsize=1)
    other_port = (TID[0], TID[1] + 1)  # the server's host, but not this transfer
    play.datagram(encode_data(1, b"intruder"), source=other_port)
    play.datagram(encode_data(1, b"intruder"), source=STRANGER)
    assert play.errors()[1:] == [(ERR_UNKNOWN_TID, other_port), (ERR_UNKNOWN_TID, STRANGER)]
    assert play.stores == [] and play.machine.stats.stray == 3
    play.datagram(encode_data(1, b"genuine!"))
    play.datagram(encode_data(2, b""))
    assert bytes(play.data) == b"genuine!" and isinstance(play.outcome, Finished)


def test_the_tid_in_another_address_form_is_the_tid():
    play = Play()
    negotiated(play, windowsize=1)
    play.datagram(encode_data(1, b"x"), source=(TID[0], TID[1], 0, 0))
    assert play.stores == [1] and play.machine.stats.stray == 0


def after_block_one() -> Play:
    """A lock-step transfer of 8-byte blocks with its first block in."""
    play = Play()
    negotiated(play, windowsize=1)
    play.datagram(encode_data(1, payload(8)))
    return play


# --- loss, duplicates, reordering --------------------------------------------------------


def test_lost_block_in_lock_step_is_asked_for_again():
    play = after_block_one()
    assert play.acks() == [0, 1]
    play.tick()  # block 2 was lost: ACK 1 again, later each time
    play.tick()
    assert play.acks() == [0, 1, 1, 1] and play.machine.stats.timeouts == 2
    assert play.machine.timer.value == pytest.approx(4 * play.machine.timer.base)
    play.datagram(encode_data(2, b"end"))
    assert play.machine.timer.value == play.machine.timer.base  # data flows: backoff undone
    assert play.stores == [1, 2] and isinstance(play.outcome, Finished)


def test_duplicates_are_stored_once_and_answered_late():
    data = payload(8 * 3)
    play = Play()
    negotiated(play, windowsize=1)
    play.datagram(encode_data(1, data[:8]))
    sent = len(play.sent)
    for _ in range(5):  # the server resent block 1: our ACK was lost
        play.datagram(encode_data(1, data[:8]))
    assert len(play.sent) == sent  # no echo of each duplicate
    assert play.machine.stats.duplicates == 5
    play.tick()
    assert play.acks()[-1] == 1
    for n in (2, 3, 3, 2, 4):
        play.datagram(encode_data(n, data[(n - 1) * 8:n * 8]))
    assert play.stores == [1, 2, 3, 4] and bytes(play.data) == data


def test_gap_in_a_window_is_reported_once():
    data = payload(8 * 8)
    chunks = blocks_of(data, 8)
    play = Play()
    negotiated(play)
    for n in (1, 2, 4, 3, 4, 1):
        play.datagram(encode_data(n, chunks[n - 1]))
    assert play.acks() == [0, 2]  # at the first block 4, once
    assert play.stores == [1, 2, 3, 4] and play.machine.stats.gaps == 1
    assert play.machine.stats.duplicates == 1
    for n in (4, 5, 6, 7, 8, 9):
        play.datagram(encode_data(n, chunks[n - 1]))
    assert bytes(play.data) == data and play.stores == list(range(1, 10))


def test_pause_with_blocks_unanswered_gets_an_idle_ack():
    play = Play()
    negotiated(play)
    play.datagram(encode_data(1, payload(8)))
    play.datagram(encode_data(2, payload(8)))
    assert play.acks() == [0]
    assert play.machine.deadline == pytest.approx(play.now + play.machine.timer.idle)
    play.tick()
    assert play.acks() == [0, 2] and play.machine.stats.idle_acks == 1


def test_lost_ack_zero_is_sent_again_on_a_second_oack():
    play = Play()
    negotiated(play)
    negotiated(play)
    assert play.acks() == [0, 0] and play.outcome is None


def test_no_progress_ends_the_transfer_after_the_timeout():
    play = after_block_one()
    progress = play.now
    while play.outcome is None:
        play.tick()
    assert play.now == pytest.approx(progress + TIMEOUT)
    assert str(play.error) == f"{URL}: no data from the TFTP server for 5 s (after 8 bytes)"
    assert play.errors() == [(ERR_UNDEFINED, TID)]
    assert play.machine.stats.timeouts == len(play.acks()) - 2


def test_flood_of_duplicates_does_not_stop_the_clock():
    play = after_block_one()
    start = play.now
    while play.outcome is None:
        play.datagram(encode_data(1, payload(8)), after=0.0005)
        assert play.now - start < TIMEOUT + 0.01
    assert isinstance(play.error, TransientError) and play.stores == [1]
    acks = play.acks()  # answered now and then, never each time
    assert len(acks) <= 3 + TIMEOUT / (MIN_RTO / 2) < play.machine.stats.duplicates / 10


def test_flood_of_strangers_does_not_stop_the_clock():
    play = Play()
    while play.outcome is None:
        play.datagram(encode_data(1, b"x"), source=STRANGER, after=0.001)
    assert isinstance(play.error, TransientError) and "no answer" in str(play.error)


# --- hostile servers ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "datagram, text",
    [
        (encode_data(2, bytes(9)), "block 2 has 9 bytes, more than the block size 8"),
        (b"\0\3\0", "TFTP DATA packet is truncated"),
        (b"\0\3", "TFTP DATA packet is truncated"),
        (b"\0", "shorter than an opcode"),
        (b"\0\x07\0\1", "unknown TFTP opcode 7"),
        (b"\x01\x03\0\1abc", "unknown TFTP opcode 259"),
        (encode_ack(1), "unexpected Ack packet during a transfer"),
        (b"\0\1f\0octet\0", "unexpected Request packet during a transfer"),
        (b"\0\4\0\1\0", "ACK packet has the wrong length"),
    ],
)
def test_hostile_packets_during_a_transfer(datagram, text):
    play = Play()
    negotiated(play)
    play.datagram(encode_data(1, bytes(8)))
    play.datagram(datagram)
    assert isinstance(play.error, BootError) and text in str(play.error)
    assert str(play.error).startswith(f"{URL}: TFTP protocol error: ")
    assert play.errors() == [(ERR_ILLEGAL, TID)] and play.stores == [1]
    assert play.datagram(encode_data(2, bytes(8))) == [] and play.tick(play.now + 99) == []


def test_oack_after_data_is_a_protocol_error():
    play = Play()
    negotiated(play)
    play.datagram(encode_data(1, bytes(8)))
    play.datagram(encode_oack({"blksize": "8"}))
    assert "unexpected OptionAck packet" in str(play.error)


def test_data_beyond_tsize_is_never_stored():
    data = payload(40)
    play = Play()
    negotiated(play, windowsize=1, tsize=20)  # announces 20, sends 40
    for n, chunk in enumerate(blocks_of(data, 8), 1):
        play.datagram(encode_data(n, chunk))
    assert bytes(play.data) == data[:16] and play.acks() == [0, 1, 2]
    assert str(play.error) == f"{URL}: server sent more than the 20 bytes it announced"
    assert play.errors() == [(ERR_DISK_FULL, TID)]


def test_data_beyond_max_size_is_never_stored():
    play = Play(max_size=12)
    negotiated(play, windowsize=1)
    play.datagram(encode_data(1, bytes(8)))
    play.datagram(encode_data(2, bytes(8)))
    assert len(play.data) == 8 and "more than 12 bytes received (--max-size)" in str(play.error)


def test_error_from_the_server_mid_transfer():
    play = Play()
    negotiated(play)
    play.datagram(encode_data(1, bytes(8)))
    play.datagram(encode_error(3, "Disk on fire"))
    assert "disk full or allocation exceeded (Disk on fire)" in str(play.error)
    assert play.errors() == []  # the server ended it: nothing to answer


@pytest.mark.parametrize("roll_to, windowsize", [(0, 1), (1, 1), (0, 4)])
def test_block_numbers_roll_over(roll_to, windowsize):
    total = 65536 + 5
    play = Play(options=request_options(8, windowsize))
    negotiated(play, windowsize=windowsize)
    machine = play.machine
    chunk = bytes(8)
    now = play.now
    stored = 0
    for index in range(1, total + 1):
        wire = index & 0xFFFF if roll_to == 0 else (index - 1) % 0xFFFF + 1
        size = 8 if index < total else 3
        for action in machine.datagram(encode_data(wire, chunk[:size]), TID, now):
            if isinstance(action, Store):
                stored += len(action.payload)
            elif isinstance(action, Fail):
                raise action.error
        now += 0.00001
    assert machine.state == DONE and stored == 8 * (total - 1) + 3
    assert machine.blocks == total


def test_rollover_to_one_is_not_guessed_inside_a_window():
    play = Play(options=request_options(8, 4))
    negotiated(play)
    machine = play.machine
    machine.last = 0xFFFF  # as if 65535 blocks had come
    machine.blocks = 0xFFFF
    play.datagram(encode_data(1, bytes(8)))  # 1 after 65535 could be 65537: not taken
    assert play.stores == []
    play.datagram(encode_data(0, bytes(8)))
    assert play.stores == [0]


# --- the caller's side -------------------------------------------------------------------


def test_abort_answers():
    play = Play(auto_accept=False)
    assert play.machine.abort(ERR_UNDEFINED, "bye") == []  # no transfer ID yet
    play = Play(auto_accept=False)
    negotiated(play)
    actions = play.machine.abort(ERR_OPTIONS, "only the size")
    assert [decode_packet(a.packet) for a in actions] == [Error(ERR_OPTIONS, "only the size")]
    assert play.machine.abort(ERR_UNDEFINED, "again") == []
    assert play.machine.accept(play.now) == []


def test_unreachable_and_send_failures():
    play = Play()
    assert isinstance(play.machine.unreachable("connection refused")[0].error, NextAddress)
    play = Play()
    assert play.machine.send_failed(STRANGER, "nope") == []  # an answer to a stranger
    assert isinstance(play.machine.send_failed(SERVER, "no route")[0].error, NextAddress)
    play = Play()
    negotiated(play)
    play.datagram(encode_data(1, bytes(8)))
    (fail,) = play.machine.unreachable("connection refused")
    assert str(fail.error) == (f"{URL}: the TFTP server stopped the transfer "
                               "(connection refused) after 8 bytes")
    play = Play()
    negotiated(play)
    (fail,) = play.machine.send_failed(TID, "Network is unreachable")  # equal, not the same
    assert isinstance(fail.error, TransientError) and "cannot send" in str(fail.error)


# --- random event sequences --------------------------------------------------------------


_OACK = st.dictionaries(
    st.sampled_from(["blksize", "windowsize", "tsize", "timeout", "bogus"]),
    st.one_of(st.sampled_from(["8", "8", "1", "2", "4", "9", "-1", "x", ""]),
              st.integers(0, 250).map(str)),
    max_size=4,
)
_PARAMETERS = {
    # a block relative to the last one stored: mostly the next, else a
    # duplicate, an old one or one past a gap
    "data": st.tuples(st.sampled_from([1, 1, 1, 1, 0, -1, 2, 3]),
                      st.sampled_from(["whole"] * 20 + ["short", "long"])),
    "oack": _OACK,
    "junk": st.binary(min_size=1, max_size=24).filter(lambda b: b[:2] != b"\0\3"),
    "error": st.integers(0, 9),
    "stray": st.binary(min_size=1, max_size=16),
    "tick": st.one_of(st.floats(0, 0.3), st.floats(0, 3)),
    "wait": st.floats(0, 0.5),
}
#: Most events are blocks, so that transfers get somewhere before a hostile
#: packet ends them.
_KINDS = ["data"] * 30 + ["oack", "tick", "tick", "tick", "wait", "stray", "stray", "junk", "error"]
_EVENT = st.sampled_from(_KINDS).flatmap(lambda kind: st.tuples(st.just(kind), _PARAMETERS[kind]))


def _play_event(play: Play, event, data: bytes) -> List[object]:
    """One random event; DATA always carries the genuine bytes of its block
    (cut short, or one byte too many), so what is stored can be checked."""
    kind = event[0]
    if kind == "data":
        offset, shape = event[1]
        block = max(1, play.machine.last + offset)
        start = (block - 1) * 8
        end = start + {"whole": 8, "short": 4, "long": 9}[shape]
        return play.datagram(encode_data(block, data[start:end]))
    if kind == "oack":
        return play.datagram(encode_oack(event[1]))
    if kind == "junk":
        return play.datagram(event[1])
    if kind == "error":
        return play.datagram(encode_error(event[1], "x"))
    if kind == "stray":
        return play.datagram(event[1], source=STRANGER)
    if kind == "tick":
        return play.tick(play.now + event[1])
    play.now += event[1]  # time passes unnoticed: the next event is late
    return []


@settings(max_examples=400, deadline=None)
@given(
    size=st.integers(0, 200),
    windowsize=st.integers(1, 4),
    max_size=st.one_of(st.none(), st.integers(0, 220)),
    opening=st.sampled_from(["oack"] * 4 + ["random"]),
    tsize=st.one_of(st.none(), st.integers(0, 250)),
    events=st.lists(_EVENT, min_size=10, max_size=150),
    seed=st.integers(0, 3),
)
def test_random_event_sequences_keep_the_invariants(size, windowsize, max_size, opening, tsize,
                                                    events, seed):
    """Whatever arrives in whatever order: blocks are stored once and in order,
    with the genuine bytes, never past tsize or max_size; an event brings a
    few actions at most; while the transfer runs its deadline is ahead of the
    last event; and with nothing more arriving it ends within the timeout."""
    data = payload(size, seed)
    timeout = 1.0
    play = Play(options=request_options(8, windowsize), timeout=timeout, max_size=max_size)
    machine = play.machine
    if opening == "oack":  # mostly a valid negotiation first, so that blocks flow
        negotiated(play, windowsize=windowsize, tsize=tsize)
    for event in events:
        actions = _play_event(play, event, data)
        assert len(actions) <= 5
        assert play.stores == list(range(1, len(play.stores) + 1))  # once each, in order
        assert data.startswith(bytes(play.data))
        if event[0] != "wait" and not machine.terminal:
            assert machine.deadline > play.now
        if play.outcome is not None:
            break
    quiet_from = play.now
    ticks = 0
    while not machine.terminal:
        play.tick()
        ticks += 1
        assert ticks <= 2 * timeout / MIN_RTO + 10
    assert play.now <= quiet_from + timeout + 1e-9
    assert machine.deadline == float("inf") and play.outcome is not None
    limits = [x for x in (machine.stats.tsize, max_size) if x is not None]
    assert len(play.data) <= min(limits, default=len(play.data))
    assert data.startswith(bytes(play.data))
    if isinstance(play.outcome, Finished):
        assert play.outcome.size == len(play.data)
