"""A real HTTP(S) server on loopback for the tests, with switchable faults.

It serves a directory with HEAD, Content-Length and Range support, acts as a
forward proxy when asked for an absolute URL, and misbehaves on request for
the fault-tolerance tests (``server.faults[path] = "cut"`` etc.).
"""

from __future__ import annotations

import http.server
import os
import socket
import ssl
import threading
import time
from typing import Dict, List, Optional
from urllib.parse import unquote, urlsplit


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: "TestHTTPServer"

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        pass

    def do_HEAD(self) -> None:
        self._serve(head=True)

    def do_GET(self) -> None:
        self._serve(head=False)

    def _serve(self, head: bool) -> None:
        target = self.path
        proxied = target.startswith(("http://", "https://"))
        if proxied:
            self.server.proxied.append(target)
            target = urlsplit(target).path or "/"
        path = unquote(target.split("?", 1)[0])
        self.server.requests.append((self.command, path, self.headers.get("Range")))
        self.server.authorizations.append(self.headers.get("Authorization"))
        fault = self.server.next_fault(path, head)
        if fault == "refuse-head" and head:
            return self._empty(405)
        if fault in ("503", "429", "500", "403"):
            return self._empty(int(fault))
        if isinstance(fault, tuple) and fault[0] == "error-page":
            return self._error_page(fault[1], fault[2], head)
        if isinstance(fault, tuple) and fault[0] == "redirect":
            return self._redirect(fault[1])
        if fault == "endless":
            return self._endless(head)
        full = os.path.normpath(os.path.join(self.server.root, path.lstrip("/")))
        if not full.startswith(self.server.root) or not os.path.isfile(full):
            return self._empty(404)
        size = os.path.getsize(full)
        if fault == "cut":
            return self._cut(full, size, head)
        if fault == "stall":
            return self._stall(size, head)
        if fault == "slow":
            return self._slow(full, size, head)
        start, end, status = 0, size - 1, 200
        rng = self.headers.get("Range") if fault != "norange" else None
        if rng and rng.startswith("bytes=") and "," not in rng:
            first, _, last = rng[6:].partition("-")
            start = int(first) if first else max(0, size - int(last))
            end = int(last) if (first and last) else size - 1
            status = 206
            if fault == "shifted-range" and end < size - 1:  # other bytes than asked for
                start, end = start + 1, end + 1
        self.send_response(status)
        self.send_header("Content-Length", str(end - start + 1))
        self.send_header("Accept-Ranges", "bytes")
        if status == 206:
            self.send_header("Content-Range", f"bytes {start}-{end}/{size}")
        self._validators(full)
        self.end_headers()
        if head:
            return
        with open(full, "rb") as handle:
            handle.seek(start)
            remaining = end - start + 1
            while remaining > 0:
                data = handle.read(min(remaining, 1 << 20))
                if not data:
                    break
                self.wfile.write(data)
                remaining -= len(data)
                self.server.bytes_sent += len(data)

    def _error_page(self, status: int, size: int, head: bool) -> None:
        """An error answer with an HTML body of *size* bytes, as nginx and Apache send."""
        self.send_response(status)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(size))
        self.end_headers()
        if not head:
            try:
                for start in range(0, size, 1 << 16):
                    self.wfile.write(b"x" * min(1 << 16, size - start))
                    self.server.error_bytes_sent += min(1 << 16, size - start)
            except OSError:
                self.close_connection = True

    def _empty(self, status: int) -> None:
        self.send_response(status)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def _redirect(self, location: str) -> None:
        self.send_response(302)
        self.send_header("Location", location)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def _endless(self, head: bool) -> None:
        """A body without length that never ends (until the client gives up)."""
        self.send_response(200)
        self.send_header("Connection", "close")
        self.end_headers()
        self.close_connection = True
        if head:
            return
        block = b"\0" * 65536
        try:
            while True:
                self.wfile.write(block)
        except OSError:
            pass

    def _validators(self, full: str) -> None:
        st = os.stat(full)
        self.send_header("Last-Modified", self.date_time_string(int(st.st_mtime)))
        self.send_header("ETag", f'"{st.st_ino:x}-{st.st_size:x}-{st.st_mtime_ns:x}"')

    def _slow(self, full: str, size: int, head: bool) -> None:
        """The whole file, 4 KiB every 20 ms."""
        self.send_response(200)
        self.send_header("Content-Length", str(size))
        self._validators(full)
        self.end_headers()
        if head:
            return
        with open(full, "rb") as handle:
            try:
                for block in iter(lambda: handle.read(4096), b""):
                    self.wfile.write(block)
                    self.wfile.flush()
                    time.sleep(0.02)
            except OSError:
                pass

    def _stall(self, size: int, head: bool) -> None:
        """Send the headers and a little data, then nothing for a long time."""
        self.send_response(200)
        self.send_header("Content-Length", str(size))
        self.end_headers()
        if not head:
            self.wfile.write(b"x" * min(size, 1000))
            self.wfile.flush()
            time.sleep(30)

    def _cut(self, full: str, size: int, head: bool) -> None:
        """Announce the whole file, send half of it, close the connection."""
        self.send_response(200)
        self.send_header("Content-Length", str(size))
        self.end_headers()
        if not head:
            with open(full, "rb") as handle:
                self.wfile.write(handle.read(size // 2))
            self.wfile.flush()
            time.sleep(0.05)
        self.close_connection = True
        try:
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass


class TestHTTPServer(http.server.ThreadingHTTPServer):
    __test__ = False  # a helper, not a test class
    daemon_threads = True
    allow_reuse_address = True
    #: Layout detection asks many paths at once; the default backlog of 5
    #: would drop SYNs and cost seconds of retries.
    request_queue_size = 128
    #: TCP connections accepted, and body bytes of error pages sent (class
    #: defaults: subclasses built without this __init__ count too).
    connections = 0
    error_bytes_sent = 0

    def __init__(self, root: str, host: str = "127.0.0.1", tls: Optional[ssl.SSLContext] = None) -> None:
        self.address_family = socket.AF_INET6 if ":" in host else socket.AF_INET
        super().__init__((host, 0), _Handler)
        self.root = os.path.realpath(root)
        self.faults: Dict[str, object] = {}
        self.requests: List[tuple] = []
        self.proxied: List[str] = []
        self.bytes_sent = 0  # body bytes of normal answers
        self.authorizations: List[Optional[str]] = []  # the Authorization header of each request
        self.tls = tls
        if tls is not None:
            self.socket = tls.wrap_socket(self.socket, server_side=True)
        self.host = host
        self._thread = threading.Thread(target=self.serve_forever, daemon=True)

    def process_request(self, request, client_address) -> None:  # type: ignore[no-untyped-def]
        self.connections += 1
        super().process_request(request, client_address)

    def next_fault(self, path: str, head: bool) -> object:
        """The behaviour for this request: a fault, or a list consumed in order."""
        fault = self.faults.get(path)
        if isinstance(fault, list):
            if head and fault and fault[0] not in ("refuse-head", "503"):
                return None  # a HEAD does not use up a fault meant for the GET
            return fault.pop(0) if fault else None
        return fault

    @property
    def port(self) -> int:
        return self.server_address[1]

    def url(self, path: str = "") -> str:
        scheme = "https" if self.tls else "http"
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{scheme}://{host}:{self.port}/{path.lstrip('/')}"

    def start(self) -> "TestHTTPServer":
        self._thread.start()
        return self

    def stop(self) -> None:
        self.shutdown()
        self.server_close()
