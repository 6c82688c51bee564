"""Shared test configuration.

Tests that need root, a Debian package or a server may skip on a developer's
machine.  CI sets ``XENPVNETBOOT_REQUIRE_ALL=1``; then every skip is turned
into a failure, so a green CI run means that every test really ran.
"""

from __future__ import annotations

import os

import pytest

REQUIRE_ALL = os.environ.get("XENPVNETBOOT_REQUIRE_ALL") == "1"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if REQUIRE_ALL and report.skipped and not hasattr(report, "wasxfail"):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else report.longrepr
        report.outcome = "failed"
        report.longrepr = f"skipped while XENPVNETBOOT_REQUIRE_ALL=1: {reason}"


# -- shared fixtures: install trees and real servers on loopback ---------------

import shutil  # noqa: E402

from support import env as test_env  # noqa: E402
from support.trees import build_sample_root  # noqa: E402


@pytest.fixture(scope="session")
def sample_root(tmp_path_factory):
    """A directory of small install trees (see support/trees.py)."""
    return build_sample_root(str(tmp_path_factory.mktemp("trees")))


@pytest.fixture(scope="session")
def debian_mirror(tmp_path_factory):
    """The real Debian installer pair laid out as a Debian mirror; returns (root, relative dir)."""
    kernel, initrd = test_env.debian_installer_files()
    root = str(tmp_path_factory.mktemp("mirror"))
    rel = "debian/dists/bookworm/main/installer-amd64/current/images/netboot/xen"
    os.makedirs(os.path.join(root, rel))
    os.symlink(kernel, os.path.join(root, rel, "vmlinuz"))
    os.symlink(initrd, os.path.join(root, rel, "initrd.gz"))
    return root, rel


@pytest.fixture(scope="session")
def http_server(sample_root, tmp_path_factory):
    from support.http_server import TestHTTPServer

    server = TestHTTPServer(sample_root).start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def tls_ca():
    trustme = pytest.importorskip("trustme")
    return trustme.CA()


@pytest.fixture(scope="session")
def ca_file(tls_ca, tmp_path_factory):
    path = tmp_path_factory.mktemp("ca") / "ca.pem"
    tls_ca.cert_pem.write_to_path(str(path))
    return str(path)


@pytest.fixture(scope="session")
def https_server(sample_root, tls_ca):
    import ssl

    from support.http_server import TestHTTPServer

    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    tls_ca.issue_cert("localhost", "127.0.0.1").configure_cert(context)
    server = TestHTTPServer(sample_root, tls=context).start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def ftp_server(sample_root):
    pytest.importorskip("pyftpdlib")
    from support.ftp_server import TestFTPServer

    server = TestFTPServer(sample_root).start()
    yield server
    server.stop()


@pytest.fixture
def public_dir():
    """A directory below /tmp that an unprivileged uid can reach (pytest's
    tmp_path is 0700), and that other users could write into too (sticky /tmp)."""
    import tempfile
    from pathlib import Path

    path = tempfile.mkdtemp(prefix="xenpvnetboot-test.", dir="/tmp")
    os.chmod(path, 0o755)
    yield Path(path)
    shutil.rmtree(path)


@pytest.fixture
def workdir(tmp_path):
    """A fresh directory standing in for libxl's /var/run/xen."""
    path = tmp_path / "xen"
    path.mkdir()
    yield str(path)
    shutil.rmtree(str(path), ignore_errors=True)
