"""``Tree.stat_many``: many existence checks and small reads in one batch.

Against the real loopback server: one answer per path whatever the others
did (a 404, a 403, a 503 cured by a retry, a server refusing HEAD), the
reads bounded, and the sequential default giving the same answers.
"""

from __future__ import annotations

import os
import time

import pytest
from support.layout_trees import TreeServer

from xenpvnetboot.errors import BootError, NotFound, TransientError
from xenpvnetboot.location import open_location
from xenpvnetboot.transports import FileInfo, TransportOptions
from xenpvnetboot.transports.curl.tree import MAX_HOST_CONNECTIONS
from xenpvnetboot.transports.local import LocalTree

OPTIONS = TransportOptions(retries=1, timeout=10)


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    base = tmp_path_factory.mktemp("stat-many")
    (base / "dir").mkdir()
    (base / "dir" / "kernel").write_bytes(b"k" * 1000)
    (base / "marker").write_bytes(b"Debian GNU/Linux 12\n")
    (base / "big").write_bytes(b"b" * 5000)
    return str(base)


@pytest.fixture
def server(root):
    started = TreeServer(root, directories="403", quiet=0.2).start()
    yield started
    started.stop()


def test_one_batch_one_answer_per_path(server):
    server.faults["/forbidden"] = "403"
    with open_location(server.url(""), OPTIONS) as tree:
        assert tree.parallel_stats
        answers = tree.stat_many(["dir/kernel", "missing", "forbidden", "dir", "dir/"],
                                 {"marker": 100, "gone": 100, "big": 100})
    assert answers["dir/kernel"].size == 1000 and not answers["dir/kernel"].directory
    assert isinstance(answers["missing"], NotFound) and isinstance(answers["gone"], NotFound)
    assert isinstance(answers["forbidden"], BootError) and "403" in str(answers["forbidden"])
    assert answers["dir"] == FileInfo(directory=True)  # 301 to dir/, then 403
    assert isinstance(answers["dir/"], BootError) and not isinstance(answers["dir/"], NotFound)
    assert answers["marker"] == b"Debian GNU/Linux 12\n"
    assert isinstance(answers["big"], BootError) and "100 bytes" in str(answers["big"])
    methods = {path: method for method, path, _ in server.log}
    assert methods["/marker"] == "GET" and methods["/dir/kernel"] == "HEAD"
    redirects = [path for _, path, _ in server.log if path == "/dir/"]
    assert len(redirects) == 2  # asked as dir/, and reached from dir
    # 8 requests over MAX_HOST_CONNECTIONS connections, and the redirect of
    # dir followed in one more exchange
    assert server.rounds() <= -(-8 // MAX_HOST_CONNECTIONS) + 1


def test_transient_failures_are_retried_others_are_not(server):
    server.faults["/dir/kernel"] = ["503"]
    with open_location(server.url(""), OPTIONS) as tree:
        answers = tree.stat_many(["dir/kernel", "missing"])
    assert answers["dir/kernel"].size == 1000
    asked = [path for _, path, _ in server.log]
    assert asked.count("/dir/kernel") == 2 and asked.count("/missing") == 1


def test_a_lasting_503_is_the_answer_of_that_path_only(server):
    server.faults["/dir/kernel"] = "503"
    with open_location(server.url(""), OPTIONS) as tree:
        answers = tree.stat_many(["dir/kernel", "marker"])
    assert isinstance(answers["dir/kernel"], TransientError)
    assert answers["marker"].size == len(b"Debian GNU/Linux 12\n")


def test_a_server_refusing_head_is_asked_with_a_get(server):
    for path in ("/dir/kernel", "/marker", "/missing"):
        server.faults[path] = "refuse-head"
    with open_location(server.url(""), OPTIONS) as tree:
        answers = tree.stat_many(["dir/kernel", "marker", "missing"])
    assert answers["dir/kernel"].size == 1000 and answers["marker"].size == 20
    assert isinstance(answers["missing"], NotFound)
    assert [method for method, path, _ in server.log if path == "/dir/kernel"] == ["HEAD", "GET"]


def test_more_paths_than_the_pool_holds(server):
    from xenpvnetboot.transports.curl import PARALLEL_STATS

    paths = [f"missing-{number}" for number in range(PARALLEL_STATS + 3)] + ["dir/kernel"]
    with open_location(server.url(""), OPTIONS) as tree:
        answers = tree.stat_many(paths)
    assert set(answers) == set(paths) and answers["dir/kernel"].size == 1000
    # PARALLEL_STATS handed over together, then the rest; each over the capped connections
    assert server.rounds() == -(-PARALLEL_STATS // MAX_HOST_CONNECTIONS) + 1


def test_the_sequential_default_gives_the_same_answers(root):
    tree = LocalTree(root)
    assert not tree.parallel_stats
    answers = tree.stat_many(["dir/kernel", "missing", "dir"], {"marker": 100, "big": 100})
    assert answers["dir/kernel"].size == 1000
    assert isinstance(answers["missing"], NotFound) and isinstance(answers["dir"], NotFound)
    assert answers["marker"] == b"Debian GNU/Linux 12\n"
    assert isinstance(answers["big"], BootError)
    assert os.path.getsize(os.path.join(root, "big")) == 5000


def test_lookups_keep_their_connections_through_error_answers(server):
    """404 and 403 pages (with bodies, as nginx sends them) do not cost a new
    connection each: libcurl's FAILONERROR would close the connection after
    every one, a round trip more per request on a link (two or three with TLS)."""
    missing = [f"missing-{number}" for number in range(18)]
    for path in missing:
        server.faults["/" + path] = ("error-page", 404, 153)
    server.faults["/forbidden"] = ("error-page", 403, 150)
    with open_location(server.url(""), OPTIONS) as tree:
        answers = tree.stat_many(missing + ["forbidden"], {"marker": 100})
        again = tree.stat_many(["dir/kernel", "missing-0"])
    assert all(isinstance(answers[path], NotFound) for path in missing)
    assert isinstance(answers["forbidden"], BootError) and "HTTP 403" in str(answers["forbidden"])
    assert answers["marker"] == b"Debian GNU/Linux 12\n"
    assert again["dir/kernel"].size == 1000 and isinstance(again["missing-0"], NotFound)
    assert len(server.log) == 22
    assert server.connections <= MAX_HOST_CONNECTIONS


def test_an_error_page_is_not_read_without_end(server):
    """A lookup drops an error answer's body; a body beyond the limit is cut
    (and its connection with it) rather than read to the end."""
    from xenpvnetboot.transports.curl.transfer import ERROR_BODY_LIMIT

    endless = 2048 * ERROR_BODY_LIMIT  # 128 MiB: far more than socket buffers hold
    server.faults["/huge-404"] = ("error-page", 404, endless)
    server.faults["/huge-403"] = ("error-page", 403, endless)
    with open_location(server.url(""), OPTIONS) as tree:
        answers = tree.stat_many([], {"huge-404": 100, "huge-403": 100})
    assert isinstance(answers["huge-404"], NotFound), answers["huge-404"]
    assert "huge-404: not found (HTTP 404)" in str(answers["huge-404"])
    assert "HTTP 403" in str(answers["huge-403"]) and not isinstance(answers["huge-403"], NotFound)
    time.sleep(0.2)  # the server's writes fail once the connection is gone
    assert server.error_bytes_sent < endless // 4


def test_a_retried_lookup_still_reads_its_status(server):
    """A lookup retried after a 503 must still tell a 404 (and keep the ETag of
    a file): the retry reads the answer's headers as the first attempt did."""
    server.faults["/missing"] = ["503"]
    server.faults["/dir/kernel"] = ["503"]
    with open_location(server.url(""), OPTIONS) as tree:
        with pytest.raises(NotFound, match="missing: not found"):
            tree.stat("missing")
        assert tree.stat("dir/kernel").size == 1000
        answers = tree.stat_many([], {"gone": 100})
    assert isinstance(answers["gone"], NotFound)
    assert [method for method, path, _ in server.log if path == "/missing"] == ["HEAD", "HEAD"]
