"""The tree of an http(s) or ftp base URL: handles, the multi loop, retries."""

from __future__ import annotations

import io
import os
import time
import functools
from typing import TYPE_CHECKING, Dict, List, Mapping, Optional, Sequence, Tuple
from urllib.parse import quote

import pycurl

from ... import __version__
from ...errors import BootError, NotFound, TransientError, UsageError
from ..base import (Answer, FileInfo, Sink, TransportOptions, Tree, answer_of, join_url_path,
                    retry_delay)

if TYPE_CHECKING:
    from ...location import Location
from .pool import MAX_HOST_CONNECTIONS, pool_for
from .ranges import RangeSource
from .transfer import (MAX_REDIRECTS, SAFE_PATH, _answer, _file_info, _incomplete, _is_directory,
                       _redirected_to_slash, _ResumeRefused, _Transfer, failure_of)

#: libcurl's largest receive buffer: fewer, larger write callbacks.
BUFFER_SIZE = 512 * 1024
#: Requests :meth:`CurlTree.stat_many` hands libcurl together: a layout
#: search's first batch fits.
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


def redact(url: str) -> str:
    """The URL without its password, for messages and logs."""
    from ...location.model import redact_text

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
        self._pool = pool_for(self._peers)
        self._multi = self._pool.multi
        self._idle = self._pool.idle
        self._closed = False

    # -- URLs and handles ------------------------------------------------------

    def url(self, path: str) -> str:
        return join_url_path(self._shown, quote(path, safe=SAFE_PATH))

    def _real_url(self, path: str) -> str:
        return join_url_path(self.base, quote(path, safe=SAFE_PATH))

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
            transfer.handle.setopt(pycurl.HEADERFUNCTION, transfer.header)
            # libcurl closes the connection when FAILONERROR turns an HTTP
            # error into a failure: every 404 of a layout search would cost
            # a new connection (a round trip more, two or three with TLS).
            # A lookup judges the status read from the headers instead and
            # lets libcurl read the small error body, keeping the connection.
            transfer.handle.setopt(pycurl.FAILONERROR, 0 if transfer.lookup else 1)
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
                        by_handle[id(handle)].judge_status()
                        remaining -= 1
                    for handle, code, message in failed:
                        by_handle[id(handle)].error = (code, message)
                        by_handle[id(handle)].judge_status()
                        remaining -= 1
                    if not queued:
                        break
                if remaining:
                    # libcurl's own timer counts too: a request held back by
                    # the connection cap starts on it when a connection frees.
                    due = multi.timeout()
                    wait = 1.0 if due < 0 else min(1.0, due / 1000)
                    if wait > 0:
                        multi.select(wait)
        finally:
            for transfer in transfers:
                multi.remove_handle(transfer.handle)
                self._idle.append(transfer.handle)

    def _error(self, transfer: _Transfer) -> Optional[BootError]:
        return failure_of(transfer, self.url(transfer.path), self.scheme, self.options)

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
        again = _Transfer(handle, transfer.path, sink, transfer.probe, transfer.lookup)
        if transfer.span is not None and sink is not None:
            done = sink.written - transfer.base
            again.span, again.base = transfer.span, transfer.base
            again.check_range = transfer.check_range
            handle.setopt(pycurl.RANGE, f"{transfer.span[0] + done}-{transfer.span[1] - 1}")
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
        transfer = _Transfer(self._handle(self._real_url(path), nobody=True), path, None,
                             lookup=True)
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

    @property
    def round_width(self) -> Optional[int]:
        """Requests answered in one round trip: plain http carries one request per
        connection at a time; https may multiplex many over one (HTTP/2)."""
        return MAX_HOST_CONNECTIONS if self.scheme == "http" else None

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
        return _Transfer(self._handle(self._real_url(path), nobody=sink is None), path, sink,
                         lookup=True)

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
        self._with_retries([transfer])

    def open_source(self, path: str, info: Optional[FileInfo] = None) -> "RangeSource":
        size = (info or self.stat(path)).size
        if size is None:
            raise BootError(f"{self.url(path)}: the server does not tell the size, "
                            "which reading an image in place needs")
        return RangeSource(self, path, size)

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._pool.release()


def open_tree(location: "Location", options: TransportOptions) -> CurlTree:
    return CurlTree(location, options)


__all__ = ["MAX_HOST_CONNECTIONS", "CurlTree", "RangeSource", "open_tree", "redact", "system_ca_bundle"]
