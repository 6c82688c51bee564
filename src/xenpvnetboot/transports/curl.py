"""http, https and ftp through libcurl (pycurl).

One URL client for every TCP scheme, as the original tool had through
urlgrabber: libcurl brings TLS, proxies from the environment (``http_proxy``,
``https_proxy``, ``ftp_proxy``, ``no_proxy``), FTP passive mode and IPv6, and
its transfer loop runs in C, so a fetch costs about what ``curl`` costs.

All transfers of a tree run through one multi handle: connections are reused
between the existence checks of the layout search and the downloads, and the
kernel and ramdisk are fetched at the same time.
"""

from __future__ import annotations

import functools
import io
import os
import re
import time
from collections import OrderedDict
from typing import TYPE_CHECKING, Dict, List, Mapping, Optional, Sequence, Tuple
from urllib.parse import quote

import pycurl

from .. import __version__
from ..errors import BootError, NotFound, TransientError, UsageError
from .base import (Answer, ByteSource, FileInfo, Sink, TransportOptions, Tree, answer_of,
                   join_url_path, retry_delay)
from .peers import PeerPolicy, address_class, refusal

if TYPE_CHECKING:
    from ..location import Location

#: libcurl's largest receive buffer: fewer, larger write callbacks.
BUFFER_SIZE = 512 * 1024
MAX_REDIRECTS = 5
#: Requests :meth:`CurlTree.stat_many` keeps in flight together (over HTTP/1.1
#: each is a connection of its own): a layout search's first batch fits.
PARALLEL_STATS = 48
#: System CA bundles of the distributions Xen runs on (Debian, Fedora, SUSE, Alpine/BSD).
CA_BUNDLES = (
    "/etc/ssl/certs/ca-certificates.crt",
    "/etc/pki/tls/certs/ca-bundle.crt",
    "/etc/ssl/ca-bundle.pem",
    "/etc/ssl/cert.pem",
)
_ALLOWED = pycurl.PROTO_HTTP | pycurl.PROTO_HTTPS | pycurl.PROTO_FTP
_REDIRECTS = pycurl.PROTO_HTTP | pycurl.PROTO_HTTPS
_SAFE_PATH = "/~!$&'()*+,;=:@-._"


def redact(url: str) -> str:
    """The URL without its password, for messages and logs."""
    from ..location.model import redact_text

    return redact_text(url)


def system_ca_bundle() -> Optional[str]:
    """The first CA bundle of this host; a wheel's libcurl may not know where it is."""
    for path in CA_BUNDLES:
        if os.path.isfile(path):
            return path
    try:
        import certifi  # type: ignore[import-not-found]
    except ImportError:
        return None
    return certifi.where()


def _tls_hint(message: str) -> str:
    return (
        f"TLS certificate verification failed ({message}); "
        "trust a private CA with --ca-cert=FILE"
    )


class _Transfer:
    """One request on the multi handle, with what it needs to report on itself."""

    def __init__(
        self, handle: pycurl.Curl, path: str, sink: Optional[Sink], probe: bool = False
    ) -> None:
        self.handle = handle
        #: Why a connection was refused (see :mod:`.peers`), for the error.
        self.refused: Optional[str] = None
        #: The ``Content-Range`` of a 206 answer, checked against what was asked.
        self.content_range: Optional[bytes] = None
        self.range_ok = False
        #: http(s) range answers are checked; FTP's REST has no such header.
        self.check_range = False
        self.content_type: Optional[bytes] = None
        self.path = path
        self.probe = probe
        self.sink = sink
        self.offset = 0  # where a resumed transfer starts
        #: A byte range ``(start, end)`` of the file (reading an image in place),
        #: and how much the sink held before it.
        self.span: Optional[Tuple[int, int]] = None
        self.base = 0
        self.status = 0
        self.no_ranges = False
        self.etag: Optional[str] = None
        self.started = False
        self.error: Optional[Tuple[int, str]] = None

    def write(self, data: bytes) -> int:
        sink = self.sink
        self.started = True
        if self.span is not None and self.check_range and not self.range_ok:
            if self.status != 206 or not self._range_matches():
                self.no_ranges = True  # the whole file, or bytes other than those asked for
                return 0
            self.range_ok = True
        if sink is None:
            # A probe stops at the first byte, which proves the file is there;
            # a HEAD-style check ignores what libcurl passes (FTP pseudo-headers).
            return 0 if self.probe else len(data)
        return sink.write(data)

    def header(self, line: bytes) -> None:
        """Keep the last status, ETag, type and range seen (the final response's)."""
        if line[:5] == b"HTTP/":
            parts = line.split(None, 2)
            self.status = int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else 0
            self.content_range = self.content_type = self.etag = None
        lower = line[:14].lower()
        if lower.startswith(b"etag:"):
            self.etag = line[5:].strip().decode("latin-1")[:200] or None
        elif lower.startswith(b"content-range:"):
            self.content_range = line[14:].strip()[:200]
        elif lower.startswith(b"content-type:"):
            self.content_type = line[13:].strip()[:200]

    def _range_matches(self) -> bool:
        """Whether a 206 answer carries exactly the bytes asked for.

        A server (or a cache in between) may answer a different range, or
        several in a multipart body; taking those bytes for the ones asked
        would put the wrong data into the guest's kernel.
        """
        assert self.span is not None
        text = (self.content_range or b"").decode("latin-1")
        unit, _, rest = text.partition(" ")
        first, _, tail = rest.partition("-")
        last = tail.split("/", 1)[0]
        if unit.lower() != "bytes" or not first.isdigit() or not last.isdigit():
            return False
        want_first = self.span[0] + (self.sink.written - self.base if self.sink else 0)
        return int(first) == want_first and int(last) == self.span[1] - 1

    def open_socket(self, policy: PeerPolicy, where: str):  # type: ignore[no-untyped-def]
        """libcurl's OPENSOCKETFUNCTION: connect only where *policy* permits.

        Checked on the address really connected to, after every redirect
        and every name resolution, so DNS rebinding cannot get around it.
        """
        import socket

        def callback(purpose: int, address) -> object:  # type: ignore[no-untyped-def]
            host = str(address.addr[0]).split("%", 1)[0]
            if not policy.permits(host):
                self.refused = refusal(where, host, address_class(host) or "guarded")
                return pycurl.SOCKET_BAD
            return socket.socket(address.family, address.socktype, address.protocol)

        return callback

    def progress(self, dltotal: int, dlnow: int, ultotal: int, ulnow: int) -> int:
        """Learn the announced size as soon as libcurl has it (non-zero aborts).

        libcurl forbids getinfo() inside callbacks, but hands the size here.
        """
        sink = self.sink
        if sink is not None and sink.expected is None and dltotal > 0 and self.span is None:
            try:
                sink.expect(self.offset + dltotal)
            except BootError:
                return 1
        return 0


class CurlTree(Tree):
    """Files below an http(s) or ftp base URL."""

    cacheable = True

    def __init__(self, location: "Location", options: TransportOptions) -> None:
        url, shown = location.url(), location.display()
        self.base = url if url.endswith("/") else url + "/"
        self._shown = shown if shown.endswith("/") else shown + "/"
        self.scheme = location.scheme
        self.options = options
        self._peers = options.peers_for(location.host)
        self._ca_bundle = options.ca_cert or system_ca_bundle()
        if options.ca_cert and options.ca_cert_data is None and not os.access(options.ca_cert, os.R_OK):
            raise UsageError(f"--ca-cert {options.ca_cert}: cannot read the file")
        self._multi = pycurl.CurlMulti()
        self._idle: List[pycurl.Curl] = []

    # -- URLs and handles ------------------------------------------------------

    def url(self, path: str) -> str:
        return join_url_path(self._shown, quote(path, safe=_SAFE_PATH))

    def _real_url(self, path: str) -> str:
        return join_url_path(self.base, quote(path, safe=_SAFE_PATH))

    def _handle(self, url: str, nobody: bool) -> pycurl.Curl:
        handle = self._idle.pop() if self._idle else pycurl.Curl()
        handle.reset()
        opts = self.options
        handle.setopt(pycurl.URL, url)
        handle.setopt(pycurl.PROTOCOLS, _ALLOWED)
        handle.setopt(pycurl.REDIR_PROTOCOLS, _REDIRECTS)
        handle.setopt(pycurl.FOLLOWLOCATION, 1)
        handle.setopt(pycurl.MAXREDIRS, MAX_REDIRECTS)
        handle.setopt(pycurl.NOSIGNAL, 1)
        handle.setopt(pycurl.FAILONERROR, 1)
        handle.setopt(pycurl.USERAGENT, f"xenpvnetboot/{__version__}")
        handle.setopt(pycurl.CONNECTTIMEOUT, max(1, int(opts.timeout)))
        handle.setopt(pycurl.LOW_SPEED_LIMIT, 1)
        handle.setopt(pycurl.LOW_SPEED_TIME, max(1, int(opts.timeout)))
        handle.setopt(pycurl.BUFFERSIZE, BUFFER_SIZE)
        handle.setopt(pycurl.TCP_KEEPALIVE, 1)
        # One SIZE/RETR with the full path instead of a CWD per directory level.
        handle.setopt(pycurl.FTP_FILEMETHOD, pycurl.FTPMETHOD_NOCWD)
        handle.setopt(pycurl.MAXFILESIZE_LARGE, opts.max_size)
        if opts.insecure:
            handle.setopt(pycurl.SSL_VERIFYPEER, 0)
            handle.setopt(pycurl.SSL_VERIFYHOST, 0)
        elif opts.ca_cert_data is not None:
            handle.setopt(pycurl.CAINFO_BLOB, opts.ca_cert_data)
        elif self._ca_bundle:
            handle.setopt(pycurl.CAINFO, self._ca_bundle)
        if nobody:
            handle.setopt(pycurl.NOBODY, 1)
        handle.setopt(pycurl.OPT_FILETIME, 1)
        return handle

    # -- running transfers -----------------------------------------------------

    def _run(self, transfers: Sequence[_Transfer]) -> None:
        """Drive transfers to completion on the shared multi handle.

        The loop returns to Python at least every second (``select`` timeout),
        so a SIGTERM from libxl is handled promptly even on a stalled server.
        """
        multi = self._multi
        by_handle: Dict[int, _Transfer] = {}
        for transfer in transfers:
            transfer.handle.setopt(pycurl.WRITEFUNCTION, transfer.write)
            transfer.handle.setopt(pycurl.OPENSOCKETFUNCTION,
                                   transfer.open_socket(self._peers, self.url(transfer.path)))
            if transfer.sink is not None:
                transfer.handle.setopt(pycurl.NOPROGRESS, 0)
                transfer.handle.setopt(pycurl.XFERINFOFUNCTION, transfer.progress)
            multi.add_handle(transfer.handle)
            by_handle[id(transfer.handle)] = transfer
        try:
            remaining = len(transfers)
            while remaining:
                while True:
                    status, _ = multi.perform()
                    if status != pycurl.E_CALL_MULTI_PERFORM:
                        break
                while True:
                    queued, done, failed = multi.info_read()
                    for handle in done:
                        remaining -= 1
                    for handle, code, message in failed:
                        by_handle[id(handle)].error = (code, message)
                        remaining -= 1
                    if not queued:
                        break
                if remaining:
                    multi.select(1.0)
        finally:
            for transfer in transfers:
                multi.remove_handle(transfer.handle)
                self._idle.append(transfer.handle)

    def _error(self, transfer: _Transfer) -> Optional[BootError]:
        """The failure of a finished transfer as one clear error naming the URL.

        :class:`TransientError` marks what a retry may cure.
        """
        url = self.url(transfer.path)
        sink = transfer.sink
        if transfer.no_ranges:
            return BootError(
                f"{url}: the server does not answer range requests with the bytes asked "
                "for, which reading an image in place needs; download the image and give "
                "its local path"
            )
        if sink is not None and sink.error is not None:
            return sink.error
        if transfer.error is None:
            return None
        if transfer.refused is not None:
            return BootError(transfer.refused)
        code, message = transfer.error
        status = int(transfer.handle.getinfo(pycurl.RESPONSE_CODE) or 0)
        if code == pycurl.E_HTTP_RETURNED_ERROR:
            if status in (404, 410):
                return NotFound(f"{url}: not found (HTTP {status})")
            if status in (408, 429) or status >= 500:
                return TransientError(f"{url}: server answered HTTP {status}")
            return BootError(f"{url}: server answered HTTP {status}")
        if code in (pycurl.E_REMOTE_FILE_NOT_FOUND, pycurl.E_FTP_COULDNT_RETR_FILE):
            if 400 <= status < 500:
                return TransientError(f"{url}: server answered FTP {status}, try again later")
            return NotFound(f"{url}: not found")
        if code == pycurl.E_REMOTE_ACCESS_DENIED and self.scheme == "ftp":
            return NotFound(f"{url}: not found (the server refused to enter its directory)")
        if code == pycurl.E_PEER_FAILED_VERIFICATION:
            return BootError(f"{url}: {_tls_hint(message)}")
        if code == pycurl.E_FILESIZE_EXCEEDED:
            return BootError(
                f"{url}: file is larger than the limit of {self.options.max_size} "
                "bytes (--max-size)"
            )
        if code == pycurl.E_UNSUPPORTED_PROTOCOL and "redirect" in message.lower():
            return BootError(f"{url}: refused a redirect to another scheme ({message})")
        if code == pycurl.E_TOO_MANY_REDIRECTS:
            return BootError(f"{url}: more than {MAX_REDIRECTS} redirects")
        if code in _RESUME_REFUSED:
            return _ResumeRefused(f"{url}: the server cannot resume a transfer")
        if code == pycurl.E_OPERATION_TIMEDOUT:
            return TransientError(f"{url}: {self._timeout_text()}")
        if code in _TRANSIENT:
            return TransientError(f"{url}: {_TRANSIENT[code] or _clean_message(message)}")
        return BootError(f"{url}: {_clean_message(message)}")

    def _timeout_text(self) -> str:
        return f"no progress for {self.options.timeout:g} s (--timeout)"

    def _with_retries(self, transfers: List[_Transfer]) -> None:
        """Run transfers, retrying transient failures with backoff.

        A transfer cut in the middle resumes where it stopped (HTTP Range,
        FTP REST); a server that cannot resume gets a fresh start.
        """
        pending = transfers
        for attempt in range(self.options.retries + 1):
            self._run(pending)
            failed = []
            last: Optional[BootError] = None
            for transfer in pending:
                error = self._error(transfer) or _incomplete(transfer)
                if error is None:
                    continue
                if not isinstance(error, TransientError) or attempt == self.options.retries:
                    raise error
                if not self.options.may_retry(retry_delay(attempt)):
                    raise BootError(f"{error}; no time left to retry before libxl's timeout")
                failed.append(transfer)
                last = error
            if not failed:
                return
            delay = retry_delay(attempt)
            self.options.note(f"{last}; retrying in {delay:g} s")
            time.sleep(delay)
            pending = [self._again(transfer) for transfer in failed]

    def _again(self, transfer: _Transfer) -> _Transfer:
        """A new request for a failed transfer: resumed if bytes arrived, else fresh."""
        sink = transfer.sink
        handle = self._handle(self._real_url(transfer.path), nobody=sink is None)
        again = _Transfer(handle, transfer.path, sink, transfer.probe)
        if transfer.span is not None and sink is not None:
            done = sink.written - transfer.base
            again.span, again.base = transfer.span, transfer.base
            again.check_range = transfer.check_range
            handle.setopt(pycurl.RANGE, f"{transfer.span[0] + done}-{transfer.span[1] - 1}")
            handle.setopt(pycurl.HEADERFUNCTION, again.header)
            sink.error = None
        elif sink is not None:
            if isinstance(self._error(transfer), _ResumeRefused) or sink.written == 0:
                sink.rewind()
            else:
                again.offset = sink.written
                handle.setopt(pycurl.RESUME_FROM_LARGE, sink.written)
            sink.error = None
        return again

    # -- the Tree interface ----------------------------------------------------

    def stat(self, path: str) -> FileInfo:
        transfer = _Transfer(self._handle(self._real_url(path), nobody=True), path, None)
        transfer.handle.setopt(pycurl.HEADERFUNCTION, transfer.header)
        try:
            self._with_retries([transfer])
        except (NotFound, TransientError):
            raise
        except BootError:
            if _redirected_to_slash(path, transfer):
                return FileInfo(directory=True)  # a directory without a listing (403)
            status = int(transfer.handle.getinfo(pycurl.RESPONSE_CODE) or 0)
            if not (self.scheme.startswith("http") and status in (405, 501)):
                raise
            return self._probe(path)
        return _file_info(transfer.handle, transfer.etag, _is_directory(path, transfer))

    @property
    def parallel_stats(self) -> bool:  # type: ignore[override]
        """http(s) overlaps requests on the pool; FTP would log in once per request."""
        return self.scheme.startswith("http")

    def stat_many(self, paths: Sequence[str],
                  reads: Optional[Mapping[str, int]] = None) -> Dict[str, Answer]:
        """HEADs and small GETs run together on the multi handle, :data:`PARALLEL_STATS` at a time."""
        if not self.parallel_stats:
            return super().stat_many(paths, reads)
        limits = dict(reads or {})
        wanted = list(dict.fromkeys([*limits, *paths]))
        answers: Dict[str, Answer] = {}
        for start in range(0, len(wanted), PARALLEL_STATS):
            chunk = wanted[start:start + PARALLEL_STATS]
            answers.update(self._answer_all([self._asking(path, limits.get(path)) for path in chunk]))
        return answers

    def _asking(self, path: str, limit: Optional[int]) -> _Transfer:
        """A HEAD for *path*, or a GET of at most *limit* bytes into memory."""
        sink = None if limit is None else Sink(io.BytesIO(), self.url(path), max_size=limit)
        transfer = _Transfer(self._handle(self._real_url(path), nobody=sink is None), path, sink)
        transfer.handle.setopt(pycurl.HEADERFUNCTION, transfer.header)
        return transfer

    def _answer_all(self, transfers: List[_Transfer]) -> Dict[str, Answer]:
        """Run *transfers* together, retrying the transient failures; one answer each."""
        answers: Dict[str, Answer] = {}
        pending = transfers
        for attempt in range(self.options.retries + 1):
            self._run(pending)
            failed: List[Tuple[_Transfer, BootError]] = []
            refused: List[str] = []
            # Every handle is read before any is reused (by _probe or a retry).
            for transfer in pending:
                error = self._error(transfer) or _incomplete(transfer)
                if error is None:
                    answers[transfer.path] = _answer(transfer)
                elif isinstance(error, TransientError) and attempt < self.options.retries:
                    if self.options.may_retry(retry_delay(attempt)):
                        failed.append((transfer, error))
                    else:
                        answers[transfer.path] = BootError(
                            f"{error}; no time left to retry before libxl's timeout")
                elif transfer.sink is None and _redirected_to_slash(transfer.path, transfer):
                    # a directory without a listing: nginx's 301 to ``dir/``, then 403
                    answers[transfer.path] = FileInfo(directory=True)
                elif transfer.sink is None and self.scheme.startswith("http") and int(
                        transfer.handle.getinfo(pycurl.RESPONSE_CODE) or 0) in (405, 501):
                    refused.append(transfer.path)
                else:
                    answers[transfer.path] = error
            for path in refused:  # a server refusing HEAD: one by one, as stat() does
                answers[path] = answer_of(functools.partial(self._probe, path))
            if not failed:
                break
            delay = retry_delay(attempt)
            self.options.note(f"{failed[-1][1]}; retrying in {delay:g} s")
            time.sleep(delay)
            pending = [self._again(transfer) for transfer, _ in failed]
            for transfer in pending:
                transfer.handle.setopt(pycurl.HEADERFUNCTION, transfer.header)
        return answers

    def _probe(self, path: str) -> FileInfo:
        """Existence check for servers that refuse HEAD: start a GET, stop at once."""
        transfer = _Transfer(self._handle(self._real_url(path), nobody=False), path, None, probe=True)
        self._run([transfer])
        if not transfer.started:
            error = self._error(transfer)
            if error is not None:
                raise error
        return _file_info(transfer.handle)

    def fetch(self, path: str, sink: Sink) -> None:
        self.fetch_many([(path, sink)])

    def fetch_many(self, jobs: Sequence[Tuple[str, Sink]]) -> None:
        transfers = [
            _Transfer(self._handle(self._real_url(path), nobody=False), path, sink)
            for path, sink in jobs
        ]
        self._with_retries(transfers)
        for transfer, (path, sink) in zip(transfers, jobs):
            sink.check_complete()
            if self.options.verbose:
                final = redact(transfer.handle.getinfo(pycurl.EFFECTIVE_URL))
                if final != self.url(path):
                    self.options.note(f"{self.url(path)}: redirected to {final}")

    def fetch_span(self, path: str, start: int, end: int, sink: Sink) -> None:
        """Stream bytes ``[start, end)`` of *path* into *sink* (HTTP Range, FTP REST)."""
        if end <= start:
            return
        transfer = _Transfer(self._handle(self._real_url(path), nobody=False), path, sink)
        transfer.span, transfer.base = (start, end), sink.written
        transfer.check_range = self.scheme.startswith("http")
        transfer.handle.setopt(pycurl.RANGE, f"{start}-{end - 1}")
        transfer.handle.setopt(pycurl.HEADERFUNCTION, transfer.header)
        self._with_retries([transfer])

    def open_source(self, path: str, info: Optional[FileInfo] = None) -> "RangeSource":
        size = (info or self.stat(path)).size
        if size is None:
            raise BootError(f"{self.url(path)}: the server does not tell the size, "
                            "which reading an image in place needs")
        return RangeSource(self, path, size)

    def close(self) -> None:
        for handle in self._idle:
            handle.close()
        self._idle.clear()
        self._multi.close()


class _ResumeRefused(TransientError):
    """The server answered a resume request with the whole file or an error."""


#: libcurl errors a retry may cure, with a clearer text where libcurl's is obscure.
_TRANSIENT = {
    pycurl.E_COULDNT_CONNECT: "",
    pycurl.E_OPERATION_TIMEDOUT: "",
    pycurl.E_PARTIAL_FILE: "connection closed before the whole file arrived",
    pycurl.E_RECV_ERROR: "",
    pycurl.E_SEND_ERROR: "",
    pycurl.E_GOT_NOTHING: "the server closed the connection without answering",
    pycurl.E_FTP_ACCEPT_TIMEOUT: "",
    pycurl.E_FTP_CANT_GET_HOST: "",
    pycurl.E_FTP_WEIRD_PASV_REPLY: "",
    pycurl.E_FTP_WEIRD_SERVER_REPLY: "",
}
_RESUME_REFUSED = {pycurl.E_RANGE_ERROR, pycurl.E_FTP_COULDNT_USE_REST,
                   pycurl.E_BAD_DOWNLOAD_RESUME}


def _incomplete(transfer: _Transfer) -> Optional[BootError]:
    """A transfer libcurl thought complete but that ended short of its announced size."""
    sink = transfer.sink
    if sink is None or transfer.error is not None:
        return None
    if transfer.span is not None:
        want = transfer.span[1] - transfer.span[0]
        got = sink.written - transfer.base
        if got != want:
            return TransientError(f"{sink.name}: range request ended after {got} of {want} bytes")
        return None
    announced = int(transfer.handle.getinfo(pycurl.CONTENT_LENGTH_DOWNLOAD_T))
    if sink.expected is None and announced >= 0:
        sink.expected = transfer.offset + announced
    try:
        sink.check_complete()
    except BootError as exc:
        return exc
    return None


class RangeSource(ByteSource):
    """Random access to one remote file through range requests, for an image
    read in place (``--location=http://host/x.iso``).

    Image libraries read metadata in small pieces (pycdlib: one 2 KiB sector
    at a time), so small reads go through a cache of 128 KiB blocks with read
    ahead: opening an ISO costs a couple of requests, not dozens.  The files
    themselves are streamed with one request each (:meth:`copy_range`).
    """

    BLOCK = 128 * 1024
    READ_AHEAD = 4  # blocks fetched together on a miss (512 KiB)
    MAX_BLOCKS = 64  # cached blocks (8 MiB)
    DIRECT = 4 * BLOCK  # larger reads skip the cache
    #: Bytes fetched into the block cache (small reads: an image's metadata) per image.
    MAX_CACHED_BYTES = 256 << 20
    #: Requests allowed beyond one per REQUEST_QUANTUM bytes received: a crafted
    #: image cannot make the reader send endless tiny range requests.
    MAX_SMALL_REQUESTS = 4096
    REQUEST_QUANTUM = 256 << 10

    def __init__(self, tree: CurlTree, path: str, size: int) -> None:
        self._tree = tree
        self._path = path
        self._size = size
        self._blocks: "OrderedDict[int, bytes]" = OrderedDict()
        self.name = tree.url(path)
        #: Requests made and bytes received: for --verbose and the tests.
        self.requests = 0
        self.received = 0
        self.cached = 0

    @property
    def size(self) -> int:
        return self._size

    def _get(self, start: int, end: int) -> bytes:
        buf = io.BytesIO()
        sink = Sink(buf, self.name, max_size=end - start)
        sink.expected = end - start
        self.copy_range(start, end - start, sink)
        return buf.getvalue()

    def copy_range(self, offset: int, length: int, sink: Sink) -> None:
        end = min(offset + length, self._size)
        if offset + length > self._size:
            raise BootError(f"{self.name}: ends at byte {self._size}, before the "
                            f"{offset + length} needed (truncated image?)")
        before = sink.written
        self._tree.fetch_span(self._path, offset, end, sink)
        self.requests += 1
        self.received += sink.written - before
        if self.requests > self.MAX_SMALL_REQUESTS + self.received // self.REQUEST_QUANTUM:
            raise BootError(f"{self.name}: {self.requests} range requests for {self.received} "
                            "bytes (corrupt or crafted image?)")

    def pread(self, offset: int, length: int) -> bytes:
        end = min(offset + length, self._size)
        if offset < 0 or offset >= end:
            return b""
        if end - offset > self.DIRECT:
            return self._get(offset, end)
        first, last = offset // self.BLOCK, (end - 1) // self.BLOCK
        missing = [index for index in range(first, last + 1) if index not in self._blocks]
        if missing:
            count = -(-self._size // self.BLOCK)
            stop = min(count, max(missing[-1] + 1, missing[0] + self.READ_AHEAD))
            data = self._get(missing[0] * self.BLOCK, min(self._size, stop * self.BLOCK))
            self.cached += len(data)
            if self.cached > self.MAX_CACHED_BYTES:
                raise BootError(f"{self.name}: more than {self.MAX_CACHED_BYTES} bytes of image "
                                "metadata fetched (corrupt or crafted image?)")
            for number, index in enumerate(range(missing[0], stop)):
                self._blocks[index] = data[number * self.BLOCK:(number + 1) * self.BLOCK]
        parts = []
        for index in range(first, last + 1):
            self._blocks.move_to_end(index)
            parts.append(self._blocks[index])
        while len(self._blocks) > self.MAX_BLOCKS:
            self._blocks.popitem(last=False)
        joined = parts[0] if len(parts) == 1 else b"".join(parts)
        base = first * self.BLOCK
        return joined[offset - base:end - base]

    def close(self) -> None:
        self._blocks.clear()


def _file_info(handle: pycurl.Curl, etag: Optional[str] = None,
               directory: bool = False) -> FileInfo:
    size = int(handle.getinfo(pycurl.CONTENT_LENGTH_DOWNLOAD_T))
    mtime = int(handle.getinfo(pycurl.INFO_FILETIME))
    return FileInfo(size=size if size >= 0 else None, mtime=mtime if mtime >= 0 else None,
                    etag=etag, directory=directory)


def _answer(transfer: _Transfer) -> Answer:
    """What a finished :meth:`CurlTree.stat_many` transfer tells: the bytes, or the file's info."""
    if transfer.sink is not None:
        fileobj = transfer.sink.fileobj
        assert isinstance(fileobj, io.BytesIO)
        return fileobj.getvalue()
    return _file_info(transfer.handle, transfer.etag, _is_directory(transfer.path, transfer))


def _redirected_to_slash(path: str, transfer: _Transfer) -> bool:
    """The server sent the request for *path* on to ``path/``: a directory, whatever it answered there."""
    if not path or path.endswith("/"):
        return False
    try:
        final = str(transfer.handle.getinfo(pycurl.EFFECTIVE_URL) or "")
    except pycurl.error:  # libcurl refused the URL before any request
        return False
    return final.endswith("/" + quote(path.rsplit("/", 1)[-1], safe=_SAFE_PATH) + "/")


def _is_directory(path: str, transfer: _Transfer) -> bool:
    """An http answer for a directory: redirected to ``path/``, or an HTML page."""
    if _redirected_to_slash(path, transfer):
        return True
    kind = (transfer.content_type or b"").split(b";", 1)[0].strip().lower()
    return kind in (b"text/html", b"application/xhtml+xml")


def _clean_message(message: str) -> str:
    """libcurl's text, without trailing noise, on one line."""
    return re.sub(r"\s+", " ", message).strip().rstrip(".") or "transfer failed"


def open_tree(location: "Location", options: TransportOptions) -> CurlTree:
    return CurlTree(location, options)


__all__ = ["CurlTree", "RangeSource", "open_tree", "redact", "system_ca_bundle"]
