"""The files below a ``tftp://`` URL: a :class:`~..base.Tree` over TFTP reads.

TFTP has no directories, listings or metadata: ``stat`` asks for the
transfer size and stops the transfer, ``fetch`` reads the whole file.  The
server's host name is resolved here and every address is checked against the
address policy (see :mod:`..peers`) before anything is sent to it; each
permitted address is tried until one answers.  A transfer that fails in a way
a retry may cure is started over (TFTP cannot resume).
"""

from __future__ import annotations

import socket
import time
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional, Sequence, Tuple, TypeVar, Union
from urllib.parse import quote, unquote

from ...errors import BootError, TransientError, UsageError
from ..base import (
    FileInfo, Sink, TransportOptions, Tree, clean_path, join_url_path, retry_delay, split_url,
)
from .driver import Channel, Transfer, path_blksize
from .actions import Answered, NextAddress, OptionsRefused, TransferStats
from .machine import ReadMachine
from .negotiation import (
    DEFAULT_BLKSIZE, DEFAULT_WINDOWSIZE, PLAIN_BLKSIZE, check_option_ranges, request_options,
)
from .packets import ERR_DISK_FULL, ERR_OPTIONS, ERR_UNDEFINED, clean_message

#: Well-known TFTP port.
DEFAULT_PORT = 69

_T = TypeVar("_T")
#: ``socket.getaddrinfo``, or a stand-in with its signature (tests).
Resolver = Callable[..., Sequence[Tuple]]
Addresses = List[Tuple[int, Tuple]]


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


class TftpTree(Tree):
    """The files below a ``tftp://`` URL; *resolve* stands for ``socket.getaddrinfo``."""

    def __init__(self, location: TftpLocation, options: TransportOptions,
                 resolve: Optional[Resolver] = None) -> None:
        self.location = location
        self.options = options
        self.blksize = options.tftp_blksize if options.tftp_blksize is not None else DEFAULT_BLKSIZE
        #: Without --tftp-blksize, the block size follows the path MTU of each address.
        self.fixed_blksize = options.tftp_blksize is not None
        self.windowsize = (
            options.tftp_windowsize if options.tftp_windowsize is not None else DEFAULT_WINDOWSIZE
        )
        check_option_ranges(self.blksize, self.windowsize)
        self._resolve_name = resolve or socket.getaddrinfo
        self._addresses: Optional[Addresses] = None
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
            if answer.first is None:
                transfer.abort(ERR_OPTIONS, "only the transfer size was wanted")
                return FileInfo(size=answer.settings.tsize)
            if len(answer.first) < PLAIN_BLKSIZE:
                transfer.receive(None)  # the whole file came: its ACK finishes politely
                return FileInfo(size=len(answer.first))
            transfer.abort(ERR_UNDEFINED, "only the existence of the file was wanted")
            return FileInfo()
        finally:
            transfer.close()

    def _fetch_once(self, path: str, sink: Sink) -> None:
        transfer, answer = self._open(path, want_tsize=True)
        started = time.monotonic()
        try:
            if answer.first is None:
                sink.expect(answer.settings.tsize)
            transfer.receive(sink)
            sink.check_complete()
        except BaseException as exc:
            refused = isinstance(exc, BootError) and exc is sink.error  # too large, disk full
            transfer.abort(ERR_DISK_FULL if refused else ERR_UNDEFINED, "transfer aborted by the client")
            raise
        finally:
            transfer.machine.stats.seconds = time.monotonic() - started
            transfer.close()

    def _resolve(self, url: str) -> Addresses:
        """The server's addresses that the address policy lets us send to."""
        if self._addresses is None:
            loc = self.location
            try:
                infos = self._resolve_name(loc.host, loc.port, type=socket.SOCK_DGRAM)
            except socket.gaierror as exc:
                kind = TransientError if exc.errno == socket.EAI_AGAIN else BootError
                raise kind(f"{url}: cannot resolve {loc.host}: {exc.strerror or exc}") from None
            except (OSError, UnicodeError) as exc:  # a name the IDNA codec refuses
                raise BootError(f"{url}: cannot resolve {loc.host}: {exc}") from None
            seen: Addresses = []
            for family, _type, _proto, _name, sockaddr in infos:
                if (family, sockaddr) not in seen and family in (socket.AF_INET, socket.AF_INET6):
                    seen.append((family, sockaddr))
            if not seen:
                raise BootError(f"{url}: {loc.host} has no IPv4 or IPv6 address")
            policy = self.options.peers_for(loc.host)
            allowed = [(family, sockaddr) for family, sockaddr in seen if policy.permits(sockaddr[0])]
            if not allowed:
                policy.check(seen[0][1][0], url)
            self._addresses = allowed
        return self._addresses

    def _open(self, path: str, want_tsize: bool) -> Tuple[Transfer, Answered]:
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
            except NextAddress as exc:
                reasons.append(f"{sockaddr[0]} port {sockaddr[1]}: {exc}")
        raise TransientError(f"{url}: no TFTP server answers ({'; '.join(reasons)})")

    def _request(
        self, url: str, filename: str, family: int, sockaddr: Tuple, want_tsize: bool
    ) -> Tuple[Transfer, Answered]:
        for with_options in (True, False):
            channel = Channel(family, sockaddr)
            options: Dict[str, str] = {}
            if with_options:
                blksize = self.blksize if self.fixed_blksize else path_blksize(family, sockaddr)
                window = channel.size_receive_buffer(blksize, self.windowsize)
                options = request_options(blksize, window, want_tsize)
            machine = ReadMachine(filename, options, sockaddr, url, self.options.timeout)
            self.last_stats = machine.stats
            transfer = Transfer(machine, channel)
            try:
                answer = transfer.request()
            except OptionsRefused as exc:
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
            settings = answer.settings
            if self.options.verbose and answer.first is None:
                self.options.note(
                    f"{url}: TFTP options granted: blksize {settings.blksize}, windowsize "
                    f"{settings.windowsize}, tsize {settings.tsize}"
                )
            if options and answer.first is not None:
                self.options.note(f"{url}: the TFTP server ignored the options: 512-byte blocks")
            return transfer, answer
        raise BootError(f"{url}: the TFTP server refused the request without options too")


def open_tree(location: Union[str, object], options: TransportOptions,
              resolve: Optional[Resolver] = None) -> Tree:
    """The tree rooted at a ``tftp://`` location: its URL text, or a parsed
    location (anything with a ``url()`` method giving that text)."""
    url = location if isinstance(location, str) else location.url()  # type: ignore[attr-defined]
    return TftpTree(parse_url(url), options, resolve)


__all__ = ["DEFAULT_PORT", "TftpLocation", "TftpTree", "open_tree", "parse_url"]
