"""TFTP client: packet codec, option negotiation, URLs, timers, and protocol
corner cases played by a scripted server on 127.0.0.1 (duplicates, reordering,
rollover to 1, stray transfer IDs, option refusal, broken servers), and where
the client may send (the address policy, with a stand-in resolver)."""

from __future__ import annotations

import io
import random
import socket
import struct
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from support.tftp_servers import ScriptedServer, serve_file

from xenpvnetboot.errors import BootError, NotFound, TransientError, UsageError
from xenpvnetboot.location import parse_location
from xenpvnetboot.transports import TransportOptions, open_url_tree
from xenpvnetboot.transports import tftp
from xenpvnetboot.transports.base import Sink
from xenpvnetboot.transports.peers import RefusedAddress
from xenpvnetboot.transports.tftp import (
    Ack,
    Data,
    Error,
    OptionAck,
    PacketError,
    Request,
    decode_packet,
    encode_ack,
    encode_data,
    encode_error,
    encode_oack,
    encode_request,
)

pytestmark = pytest.mark.timeout(60)

FAST = TransportOptions(timeout=2, retries=0, tftp_blksize=1468)


def payload(size: int, seed: int = 7) -> bytes:
    return random.Random(seed).randbytes(size)


def fetch_bytes(tree, name: str, max_size: int = 1 << 30) -> bytes:
    buf = io.BytesIO()
    tree.fetch(name, Sink(buf, tree.url(name), max_size=max_size))
    return buf.getvalue()


def one_line(exc: BaseException, url: str) -> None:
    text = str(exc)
    assert "\n" not in text and url in text, text


# --- codec --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "packet, encoded",
    [
        (Request(1, "a/b", "octet", {"blksize": "1468", "tsize": "0"}),
         b"\0\1a/b\0octet\0blksize\x001468\0tsize\x000\0"),
        (Data(1, b"xyz"), b"\0\3\0\1xyz"),
        (Data(65535, b""), b"\0\3\xff\xff"),
        (Ack(0), b"\0\4\0\0"),
        (Error(1, "File not found"), b"\0\5\0\1File not found\0"),
        (OptionAck({"blksize": "512"}), b"\0\6blksize\x00512\0"),
    ],
)
def test_encode_decode(packet, encoded):
    assert decode_packet(encoded) == packet
    if isinstance(packet, Request):
        assert encode_request(packet.filename, packet.options, packet.mode) == encoded
    elif isinstance(packet, Data):
        assert encode_data(packet.block, packet.payload) == encoded
    elif isinstance(packet, Ack):
        assert encode_ack(packet.block) == encoded
    elif isinstance(packet, Error):
        assert encode_error(packet.code, packet.message) == encoded
    else:
        assert encode_oack(packet.options) == encoded


@pytest.mark.parametrize(
    "datagram",
    [
        b"", b"\0", b"\0\3\0", b"\0\4\0\1\0", b"\0\4\0", b"\0\5\0", b"\0\7", b"\xff\xff",
        b"\0\1file\0", b"\0\1file", b"\0\1f\0octet\0blksize\0", b"\0\6blksize\0", b"\0\6\0x\0",
        b"\0\6a\0b\0A\0c\0", b"\0\6caf\xe9\0x\0",
    ],
)
def test_decode_rejects_malformed(datagram):
    with pytest.raises(PacketError):
        decode_packet(datagram)


def test_error_packet_decoded_leniently():
    assert decode_packet(b"\0\5\0\2no\xffterminator") == Error(2, "no\ufffdterminator")


def test_encoders_refuse_bad_fields():
    for call in (lambda: encode_ack(65536), lambda: encode_ack(-1), lambda: encode_data(70000, b""),
                 lambda: encode_request("a\0b"), lambda: encode_error(1, "x\0y"),
                 lambda: encode_request("f", opcode=3)):
        with pytest.raises(PacketError):
            call()


@settings(max_examples=600, deadline=None)
@given(st.binary(max_size=600))
def test_random_datagrams_raise_only_packet_errors(datagram):
    try:
        packet = decode_packet(datagram)
    except PacketError:
        return
    assert isinstance(packet, (Request, Data, Ack, Error, OptionAck))


@settings(max_examples=300, deadline=None)
@given(st.integers(0, 6), st.binary(max_size=80))
def test_datagrams_with_valid_opcodes_raise_only_packet_errors(opcode, body):
    try:
        packet = decode_packet(struct.pack("!H", opcode) + body)
    except PacketError:
        return
    assert isinstance(packet, (Request, Data, Ack, Error, OptionAck))


_NAME = st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=1, max_size=12)
_VALUE = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=8)


@settings(max_examples=200, deadline=None)
@given(_NAME, st.dictionaries(_NAME.map(str.lower), _VALUE, max_size=5))
def test_request_round_trip(filename, options):
    assert decode_packet(encode_request(filename, options)) == Request(1, filename, "octet", options)


# --- negotiation, URLs, timers ------------------------------------------------------------


def test_request_options():
    assert tftp.request_options(1468, 16) == {
        "blksize": "1468", "tsize": "0", "windowsize": "16", "timeout": "1", "utimeout": "100000",
    }
    assert "windowsize" not in tftp.request_options(512, 1, want_tsize=False)
    assert "blksize" not in tftp.request_options(512, 1)


def test_accept_oack():
    asked = tftp.request_options(1468, 16)
    got = tftp.accept_oack(asked, {"blksize": "1024", "tsize": "99", "windowsize": "8"})
    assert (got.blksize, got.windowsize, got.tsize, got.options) == (1024, 8, 99, True)
    plain = tftp.accept_oack(asked, {"tsize": "5"})
    assert (plain.blksize, plain.windowsize, plain.tsize) == (512, 1, 5)
    for bad in ({"blksize": "2000"}, {"blksize": "4"}, {"windowsize": "17"}, {"windowsize": "0"},
                {"tsize": "-1"}, {"tsize": "12a"}, {"multicast": "x"}, {"timeout": "soon"}):
        with pytest.raises(PacketError):
            tftp.accept_oack(asked, bad)


@pytest.mark.parametrize(
    "url, host, port, root",
    [
        ("tftp://boot.example/", "boot.example", 69, ""),
        ("tftp://10.1.2.3:6969/pxe/debian", "10.1.2.3", 6969, "pxe/debian"),
        ("tftp://[::1]:1069/d%20i/", "::1", 1069, "d i/"),
        ("tftp://[fe80::1]/x;mode=octet", "fe80::1", 69, "x"),
        ("tftp://h//srv/tftp", "h", 69, "/srv/tftp"),
    ],
)
def test_parse_url(url, host, port, root):
    loc = tftp.parse_url(url)
    assert (loc.host, loc.port, loc.root) == (host, port, root)


@pytest.mark.parametrize(
    "url",
    ["tftp://", "tftp:///x", "tftp://h:0/", "tftp://h:99999/", "tftp://[::1/", "tftp://u:p@h/",
     "tftp://h/x?y=1", "tftp://h/x#f", "tftp://h/x;mode=netascii", "http://h/"],
)
def test_parse_url_refuses(url):
    with pytest.raises(UsageError):
        tftp.parse_url(url)


def test_remote_names_and_urls():
    tree = tftp.open_tree("tftp://h:70/pxe/", FAST)
    assert tree.url("debian/linux") == "tftp://h:70/pxe/debian/linux"
    assert tree.url("a b") == "tftp://h:70/pxe/a%20b"
    assert tree.location.remote_name("debian/linux") == "pxe/debian/linux"
    assert tftp.open_tree("tftp://h", FAST).location.remote_name("linux") == "linux"
    assert tftp.open_tree("tftp://h//srv", FAST).location.remote_name("linux") == "/srv/linux"
    with pytest.raises(BootError):
        tree.url("../../etc/passwd")


def test_scheme_registry_opens_tftp():
    tree = open_url_tree(parse_location("tftp://127.0.0.1:6969/pxe%20dir/"), FAST)
    assert isinstance(tree, tftp.TftpTree)
    assert (tree.location.port, tree.location.root) == (6969, "pxe dir/")


def test_defaults_and_ranges():
    tree = tftp.open_tree("tftp://h/", TransportOptions())
    assert (tree.blksize, tree.windowsize) == (tftp.DEFAULT_BLKSIZE, tftp.DEFAULT_WINDOWSIZE)
    assert (tftp.DEFAULT_BLKSIZE, tftp.DEFAULT_WINDOWSIZE) == (1468, 16)
    ok = tftp.open_tree("tftp://h/", TransportOptions(tftp_blksize=8, tftp_windowsize=65535))
    assert (ok.blksize, ok.windowsize) == (8, 65535)
    for blksize, windowsize in ((7, None), (65465, None), (None, 0), (None, 65536)):
        with pytest.raises(UsageError):
            tftp.open_tree("tftp://h/", TransportOptions(tftp_blksize=blksize,
                                                         tftp_windowsize=windowsize))


def test_retransmit_timer():
    timer = tftp.RetransmitTimer()
    assert timer.value == tftp.INITIAL_RTO
    timer.sample(0.0001)
    assert timer.value == tftp.MIN_RTO and timer.idle == tftp.MIN_IDLE
    for _ in range(10):
        timer.backoff()
    assert timer.value == tftp.MAX_RTO
    timer.reset()
    assert timer.value == tftp.MIN_RTO
    timer = tftp.RetransmitTimer()
    for _ in range(20):
        timer.sample(0.3)
    assert 0.3 <= timer.value < 0.35 and timer.idle == timer.base
    timer.sample(0.001)
    assert timer.idle < timer.value


def test_error_messages():
    url = "tftp://h/x"
    missing = tftp.error_for(url, Error(1, "File not found"))
    assert isinstance(missing, NotFound) and str(missing) == "tftp://h/x: file not found"
    denied = tftp.error_for(url, Error(2, "Permission\ndenied\x1b[31m"))
    assert not isinstance(denied, NotFound)
    assert str(denied) == "tftp://h/x: TFTP server: access violation (Permission denied [31m)"
    assert "error code 42" in str(tftp.error_for(url, Error(42, "")))
    assert len(str(tftp.error_for(url, Error(0, "x" * 5000)))) < 300


# --- scripted servers ---------------------------------------------------------------------


def test_server_ignoring_options_gets_512_byte_blocks():
    data = payload(512 * 5 + 100)

    def script(session):
        assert decode_packet(session.request).options["blksize"] == "1468"
        serve_file(session, data, blksize=512)

    with ScriptedServer(script) as server:
        tree = tftp.open_tree(server.url(), FAST)
        assert fetch_bytes(tree, "f") == data
        stats = tree.last_stats
        assert (stats.blksize, stats.windowsize, stats.options, stats.blocks) == (512, 1, False, 6)


def test_server_ignoring_options_stat():
    sizes = iter([100, 5000])

    def script(session):
        size = next(sizes)
        session.send(encode_data(1, bytes(min(size, 512))))
        answer = session.recv()
        if size < 512:
            assert answer == encode_ack(1)  # the short file was finished politely
        else:
            assert decode_packet(answer).code == tftp.ERR_UNDEFINED

    with ScriptedServer(script) as server:
        tree = tftp.open_tree(server.url(), FAST)
        assert tree.stat("short").size == 100
        assert tree.stat("long").size is None


def test_option_refusal_retries_without_options():
    data = payload(2000)

    def script(session):
        request = decode_packet(session.request)
        if request.options:
            session.send(encode_error(tftp.ERR_OPTIONS, "no options here"))
        else:
            serve_file(session, data, blksize=512)

    notes = []
    options = TransportOptions(timeout=2, retries=0, log=notes.append)
    with ScriptedServer(script) as server:
        tree = tftp.open_tree(server.url(), options)
        assert fetch_bytes(tree, "f") == data
        assert len(server.sessions) == 2
    assert tree.last_stats.blksize == 512
    assert any("refused the options (no options here)" in note for note in notes)


def test_invalid_oack_is_refused_with_error_8_then_plain_request():
    data = payload(700)

    def script(session):
        if decode_packet(session.request).options:
            session.send(encode_oack({"blksize": "9000"}))  # more than asked
            assert decode_packet(session.recv()).code == tftp.ERR_OPTIONS
        else:
            serve_file(session, data, blksize=512)

    with ScriptedServer(script) as server:
        assert fetch_bytes(tftp.open_tree(server.url(), FAST), "f") == data


def test_stray_transfer_id_gets_error_5():
    data = payload(8 * 40 + 3)

    def script(session):
        session.send(encode_oack({"blksize": "8", "tsize": str(len(data))}))
        assert session.recv() == encode_ack(0)
        answer = session.send_stray(encode_data(1, b"intruder"))
        assert decode_packet(answer) == Error(tftp.ERR_UNKNOWN_TID, "unknown transfer ID")
        serve_file(session, data, blksize=8)

    with ScriptedServer(script) as server:
        tree = tftp.open_tree(server.url(), TransportOptions(timeout=2, retries=0, tftp_blksize=8))
        assert fetch_bytes(tree, "f") == data
        assert tree.last_stats.stray == 1


def test_strangers_are_answered_without_a_shared_port_too(monkeypatch):
    """Where the stranger-hearing socket cannot be had, the transfer socket
    stays unconnected and checks every source itself."""
    from xenpvnetboot.transports.tftp import driver

    monkeypatch.setattr(driver, "_SO_REUSEPORT", -1)  # setsockopt refuses it
    test_stray_transfer_id_gets_error_5()


def test_rollover_to_one_in_lock_step():
    """Some servers number block 65536 as 1, not 0; lock-step leaves no doubt."""
    data = payload(8 * 65540 + 3)

    def script(session):
        serve_file(session, data, blksize=8, oack={"blksize": "8", "tsize": str(len(data))}, roll_to=1)

    with ScriptedServer(script) as server:
        tree = tftp.open_tree(server.url(), TransportOptions(timeout=3, retries=0, tftp_blksize=8,
                                                             tftp_windowsize=1))
        assert fetch_bytes(tree, "f") == data
        assert tree.last_stats.blocks == 65541


def test_reordered_and_duplicated_blocks_in_a_window():
    """A gap is reported once with the last in-order block; duplicates are
    dropped without an answer; the window restarts after the reported block."""
    blk = 8
    data = payload(blk * 12 + 5)

    def block(n):
        return encode_data(n, data[(n - 1) * blk:n * blk])

    def script(session):
        session.send(encode_oack({"blksize": "8", "windowsize": "4", "tsize": str(len(data))}))
        assert session.recv() == encode_ack(0)
        for n in (1, 2, 4, 3, 4, 1):  # 4 before 3: a gap, then stale blocks
            session.send(block(n))
        assert session.recv() == encode_ack(2)  # the gap, reported at once
        for n in (3, 4, 5, 6):  # the window again after block 2
            session.send(block(n))
        ack_until(session, 6)
        for start in (7, 11):
            for n in range(start, min(start + 4, 14)):
                session.send(block(n))
            ack_until(session, min(start + 3, 13))

    def ack_until(session, last):
        """Read ACKs up to *last*; a pause in the stream may add an earlier one."""
        while True:
            packet = session.recv()
            assert packet is not None and decode_packet(packet).block <= last
            if packet == encode_ack(last):
                return

    with ScriptedServer(script) as server:
        tree = tftp.open_tree(server.url(), TransportOptions(timeout=2, retries=0, tftp_blksize=8,
                                                             tftp_windowsize=4))
        assert fetch_bytes(tree, "f") == data
        stats = tree.last_stats
        assert stats.gaps == 1 and stats.duplicates >= 1 and stats.timeouts == 0


def test_lost_ack_is_answered_after_the_resend():
    """When our ACK is lost the server resends the block; one more ACK follows."""
    data = payload(600)

    def script(session):
        session.send(encode_data(1, data[:512]))
        assert session.recv() == encode_ack(1)
        session.send(encode_data(1, data[:512]))  # as if that ACK was lost
        assert session.recv(1.0) == encode_ack(1)
        session.send(encode_data(2, data[512:]))
        assert session.recv() == encode_ack(2)

    with ScriptedServer(script) as server:
        assert fetch_bytes(tftp.open_tree(server.url(), FAST), "f") == data


def test_retransmits_ack_when_the_server_goes_quiet():
    data = payload(1000)

    def script(session):
        session.send(encode_data(1, data[:512]))
        first = session.recv()
        again = session.recv(1.0)  # no block 2 yet: the client repeats ACK 1
        assert first == again == encode_ack(1)
        session.send(encode_data(2, data[512:]))
        assert session.recv() == encode_ack(2)

    with ScriptedServer(script) as server:
        tree = tftp.open_tree(server.url(), FAST)
        assert fetch_bytes(tree, "f") == data
        assert tree.last_stats.timeouts >= 1


def test_server_ending_before_tsize_is_an_error():
    data = payload(3000)

    def script(session):
        serve_file(session, data[:1000], blksize=512, oack={"tsize": str(len(data))})

    with ScriptedServer(script) as server:
        tree = tftp.open_tree(server.url(), FAST)
        sink = Sink(io.BytesIO(), tree.url("f"))
        with pytest.raises(TransientError, match="ended after 1000 of 3000 bytes"):
            tree.fetch("f", sink)


def test_server_sending_more_than_tsize_is_stopped():
    data = payload(3000)

    def script(session):
        serve_file(session, data, blksize=512, oack={"tsize": "1000"}, timeout=0.5)
        assert decode_packet(session.received[-1]).code == tftp.ERR_DISK_FULL

    with ScriptedServer(script) as server:
        tree = tftp.open_tree(server.url(), FAST)
        with pytest.raises(BootError, match="more than the 1000 bytes it announced"):
            fetch_bytes(tree, "f")


def test_oversized_block_is_a_protocol_error():
    def script(session):
        session.send(encode_data(1, bytes(600)))  # no options granted: 512 at most
        session.recv()

    with ScriptedServer(script) as server:
        tree = tftp.open_tree(server.url(), FAST)
        with pytest.raises(BootError, match="protocol error: block 1 has 600 bytes") as info:
            fetch_bytes(tree, "f")
        one_line(info.value, server.url("f"))


def test_malformed_packet_is_a_protocol_error():
    def script(session):
        session.send(b"\0\x09garbage")
        session.recv()

    with ScriptedServer(script) as server:
        with pytest.raises(BootError, match="unknown TFTP opcode 9"):
            fetch_bytes(tftp.open_tree(server.url(), FAST), "f")


@pytest.mark.parametrize(
    "code, text, kind, expected",
    [
        (1, "File not found", NotFound, "file not found"),
        (2, "Permission denied", BootError, "access violation (Permission denied)"),
        (0, "Only octet mode", BootError, "error (Only octet mode)"),
    ],
)
def test_error_answers(code, text, kind, expected):
    def script(session):
        session.send(encode_error(code, text))

    with ScriptedServer(script) as server:
        tree = tftp.open_tree(server.url(), FAST)
        with pytest.raises(kind) as info:
            tree.stat("dir/f")
        assert str(info.value).endswith(expected)
        one_line(info.value, server.url("dir/f"))


def test_error_mid_transfer():
    def script(session):
        session.send(encode_oack({"tsize": "5000"}))
        session.recv()
        session.send(encode_data(1, bytes(512)))
        session.recv()
        session.send(encode_error(3, "Disk on fire"))

    with ScriptedServer(script) as server:
        with pytest.raises(BootError, match="disk full or allocation exceeded \\(Disk on fire\\)"):
            fetch_bytes(tftp.open_tree(server.url(), FAST), "f")


def test_silent_server_times_out():
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as silent:
        silent.bind(("127.0.0.1", 0))
        silent.settimeout(1)
        url = f"tftp://127.0.0.1:{silent.getsockname()[1]}/"
        tree = tftp.open_tree(url, TransportOptions(timeout=1, retries=0))
        start = time.monotonic()
        with pytest.raises(TransientError, match="no answer from the TFTP server within 1 s") as info:
            tree.stat("f")
        assert 0.9 < time.monotonic() - start < 3
        one_line(info.value, url + "f")
        assert len(silent.recv(100)) > 4  # the request did go out, and was repeated
        assert silent.recv(100)


def test_no_server_fails_at_once():
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    tree = tftp.open_tree(f"tftp://127.0.0.1:{port}/", TransportOptions(timeout=10, retries=0))
    start = time.monotonic()
    with pytest.raises(TransientError, match="connection refused"):
        tree.stat("f")
    assert time.monotonic() - start < 2


def test_stalled_transfer_is_retried_from_the_start():
    data = payload(5000)
    attempts = []

    def script(session):
        attempts.append(session)
        if len(attempts) == 1:
            session.send(encode_oack({"tsize": str(len(data))}))
            for n in range(4):  # ACK 0, then blocks 1..3, then silence: the server died
                assert session.recv() == encode_ack(n)
                if n < 3:
                    session.send(encode_data(n + 1, data[n * 512:(n + 1) * 512]))
        else:
            serve_file(session, data, blksize=512, oack={"tsize": str(len(data))})

    notes = []
    options = TransportOptions(timeout=0.5, retries=1, log=notes.append)
    with ScriptedServer(script) as server:
        tree = tftp.open_tree(server.url(), options)
        assert fetch_bytes(tree, "f") == data
    assert len(attempts) == 2
    assert any("retrying in 0.5 s" in note for note in notes)


@pytest.mark.parametrize("kind", ["duplicates", "stray"])
def test_flood_of_useless_packets_does_not_stop_the_clock(kind):
    """Packets that bring nothing new must not keep the client waiting for ever."""

    def script(session):
        session.send(encode_oack({"tsize": "5000"}))
        assert session.recv() == encode_ack(0)
        session.send(encode_data(1, bytes(512)))
        junk = encode_data(1, bytes(512))  # a duplicate, or a stranger's block
        until = time.monotonic() + 1.8
        while time.monotonic() < until:
            if kind == "stray":
                session.stray.sendto(junk, session.client)
            else:
                session.send(junk)
            time.sleep(0.0005)

    with ScriptedServer(script) as server:
        tree = tftp.open_tree(server.url(), TransportOptions(timeout=1, retries=0))
        start = time.monotonic()
        with pytest.raises(TransientError, match="no data from the TFTP server for 1 s"):
            fetch_bytes(tree, "f")
        assert time.monotonic() - start < 2.5


# --- where the client may send: the address policy and the transfer ID ---------------------


def resolver_to(address: str, seen: list):
    """A stand-in for socket.getaddrinfo that answers *address* for any name."""
    family = socket.AF_INET6 if ":" in address else socket.AF_INET

    def resolve(host, port, type=0):
        seen.append((host, port))
        sockaddr = (address, port, 0, 0) if family == socket.AF_INET6 else (address, port)
        return [(family, socket.SOCK_DGRAM, socket.IPPROTO_UDP, "", sockaddr)]

    return resolve


def test_name_resolving_to_loopback_is_refused_before_anything_is_sent():
    def script(session):
        serve_file(session, b"dom0's own secret", blksize=512)

    seen = []
    with ScriptedServer(script) as server:
        url = f"tftp://install.example:{server.port}/"
        tree = tftp.TftpTree(tftp.parse_url(url), FAST, resolve=resolver_to("127.0.0.1", seen))
        with pytest.raises(RefusedAddress) as info:
            fetch_bytes(tree, "linux")
        assert str(info.value) == (f"{url}linux: refused to connect to 127.0.0.1, a loopback "
                                   "address of this host that the location does not name")
        with pytest.raises(RefusedAddress):
            tree.stat("linux")
        time.sleep(0.2)
        assert server.sessions == []  # not one datagram reached it
        assert set(seen) == {("install.example", server.port)}
        # the same resolution is fine where loopback is allowed: the policy refused it
        trusting = TransportOptions(timeout=2, retries=0, tftp_blksize=1468,
                                    allow_addresses=frozenset({"loopback"}))
        tree = tftp.TftpTree(tftp.parse_url(url), trusting, resolve=resolver_to("127.0.0.1", seen))
        assert fetch_bytes(tree, "linux") == b"dom0's own secret"


@pytest.mark.parametrize("address, kind", [("::1", "loopback"), ("::ffff:127.0.0.1", "loopback"),
                                           ("169.254.169.254", "link-local"), ("0.0.0.0", "unspecified")])
def test_names_resolving_to_this_host_are_refused(address, kind, monkeypatch):
    def no_socket(*args):
        raise AssertionError("a socket was opened for a refused address")

    monkeypatch.setattr(tftp.tree, "Channel", no_socket)  # nothing can leave even if it regresses
    tree = tftp.TftpTree(tftp.parse_url("tftp://install.example/"), FAST,
                         resolve=resolver_to(address, []))
    with pytest.raises(RefusedAddress, match=f"refused to connect to {address}, a {kind} address"):
        tree.stat("linux")


@pytest.mark.parametrize("url", ["tftp://127.0.0.1:{port}/", "tftp://localhost:{port}/"])
def test_a_location_naming_loopback_may_use_it(url):
    def script(session):
        serve_file(session, b"served on loopback", blksize=512)

    with ScriptedServer(script) as server:
        tree = tftp.open_tree(url.format(port=server.port), FAST)
        assert fetch_bytes(tree, "f") == b"served on loopback"


def test_answers_from_another_address_are_not_the_server():
    """The transfer ID must come from the address the request went to."""
    answers = []

    def script(session):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as elsewhere:
            elsewhere.bind(("127.0.0.2", 0))
            elsewhere.settimeout(1)
            elsewhere.sendto(encode_oack({"blksize": "1468", "tsize": "5"}), session.client)
            answers.append(elsewhere.recvfrom(100)[0])

    with ScriptedServer(script) as server:
        tree = tftp.open_tree(server.url(), TransportOptions(timeout=1, retries=0, tftp_blksize=1468))
        with pytest.raises(TransientError, match="no answer from the TFTP server"):
            tree.stat("f")
    # one answer to each (resent) request, all from the wrong address: each told off
    assert answers and set(answers) == {encode_error(tftp.ERR_UNKNOWN_TID, "unknown transfer ID")}
    assert tree.last_stats.stray == len(answers)


def test_unresolvable_names_are_one_line_errors():
    def refuse(host, port, type=0):
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    tree = tftp.TftpTree(tftp.parse_url("tftp://nowhere.example/"), FAST, resolve=refuse)
    with pytest.raises(BootError) as info:
        tree.stat("linux")
    assert str(info.value) == ("tftp://nowhere.example/linux: cannot resolve nowhere.example: "
                               "Name or service not known")
    with pytest.raises(BootError, match="cannot resolve"):
        tftp.open_tree("tftp://" + "a" * 70 + ".example/", FAST).stat("linux")  # IDNA refuses it
