"""What a :class:`~.machine.ReadMachine` asks its driver to do, and what it
reports: the actions it returns, the failures it hands over, its statistics.

Actions are plain values; the driver carries them out in the order given.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple, Optional, Tuple, Union

from .negotiation import PLAIN_BLKSIZE, Negotiated

#: A socket address: (host, port) or (host, port, flowinfo, scope_id).
Address = Tuple


class _Small:
    """A value with a couple of fields, cheaper to make than a NamedTuple: the
    two actions below come with every block."""

    __slots__: Tuple[str, ...] = ()

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and all(
            getattr(self, name) == getattr(other, name) for name in self.__slots__)

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        fields = ", ".join(f"{name}={getattr(self, name)!r}" for name in self.__slots__)
        return f"{type(self).__name__}({fields})"


class Send(_Small):
    """Send *packet* to *to* (the transfer's peer, or a stranger being told off)."""

    __slots__ = ("packet", "to")

    def __init__(self, packet: bytes, to: Address) -> None:
        self.packet = packet
        self.to = to


class Store(_Small):
    """Write *payload*; it may be a view of the caller's receive buffer,
    valid only until the next datagram is received into it."""

    __slots__ = ("payload",)

    def __init__(self, payload: Union[bytes, memoryview]) -> None:
        self.payload = payload


class Locked(NamedTuple):
    """The server's transfer ID is known: only its datagrams matter now."""

    tid: Address


class Answered(NamedTuple):
    """The server answered: *settings* to run with, and *first*, block 1 of a
    server that ignored the options.  Call :meth:`ReadMachine.accept` or
    :meth:`ReadMachine.abort` next."""

    settings: Negotiated
    first: Optional[bytes]


class Finished(NamedTuple):
    """The last block is in; *size* bytes were handed out in all."""

    size: int


class Fail(NamedTuple):
    """The transfer is over without the file: raise *error*."""

    error: Exception


Action = Union[Send, Store, Locked, Answered, Finished, Fail]


class OptionsRefused(Exception):
    """The server answered the options with ERROR 8 or an invalid OACK."""


class NextAddress(Exception):
    """This server address refused or cannot be reached: try the next one."""


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


__all__ = [
    "Action", "Address", "Answered", "Fail", "Finished", "Locked", "NextAddress",
    "OptionsRefused", "Send", "Store", "TransferStats",
]
