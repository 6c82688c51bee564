"""A server cannot turn the bootloader against dom0's own network.

An install server at an ordinary address (a test host in a network
namespace of ours) redirects to dom0's loopback, to a link-local address
(where cloud metadata services live), to the unspecified address or to an
IPv4-mapped loopback address: each is refused, before any connection is
made, with one line naming the address.  A host name that resolves to
loopback (DNS rebinding; resolved through a private /etc/hosts) is refused
too, for http and NFS.  A location that names a loopback address itself is
the administrator's choice and works.
"""

from __future__ import annotations

import os
import sys

import pytest
from support import libxl
from support.http_server import TestHTTPServer
from support.libxl import run_bootloader
from support.netns import TestHost, need_test_host
from support.trees import expected

from xenpvnetboot.transports.peers import (LINK_LOCAL, LOOPBACK, UNSPECIFIED, PeerPolicy,
                                           address_class, host_class)

K = "OL6/images/pxeboot/vmlinuz"
R = "OL6/images/pxeboot/initrd.img"


@pytest.mark.parametrize("address, kind", [
    ("127.0.0.1", LOOPBACK), ("127.255.0.9", LOOPBACK), ("::1", LOOPBACK),
    ("::ffff:127.0.0.1", LOOPBACK), ("169.254.169.254", LINK_LOCAL), ("fe80::1", LINK_LOCAL),
    ("fe80::1%eth0", LINK_LOCAL), ("::ffff:169.254.1.1", LINK_LOCAL), ("0.0.0.0", UNSPECIFIED),
    ("0.1.2.3", UNSPECIFIED), ("::", UNSPECIFIED), ("[::1]", LOOPBACK),
    ("192.0.2.7", None), ("2001:db8::1", None), ("10.1.2.3", None), ("mirror.example", None),
])
def test_address_classes(address, kind):
    assert address_class(address) == kind


def test_policy_follows_what_the_location_names():
    assert host_class("localhost") == LOOPBACK and host_class("LOCALHOST.") == LOOPBACK
    named = PeerPolicy.named_by(["127.0.0.1"], environ={})
    assert named.permits("127.0.0.2") and not named.permits("169.254.169.254")
    plain = PeerPolicy.named_by(["mirror.example"], environ={})
    assert not plain.permits("127.0.0.1") and not plain.permits("::") and plain.permits("192.0.2.1")
    proxied = PeerPolicy.named_by(["mirror.example"], environ={"http_proxy": "http://127.0.0.1:3128"})
    assert proxied.permits("127.0.0.1")


@pytest.fixture(scope="module")
def outside_host():
    need_test_host()
    with TestHost() as host:
        yield host


@pytest.fixture
def redirector(outside_host, tmp_path):
    """An http server on the test host (not loopback) that redirects as told."""
    with outside_host.entered():
        server = TestHTTPServer(str(tmp_path), host=outside_host.address)
    server.start()
    yield server
    server.stop()


@pytest.mark.parametrize("target", [
    "http://127.0.0.1:{port}/{path}",
    "http://[::ffff:127.0.0.1]:{port}/{path}",
    "http://0.0.0.0:{port}/{path}",
    "http://{link_local}:{port}/{path}",
    "http://localhost:{port}/{path}",
])
def test_redirect_to_this_hosts_network_is_refused(redirector, outside_host, http_server, workdir,
                                                   target):
    url = target.format(port=http_server.port, path=K, link_local=outside_host.link_local)
    redirector.faults["/" + K] = ("redirect", url)
    before = len(http_server.requests)
    run = run_bootloader([f"--location={redirector.url('OL6')}"], workdir,
                         kernel="images/pxeboot/vmlinuz", ramdisk="images/pxeboot/initrd.img",
                         cmdline="", env={"no_proxy": "*"})
    assert run.status == 1, run.console
    assert "refused to connect to" in run.console and "that the location does not name" in run.console
    assert len(http_server.requests) == before, "the loopback server was reached"
    assert run.leftovers == [] and run.output_unchanged
    assert len(run.error_lines) == 1 and "Traceback" not in run.console


def test_redirect_between_ordinary_addresses_still_works(redirector, outside_host, sample_root, workdir):
    with outside_host.entered():
        origin = TestHTTPServer(sample_root, host=outside_host.address)
    origin.start()
    try:
        redirector.faults["/" + K] = ("redirect", origin.url(K))
        redirector.faults["/" + R] = ("redirect", origin.url(R))
        run = run_bootloader([f"--location={redirector.url('OL6')}"], workdir,
                             kernel="images/pxeboot/vmlinuz", ramdisk="images/pxeboot/initrd.img")
    finally:
        origin.stop()
    assert run.status == 0, run.console
    assert run.kernel == expected(K) and run.ramdisk == expected(R)


def test_location_naming_loopback_itself_works(http_server, workdir):
    run = run_bootloader([f"--location={http_server.url('OL6')}"], workdir)
    assert run.status == 0, run.console


# -- DNS rebinding: a name that resolves to loopback ------------------------------------

_PRIVATE_HOSTS = """\
import ctypes, os, sys
libc = ctypes.CDLL(None, use_errno=True)
CLONE_NEWNS, MS_REC, MS_PRIVATE, MS_BIND = 0x20000, 0x4000, 1 << 18, 4096
if libc.unshare(CLONE_NEWNS) != 0 or libc.mount(None, b"/", None, MS_REC | MS_PRIVATE, None) != 0:
    raise OSError(ctypes.get_errno(), "unshare/mount")
if libc.mount(os.environ["TEST_HOSTS"].encode(), b"/etc/hosts", None, MS_BIND, None) != 0:
    raise OSError(ctypes.get_errno(), "bind mount")
os.execv(sys.executable, [sys.executable, "-m", "xenpvnetboot"] + sys.argv[1:])
"""


@pytest.fixture
def rebinding_hosts(tmp_path, monkeypatch):
    """Run the bootloader with a private /etc/hosts where rebind.test is 127.0.0.1."""
    need_test_host()
    hosts = tmp_path / "hosts"
    hosts.write_text("127.0.0.1 localhost\n127.0.0.1 rebind.test\n")
    monkeypatch.setattr(libxl, "BOOTLOADER", [sys.executable, "-c", _PRIVATE_HOSTS])
    return {"TEST_HOSTS": str(hosts), "no_proxy": "*"}


def test_name_resolving_to_loopback_is_refused_for_http(rebinding_hosts, http_server, workdir):
    before = len(http_server.requests)
    run = run_bootloader([f"--location=http://rebind.test:{http_server.port}/OL6"], workdir,
                         env=rebinding_hosts)
    assert run.status == 1, run.console
    assert "refused to connect to 127.0.0.1" in run.console
    assert len(http_server.requests) == before
    assert run.leftovers == [] and run.output_unchanged


def test_name_resolving_to_loopback_is_refused_for_nfs(rebinding_hosts, workdir):
    run = run_bootloader(["--location=nfs:rebind.test:/srv/install"], workdir, env=rebinding_hosts)
    assert run.status == 1, run.console
    assert "refused to connect to 127.0.0.1" in run.console
    assert "Traceback" not in run.console


def test_private_hosts_file_really_resolves(rebinding_hosts, http_server, workdir):
    """The control: with the location naming localhost, the same name trick boots."""
    run = run_bootloader([f"--location=http://localhost:{http_server.port}/OL6"], workdir,
                         env=rebinding_hosts)
    assert run.status == 0, run.console
    assert os.path.exists("/etc/hosts")


def test_kept_connections_are_shared_only_under_the_same_policy():
    """libcurl checks an address when it opens a connection, not when it reuses
    one: a tree whose location named loopback must not lend its connections
    to a tree that may not reach loopback."""
    from xenpvnetboot.location import open_location
    from xenpvnetboot.transports import TransportOptions

    options = TransportOptions(timeout=5, retries=0)
    with open_location("http://127.0.0.1:9/a/", options) as loopback, \
            open_location("http://127.0.0.1:9/b/", options) as same, \
            open_location("http://192.0.2.1/c/", options) as elsewhere:
        assert loopback._pool is same._pool
        assert elsewhere._pool is not loopback._pool
        assert not elsewhere._peers.permits("127.0.0.1") and loopback._peers.permits("127.0.0.1")
