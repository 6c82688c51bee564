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

The transfer fails after ``options.timeout`` seconds without progress (at
once if the server's port becomes unreachable), so a dead server never hangs
the boot; such failures are :class:`~xenpvnetboot.errors.TransientError` and
are retried from the start ``options.retries`` times, since TFTP cannot resume.

The layers, each testable on its own:

- :mod:`.packets`: the packet codec and what a server's ERROR means (pure);
- :mod:`.negotiation`: the options asked for and granted, the adaptive
  retransmission timer (pure);
- :mod:`.machine`: one read request as a state machine that takes events
  (a datagram and its source, the time) and returns actions (send, store,
  done, fail: :mod:`.actions`), with no socket and no clock;
- :mod:`.driver`: the socket, the clock and ``poll`` under the machine;
- :mod:`.tree`: the :class:`~xenpvnetboot.transports.base.Tree` of a
  ``tftp://`` URL: name resolution, the address policy, retries.
"""

from __future__ import annotations

from .driver import path_blksize
from .actions import TransferStats
from .machine import ReadMachine
from .negotiation import (
    DEFAULT_BLKSIZE, DEFAULT_WINDOWSIZE, INITIAL_RTO, MAX_BLKSIZE, MAX_RTO, MAX_WINDOWSIZE,
    MIN_BLKSIZE, MIN_IDLE, MIN_RTO, MIN_WINDOWSIZE, PLAIN_BLKSIZE, SERVER_RETRANSMIT, Negotiated,
    RetransmitTimer, accept_oack, check_option_ranges, request_options,
)
from .packets import (
    ACK, DATA, ERR_ACCESS, ERR_DISK_FULL, ERR_EXISTS, ERR_ILLEGAL, ERR_NO_USER, ERR_NOT_FOUND,
    ERR_OPTIONS, ERR_UNDEFINED, ERR_UNKNOWN_TID, ERROR, OACK, RRQ, WRQ, Ack, Data, Error,
    OptionAck, Packet, PacketError, Request, clean_message, decode_packet, encode_ack,
    encode_data, encode_error, encode_oack, encode_request, error_for,
)
from .tree import DEFAULT_PORT, TftpLocation, TftpTree, open_tree, parse_url

#: What a transfer imports or loads only when it runs: ``socket.getaddrinfo``
#: encodes a host name with the IDNA codec (``encodings.idna``, which needs
#: ``stringprep`` and ``unicodedata``), and the address policy is imported
#: when a tree resolves its host.  A ``--runas`` child may be unable to read
#: the Python installation by then, so :func:`preload` loads them first.
_PRELOAD = ("encodings.idna", "stringprep", "unicodedata", "ipaddress",
            "xenpvnetboot.transports.peers")


def preload() -> None:
    """Import now what a TFTP transfer would import later (see ``_PRELOAD``)."""
    import codecs
    import importlib

    for name in _PRELOAD:
        importlib.import_module(name)
    codecs.lookup("idna")  # registered in the codec cache, not only imported


__all__ = [
    "ACK", "Ack", "DATA", "DEFAULT_BLKSIZE", "DEFAULT_PORT", "DEFAULT_WINDOWSIZE", "Data",
    "ERROR", "ERR_ACCESS", "ERR_DISK_FULL", "ERR_EXISTS", "ERR_ILLEGAL", "ERR_NOT_FOUND",
    "ERR_NO_USER", "ERR_OPTIONS", "ERR_UNDEFINED", "ERR_UNKNOWN_TID", "Error", "INITIAL_RTO",
    "MAX_BLKSIZE", "MAX_RTO", "MAX_WINDOWSIZE", "MIN_BLKSIZE", "MIN_IDLE", "MIN_RTO",
    "MIN_WINDOWSIZE", "Negotiated", "OACK", "OptionAck", "PLAIN_BLKSIZE", "Packet",
    "PacketError", "RRQ", "ReadMachine", "Request", "RetransmitTimer", "SERVER_RETRANSMIT",
    "TftpLocation", "TftpTree", "TransferStats", "WRQ", "accept_oack", "check_option_ranges",
    "clean_message", "decode_packet", "encode_ack", "encode_data", "encode_error", "encode_oack",
    "encode_request", "error_for", "open_tree", "parse_url", "path_blksize", "preload",
    "request_options",
]
