"""One libcurl request and what it tells: status, headers, range, errors.

Everything a transfer needs to judge its own answer lives here, so that
the tree (:mod:`.tree`) only drives transfers and retries them.
"""

from __future__ import annotations

import io
import re
from typing import TYPE_CHECKING, Optional, Tuple
from urllib.parse import quote

import pycurl

from ...errors import BootError, NotFound, TransientError
from ..base import (Answer, FileInfo, Sink, TransportOptions)
from ..peers import PeerPolicy, address_class, refusal

if TYPE_CHECKING:
    pass

MAX_REDIRECTS = 5
#: How much of an HTTP error answer's body a lookup reads (and drops) to
#: keep its connection; a longer one is cut, and the connection with it.
ERROR_BODY_LIMIT = 64 << 10
#: Characters left as they are in the path of a URL we build.
SAFE_PATH = "/~!$&'()*+,;=:@-._"


class _Transfer:
    """One request on the multi handle, with what it needs to report on itself."""

    def __init__(
        self, handle: pycurl.Curl, path: str, sink: Optional[Sink], probe: bool = False,
        lookup: bool = False,
    ) -> None:
        self.handle = handle
        #: A lookup without FAILONERROR (see ``CurlTree._run``): the HTTP
        #: status read from the headers decides, and an error body is dropped.
        self.lookup = lookup
        self._error_body = 0
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
        if self.lookup and self.status >= 400:
            self._error_body += len(data)
            return len(data) if self._error_body <= ERROR_BODY_LIMIT else 0
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

    def judge_status(self) -> None:
        """A lookup's HTTP error status as the failure FAILONERROR would have given."""
        if not (self.lookup and self.status >= 400):
            return
        # No error yet, or the one of an error body cut at ERROR_BODY_LIMIT.
        if self.error is None or self.error[0] == pycurl.E_WRITE_ERROR:
            self.error = (pycurl.E_HTTP_RETURNED_ERROR,
                          f"The requested URL returned error: {self.status}")

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
        if self.lookup and self.status >= 400:
            return 0  # an error answer's size is not the file's
        if sink is not None and sink.expected is None and dltotal > 0 and self.span is None:
            try:
                sink.expect(self.offset + dltotal)
            except BootError:
                return 1
        return 0


def failure_of(transfer: "_Transfer", url: str, scheme: str,
           options: TransportOptions) -> Optional[BootError]:
    """The failure of a finished transfer as one clear error naming the URL.

    :class:`TransientError` marks what a retry may cure.
    """
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
    if code == pycurl.E_REMOTE_ACCESS_DENIED and scheme == "ftp":
        return NotFound(f"{url}: not found (the server refused to enter its directory)")
    if code == pycurl.E_PEER_FAILED_VERIFICATION:
        return BootError(f"{url}: {_tls_hint(message)}")
    if code == pycurl.E_FILESIZE_EXCEEDED:
        return BootError(
            f"{url}: file is larger than the limit of {options.max_size} "
            "bytes (--max-size)"
        )
    if code == pycurl.E_UNSUPPORTED_PROTOCOL and "redirect" in message.lower():
        return BootError(f"{url}: refused a redirect to another scheme ({message})")
    if code == pycurl.E_TOO_MANY_REDIRECTS:
        return BootError(f"{url}: more than {MAX_REDIRECTS} redirects")
    if code in _RESUME_REFUSED:
        return _ResumeRefused(f"{url}: the server cannot resume a transfer")
    if code == pycurl.E_OPERATION_TIMEDOUT:
        return TransientError(f"{url}: no progress for {options.timeout:g} s (--timeout)")
    if code in _TRANSIENT:
        return TransientError(f"{url}: {_TRANSIENT[code] or _clean_message(message)}")
    return BootError(f"{url}: {_clean_message(message)}")


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
    return final.endswith("/" + quote(path.rsplit("/", 1)[-1], safe=SAFE_PATH) + "/")


def _is_directory(path: str, transfer: _Transfer) -> bool:
    """An http answer for a directory: redirected to ``path/``, or an HTML page."""
    if _redirected_to_slash(path, transfer):
        return True
    kind = (transfer.content_type or b"").split(b";", 1)[0].strip().lower()
    return kind in (b"text/html", b"application/xhtml+xml")


def _clean_message(message: str) -> str:
    """libcurl's text, without trailing noise, on one line."""
    return re.sub(r"\s+", " ", message).strip().rstrip(".") or "transfer failed"


def _tls_hint(message: str) -> str:
    return (
        f"TLS certificate verification failed ({message}); "
        "trust a private CA with --ca-cert=FILE"
    )
