"""A hostile FTP server: replies that never end, lines without end, lies about sizes.

A raw socket server plays the part (no FTP library would misbehave like
this); each case must end in bounded time with one error line naming the
URL, nothing left behind.
"""

from __future__ import annotations

import socket
import threading
import time

import pytest
from support.libxl import run_bootloader


class HostileFTP:
    """Answers each connection with *script*: a function given the socket."""

    def __init__(self, script) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(4)
        self.script = script
        self.stopped = False
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"ftp://127.0.0.1:{self.sock.getsockname()[1]}/tree/"

    def _serve(self) -> None:
        while not self.stopped:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._run, args=(conn,), daemon=True).start()

    def _run(self, conn) -> None:
        try:
            self.script(conn, self)
        except OSError:
            pass
        finally:
            conn.close()

    def stop(self) -> None:
        self.stopped = True
        self.sock.close()


def endless_multiline(conn, server) -> None:
    """A greeting that says more is coming, for ever, at full speed."""
    line = b"220-" + b"x" * 70 + b"\r\n"
    block = line * 1000
    deadline = time.monotonic() + 60
    while not server.stopped and time.monotonic() < deadline:
        conn.sendall(block)


def endless_line(conn, server) -> None:
    """A reply line that never ends."""
    conn.sendall(b"220 ")
    block = b"y" * 65536
    deadline = time.monotonic() + 60
    while not server.stopped and time.monotonic() < deadline:
        conn.sendall(block)


def huge_size(conn, server) -> None:
    """A server that claims the kernel is a petabyte."""
    reader = conn.makefile("rb")
    conn.sendall(b"220 hello\r\n")
    while True:
        command = reader.readline()
        if not command:
            return
        verb = command.split(b" ", 1)[0].strip().upper()
        reply = {
            b"USER": b"331 password\r\n", b"PASS": b"230 ok\r\n", b"PWD": b'257 "/"\r\n',
            b"TYPE": b"200 ok\r\n", b"MDTM": b"213 20240101000000\r\n",
            b"SIZE": b"213 1125899906842624\r\n", b"EPSV": b"500 no\r\n", b"PASV": b"500 no\r\n",
        }.get(verb, b"502 no\r\n")
        conn.sendall(reply)


@pytest.mark.parametrize("script, words", [
    (endless_multiline, ""),
    (endless_line, ""),
    (huge_size, "--max-size"),
])
def test_hostile_ftp_server(script, words, workdir):
    server = HostileFTP(script)
    try:
        start = time.monotonic()
        run = run_bootloader([f"--location={server.url}", "--timeout=5", "--retries=0"], workdir,
                             kernel="vmlinuz", ramdisk="initrd.img", timeout=60)
        took = time.monotonic() - start
    finally:
        server.stop()
    assert run.status == 1, run.console
    assert took < 30, took
    errors = run.error_lines
    assert len(errors) == 1 and "ftp://127.0.0.1" in errors[0], run.console
    assert words in errors[0]
    assert "Traceback" not in run.console
    assert run.leftovers == [] and run.output_unchanged
