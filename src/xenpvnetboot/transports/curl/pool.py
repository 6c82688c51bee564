"""Connections shared by the trees of one boot that may connect to the same places.

A boot opens more than one tree on a server: the location, and for
``--verify`` the suite directory above it (``dists/<suite>/``).  Each tree
with its own libcurl multi handle would open its own connections, a round
trip (two or three with TLS) before its first request.  Trees share one
multi handle, and so its connection cache, when their address policy
(:class:`~..peers.PeerPolicy`) is the same: a connection libcurl reuses
was opened under the policy the reusing tree would have applied, since
libcurl calls OPENSOCKETFUNCTION only for new connections.
"""

from __future__ import annotations

from typing import Dict, Hashable, List

import pycurl

#: Connections open to one server at a time; the rest of a batch waits for a
#: free one (and reuses it where the server keeps connections alive).  What
#: browsers allow themselves: mirrors that limit connections per client
#: answer 503 beyond a few, and a small server's listen queue (Python's
#: http.server: 5) drops the SYNs of a wider burst, which costs a 1 s TCP
#: retransmission each, seconds in all.
MAX_HOST_CONNECTIONS = 6


class Pool:
    """A multi handle (its connection cache) and the idle easy handles of its trees."""

    def __init__(self, key: Hashable) -> None:
        self.key = key
        self.multi = pycurl.CurlMulti()
        self.multi.setopt(pycurl.M_MAX_HOST_CONNECTIONS, MAX_HOST_CONNECTIONS)
        self.idle: List[pycurl.Curl] = []
        self.users = 0

    def release(self) -> None:
        """One tree less; the last one closes the handles and their connections."""
        self.users -= 1
        if self.users > 0:
            return
        if _POOLS.get(self.key) is self:
            del _POOLS[self.key]
        for handle in self.idle:
            handle.close()
        self.idle.clear()
        self.multi.close()


_POOLS: Dict[Hashable, Pool] = {}


def pool_for(key: Hashable) -> Pool:
    """The pool of the open trees with *key* (their address policy), or a new one."""
    pool = _POOLS.get(key)
    if pool is None:
        pool = _POOLS[key] = Pool(key)
    pool.users += 1
    return pool


__all__ = ["MAX_HOST_CONNECTIONS", "Pool", "pool_for"]
