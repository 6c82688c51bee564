"""A test host of our own: a network namespace reached from this one over a veth.

Servers that must live at an address that is not loopback (an install
server that redirects to dom0's own loopback, say) are started inside it.
A listening socket belongs to the namespace it was created in, so the
in-process test servers are simply constructed on a thread that has entered
the namespace for a moment (:func:`entered`), and serve from there.
"""

from __future__ import annotations

import contextlib
import ctypes
import itertools
import os
import subprocess
from typing import Iterator, List

_CLONE_NEWNET = 0x40000000
_counter = itertools.count()


def _setns(fd: int) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.setns(fd, _CLONE_NEWNET) != 0:
        raise OSError(ctypes.get_errno(), "setns failed")


@contextlib.contextmanager
def entered(namespace: str) -> Iterator[None]:
    """Run the block with this thread inside *namespace*'s network stack."""
    home = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
    target = os.open(f"/run/netns/{namespace}", os.O_RDONLY)
    try:
        _setns(target)
        try:
            yield
        finally:
            _setns(home)
    finally:
        os.close(target)
        os.close(home)


class TestHost:
    """One namespace at :attr:`address`, this host at :attr:`peer` on the veth."""

    __test__ = False

    def __init__(self) -> None:
        number = (os.getpid() * 7 + next(_counter)) % 250 + 1
        self.namespace = f"xpnb-h{os.getpid()}-{number}"
        self.outside = f"xph{number}o{os.getpid() % 1000}"[:15]
        self.inside = f"xph{number}i{os.getpid() % 1000}"[:15]
        self.peer = f"10.231.{number}.1"
        self.address = f"10.231.{number}.2"
        #: A link-local address of the test host: a server there stands in for
        #: a metadata service, so that no test ever reaches a real one.
        self.link_local = f"169.254.{number}.2"
        self._created: List[str] = []

    @staticmethod
    def _run(argv: List[str]) -> None:
        subprocess.run(argv, check=True, timeout=20, stdout=subprocess.DEVNULL,
                       stderr=subprocess.PIPE)

    def __enter__(self) -> "TestHost":
        try:
            self._run(["ip", "netns", "add", self.namespace])
            self._created.append("ns")
            self._run(["ip", "link", "add", self.outside, "type", "veth", "peer", "name",
                       self.inside, "netns", self.namespace])
            self._created.append("link")
            self._run(["ip", "addr", "add", f"{self.peer}/30", "dev", self.outside])
            self._run(["ip", "addr", "add", f"{self.link_local[:-1]}1/24", "dev", self.outside])
            self._run(["ip", "link", "set", self.outside, "up"])
            self._run(["ip", "-n", self.namespace, "link", "set", "lo", "up"])
            for address in (f"{self.address}/30", f"{self.link_local}/24"):
                self._run(["ip", "-n", self.namespace, "addr", "add", address, "dev", self.inside])
            self._run(["ip", "-n", self.namespace, "link", "set", self.inside, "up"])
        except BaseException:
            self.close()
            raise
        return self

    def entered(self) -> "contextlib.AbstractContextManager[None]":
        return entered(self.namespace)

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if "link" in self._created:
            subprocess.run(["ip", "link", "del", self.outside], timeout=20,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        if "ns" in self._created:
            subprocess.run(["ip", "netns", "del", self.namespace], timeout=20,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self._created.clear()


def need_test_host() -> None:
    from .env import need_program, need_root

    need_root()
    need_program("ip", "iproute2")
