"""TFTP packets (RFC 1350, RFC 2347): encoding, decoding, server errors.

Pure functions on bytes.  Decoding is strict -- a malformed datagram raises
:class:`PacketError`, which a transfer answers with ERROR 4 -- except for the
text of an ERROR packet, which is shown to the user and cleaned for that.
"""

from __future__ import annotations

import struct
from typing import Dict, List, NamedTuple, Optional, Union

from ...errors import BootError, NotFound

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

#: Opcode and block number (DATA, ACK) or error code (ERROR).
HEADER = struct.Struct("!HH")
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


# --- encoding -------------------------------------------------------------------------


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
    return HEADER.pack(DATA, block) + payload


def encode_ack(block: int) -> bytes:
    _check_block(block)
    return HEADER.pack(ACK, block)


def encode_error(code: int, message: str) -> bytes:
    if not 0 <= code <= 0xFFFF:
        raise PacketError(f"TFTP error code {code} out of range")
    return HEADER.pack(ERROR, code) + _field(message, "error message")


def encode_oack(options: Dict[str, str]) -> bytes:
    return _OPCODE.pack(OACK) + _option_fields(options)


def _option_fields(options: Dict[str, str]) -> bytes:
    return b"".join(_field(name, "option name") + _field(value, "option value")
                    for name, value in options.items())


# --- decoding -------------------------------------------------------------------------


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


# --- what a server's ERROR means to the user -------------------------------------------


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
