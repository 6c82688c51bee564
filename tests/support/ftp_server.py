"""A real FTP server (pyftpdlib) on loopback: anonymous and user/password, read-only."""

from __future__ import annotations

import threading

from pyftpdlib.authorizers import DummyAuthorizer
from pyftpdlib.handlers import FTPHandler
from pyftpdlib.servers import ThreadedFTPServer

USER = "installer"
PASSWORD = "s3cret:@/pw"


class TestFTPServer:
    def __init__(self, root: str) -> None:
        authorizer = DummyAuthorizer()
        authorizer.add_anonymous(root, perm="elr")
        authorizer.add_user(USER, PASSWORD, root, perm="elr")
        handler = type("Handler", (FTPHandler,), {"authorizer": authorizer, "banner": "test"})
        handler.log_prefix = ""
        self.server = ThreadedFTPServer(("127.0.0.1", 0), handler)
        self.port = self.server.address[1]
        self._thread = threading.Thread(target=self.server.serve_forever, kwargs={"handle_exit": False}, daemon=True)

    def url(self, path: str = "", auth: bool = False) -> str:
        from urllib.parse import quote

        cred = f"{USER}:{quote(PASSWORD, safe='')}@" if auth else ""
        return f"ftp://{cred}127.0.0.1:{self.port}/{path.lstrip('/')}"

    def start(self) -> "TestFTPServer":
        self._thread.start()
        return self

    def stop(self) -> None:
        self.server.close_all()
