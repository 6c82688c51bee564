"""NFS locations against a real nfs-ganesha on loopback (NFSv3, v4.0, v4.1)."""

from __future__ import annotations

import hashlib
import io
import os
import shutil
import socket
import subprocess
import sys
import time

import pytest
from support.env import debian_installer_files
from support.images import (
    ESCAPES,
    INITRD,
    KERNEL,
    SMALL,
    VERSIONED,
    build_ext,
    build_iso,
    full_content,
    payload,
)
from support.libxl import run_bootloader, sha256_file
from support.nfs_server import (
    NFS_PORT,
    Export,
    GaneshaServer,
    Rpcbind,
    free_port,
    make_export_dir,
    need_ganesha,
)

from xenpvnetboot.errors import BootError, NotFound, TransientError
from xenpvnetboot.transports.base import Sink, TransportOptions
from xenpvnetboot.transports.nfs import BLOCK, Connection, NfsSource, open_nfs, parse_spec

OPTIONS = TransportOptions(timeout=5.0)
#: A file in the export but outside the tree location, and a link to it.
SIBLING_LINK = "sibling"
#: Files of the tree besides those of full_content.
EXTRA = {"empty": b"", "blocks.bin": payload(20, 9 * (1 << 20) + 12345), "exact.bin": payload(21, BLOCK)}


# -- fixtures -----------------------------------------------------------------------


@pytest.fixture(scope="session")
def nfs_data(tmp_path_factory):
    """The directories served: /export (tree, Debian pair, images), a
    squashed export with an unreadable file, and an NFSv3-only export."""
    base = str(tmp_path_factory.mktemp("nfs"))
    export = make_export_dir(os.path.join(base, "export"))
    tree = make_export_dir(os.path.join(export, "tree"))
    content = full_content(tree, many=20)
    for name, data in EXTRA.items():
        content.write(name, data)
    os.symlink("../outside.txt", os.path.join(tree, SIBLING_LINK))
    with open(os.path.join(export, "outside.txt"), "wb") as out:
        out.write(b"outside the location\n")
    squashed = make_export_dir(os.path.join(base, "squashed"))
    for name, mode in (("secret.bin", 0o600), ("public.txt", 0o644)):
        path = os.path.join(squashed, name)
        with open(path, "wb") as out:
            out.write(name.encode())
        os.chmod(path, mode)
    v3only = make_export_dir(os.path.join(base, "v3only"))
    with open(os.path.join(v3only, "file.txt"), "wb") as out:
        out.write(b"served over NFSv3 only\n")
    return {"base": base, "export": export, "tree": tree, "content": content,
            "squashed": squashed, "v3only": v3only}


@pytest.fixture(scope="session")
def rpcbind(nfs_data):
    need_ganesha()
    daemon = Rpcbind(nfs_data["base"])
    yield daemon
    daemon.stop()


@pytest.fixture(scope="session")
def nfs_server(nfs_data, rpcbind):
    """ganesha with NFSv3, v4.0 and v4.1 on 127.0.0.1."""
    workdir = make_export_dir(os.path.join(nfs_data["base"], "ganesha-main"))
    exports = [
        Export(nfs_data["export"], "/export"),
        Export(nfs_data["squashed"], "/squashed", squash="All_Squash"),
        Export(nfs_data["v3only"], "/v3only", protocols="3"),
    ]
    server = GaneshaServer(workdir, exports).start()
    yield server
    server.stop()


def v4_server(nfs_data, name: str, address: str = "127.0.0.1", minor=None) -> GaneshaServer:
    """A further NFSv4-only server of /export (needs the main one's rpcbind)."""
    workdir = make_export_dir(os.path.join(nfs_data["base"], name))
    return GaneshaServer(workdir, [Export(nfs_data["export"], "/export", protocols="4")],
                         address=address, protocols="4", minor=minor, port=free_port(address))


def fetch_bytes(tree, path: str, max_size: int = 1 << 30) -> bytes:
    buffer = io.BytesIO()
    tree.fetch(path, Sink(buffer, tree.url(path), max_size=max_size))
    return buffer.getvalue()


def open_tree(server: GaneshaServer, path: str = "/export/tree", options=OPTIONS, **spec_options):
    return open_nfs(server.spec(path, **spec_options), options, image=False)


# -- the library is only loaded for NFS ------------------------------------------------


def test_import_does_not_load_the_library():
    code = "import sys, xenpvnetboot.transports.nfs, xenpvnetboot.location; print('nfs_rs' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "False"


class FlakyClient:
    """Answers readlink only after *failures* retry requests (as ganesha's
    NFS4ERR_RETRY_UNCACHED_REP), the last one wrapped as OPEN wraps it."""

    def __init__(self, lib, failures: int) -> None:
        self.lib = lib
        self.version = lib.Version.NFS_V4_1
        self.failures = failures
        self.calls = 0

    def readlink(self, path: str) -> str:
        self.calls += 1
        if self.calls > self.failures:
            return "target"
        cause = self.lib.NfsRetryableError(message="NFS4 error: retry uncached reply")
        if self.calls < self.failures:
            raise cause
        raise self.lib.NfsUncertainOutcomeError(message="uncertain") from cause


@pytest.mark.parametrize("retries, succeeds", [(3, True), (1, False)])
def test_retry_requests_are_repeated(retries, succeeds):
    lib = pytest.importorskip("nfs_rs")
    client = FlakyClient(lib, failures=2)
    connection = Connection(lib, client, parse_spec("h:/p"), TransportOptions(retries=retries))
    if succeeds:
        assert connection.readlink(("link",), "nfs:h:/p/link") == "target"
        assert client.calls == 3
    else:
        with pytest.raises(BootError, match="nfs:h:/p/link: uncertain"):
            connection.readlink(("link",), "nfs:h:/p/link")
        assert client.calls == 2


# -- versions ---------------------------------------------------------------------------


def test_negotiation_picks_4_1_first(nfs_server):
    with open_tree(nfs_server) as tree:
        assert tree.connection.version == "4.1"


@pytest.mark.parametrize("vers, expected", [("4.1", "4.1"), ("4.0", "4.0"), ("3", "3"), ("4", "4.1")])
def test_each_version_reads_the_files(nfs_server, nfs_data, vers, expected):
    with open_tree(nfs_server, vers=vers) as tree:
        assert tree.connection.version == expected
        for path, data in list(nfs_data["content"].files.items())[:6]:
            assert fetch_bytes(tree, path) == data, path
            assert tree.stat(path).size == len(data)


def test_v3_only_path_falls_back_to_v3(nfs_server):
    with open_tree(nfs_server, "/v3only") as tree:
        assert tree.connection.version == "3"
        assert fetch_bytes(tree, "file.txt") == b"served over NFSv3 only\n"


def test_server_without_4_1_falls_back_to_4_0(nfs_data, nfs_server):
    server = v4_server(nfs_data, "ganesha-minor0", minor="0").start()
    try:
        with open_tree(server) as tree:
            assert tree.connection.version == "4.0"
            assert fetch_bytes(tree, SMALL) == nfs_data["content"].files[SMALL]
    finally:
        server.stop()


def test_classic_form_without_options(nfs_server, nfs_data):
    if nfs_server.port != NFS_PORT:
        pytest.skip(f"port {NFS_PORT} was busy, the server runs on {nfs_server.port}")
    with open_nfs("127.0.0.1:/export/tree/", OPTIONS, image=False) as tree:
        assert tree.url(KERNEL) == f"nfs:127.0.0.1:/export/tree/{KERNEL}"
        assert fetch_bytes(tree, KERNEL) == nfs_data["content"].files[KERNEL]


def test_location_and_kernel_spec_forms(nfs_server, nfs_data):
    from xenpvnetboot.location import open_location, resolve_spec

    with open_location("nfs:" + nfs_server.spec("/export/tree"), OPTIONS) as tree:
        assert fetch_bytes(tree, KERNEL) == nfs_data["content"].files[KERNEL]
    spec = "nfs:" + nfs_server.spec(f"/export/tree/{INITRD}")
    tree, path, owned = resolve_spec(spec, None, OPTIONS)
    try:
        assert owned and fetch_bytes(tree, path) == nfs_data["content"].files[INITRD]
    finally:
        tree.close()


# -- files --------------------------------------------------------------------------------


@pytest.mark.parametrize("vers", ["4.1", "3"])
def test_stat_and_fetch_generated_files(nfs_server, nfs_data, vers):
    with open_tree(nfs_server, vers=vers) as tree:
        for name, data in EXTRA.items():
            info = tree.stat(name)
            assert info.size == len(data)
            assert abs(info.mtime - os.stat(os.path.join(nfs_data["tree"], name)).st_mtime) < 1e-3
            assert fetch_bytes(tree, name) == data


@pytest.fixture(scope="session")
def debian_pair(nfs_data):
    """The real Debian installer kernel and initrd in /export/debian: (name, sha256) pairs."""
    directory = make_export_dir(os.path.join(nfs_data["export"], "debian"))
    pair = []
    for source in debian_installer_files():
        name = os.path.basename(source)
        shutil.copyfile(source, os.path.join(directory, name))
        pair.append((name, sha256_file(source)))
    return pair


@pytest.mark.parametrize("vers", ["4.1", "3"])
def test_real_debian_pair(nfs_server, debian_pair, vers):
    with open_tree(nfs_server, "/export/debian", vers=vers) as tree:
        for name, digest in debian_pair:
            data = fetch_bytes(tree, name)
            assert tree.stat(name).size == len(data)
            assert hashlib.sha256(data).hexdigest() == digest


def test_open_source_reads_at_offsets(nfs_server):
    data = EXTRA["blocks.bin"]
    with open_tree(nfs_server) as tree, tree.open_source("blocks.bin") as source:
        assert source.size == len(data)
        for offset, length in ((0, 10), (12345, 4096), (len(data) - 7, 100), (5 << 20, 3 << 20)):
            assert source.pread(offset, length) == data[offset:offset + length]
        assert source.pread(len(data), 10) == b""
        assert source.as_file().read()[-5:] == data[-5:]


def test_missing_file_is_not_found(nfs_server):
    with open_tree(nfs_server) as tree:
        for call in (tree.stat, tree.open_source, lambda p: fetch_bytes(tree, p)):
            with pytest.raises(NotFound, match="127.0.0.1.*/export/tree/no/such/file"):
                call("no/such/file")
        with pytest.raises(NotFound, match="is a directory"):
            tree.stat("images")
        with pytest.raises(NotFound):
            tree.stat(f"{SMALL}/below-a-file")


def test_size_limit_stops_the_transfer(nfs_server):
    with open_tree(nfs_server) as tree:
        with pytest.raises(BootError, match="--max-size"):
            fetch_bytes(tree, "blocks.bin", max_size=1 << 20)


def test_refused_write_stops_the_transfer(nfs_server):
    class Full(io.BytesIO):
        def write(self, data):
            raise OSError(28, "No space left on device")

    with open_tree(nfs_server) as tree:
        with pytest.raises(BootError, match="No space left"):
            tree.fetch("blocks.bin", Sink(Full(), "blocks.bin"))


def test_permission_denied(nfs_server):
    with open_tree(nfs_server, "/squashed") as tree:
        assert fetch_bytes(tree, "public.txt") == b"public.txt"
        with pytest.raises(BootError, match="secret.bin: permission denied") as caught:
            fetch_bytes(tree, "secret.bin")
        assert not isinstance(caught.value, NotFound)


# -- symlinks and .. ------------------------------------------------------------------------


@pytest.mark.parametrize("vers", ["4.1", "3"])
def test_symlinks_inside_the_location_are_followed(nfs_server, nfs_data, vers):
    with open_tree(nfs_server, vers=vers) as tree:
        want = nfs_data["content"].files[VERSIONED]
        assert fetch_bytes(tree, "vmlinuz") == want
        assert fetch_bytes(tree, "boot/up") == want
        assert tree.stat("boot/up").size == len(want)


@pytest.mark.parametrize("vers", ["4.1", "3"])
@pytest.mark.parametrize("link", ESCAPES + [SIBLING_LINK, "boot/vmlinuz.abs"])
def test_symlinks_leaving_the_location_are_refused(nfs_server, vers, link):
    with open_tree(nfs_server, vers=vers) as tree:
        for call in (tree.stat, tree.open_source):
            with pytest.raises(BootError, match="outside the location") as caught:
                call(link)
            assert not isinstance(caught.value, NotFound)


def test_symlink_loop(nfs_server):
    with open_tree(nfs_server) as tree, pytest.raises(BootError, match="too many levels"):
        tree.stat("boot/loop")


def test_dotdot_cannot_leave_the_location(nfs_server):
    with open_tree(nfs_server) as tree:
        with pytest.raises(BootError, match="leaves the location"):
            tree.stat("../outside.txt")
        assert tree.stat(f"boot/../{SMALL}").size == len(b"inline\n")


def test_location_path_may_contain_symlinks(nfs_server, nfs_data):
    os.makedirs(os.path.join(nfs_data["export"], "links"), exist_ok=True)
    link = os.path.join(nfs_data["export"], "links", "current")
    if not os.path.islink(link):
        os.symlink("../tree", link)
    with open_tree(nfs_server, "/export/links/current") as tree:
        assert fetch_bytes(tree, SMALL) == b"inline\n"
        with pytest.raises(BootError, match="outside the location"):
            tree.stat(SIBLING_LINK)


# -- failures of the server ------------------------------------------------------------------


def test_missing_export_names_server_and_path(nfs_server):
    with pytest.raises(BootError) as caught:
        open_tree(nfs_server, "/no-such-export/dir")
    message = str(caught.value)
    assert not isinstance(caught.value, NotFound)
    assert "127.0.0.1" in message and "/no-such-export/dir" in message
    assert "NFSv4.1" in message and "NFSv3" in message


def test_location_that_is_a_file(nfs_server):
    with pytest.raises(BootError, match="not a directory"):
        open_tree(nfs_server, f"/export/tree/{SMALL}")


def test_nothing_listening(nfs_server):
    port = free_port("127.0.0.1")
    started = time.monotonic()
    with pytest.raises(BootError, match="127.0.0.1.*/export.*refused"):
        open_nfs(f"port={port}:127.0.0.1:/export", OPTIONS, image=False)
    assert time.monotonic() - started < 2


def test_server_that_never_answers():
    pytest.importorskip("nfs_rs")
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        port = listener.getsockname()[1]
        started = time.monotonic()
        with pytest.raises(BootError, match="127.0.0.1.*no answer within 1 s"):
            open_nfs(f"vers=4.1,port={port}:127.0.0.1:/export", TransportOptions(timeout=1.0), image=False)
        assert time.monotonic() - started < 3


def test_server_stopped_during_a_session(nfs_data, nfs_server):
    server = v4_server(nfs_data, "ganesha-short").start()
    options = TransportOptions(timeout=1.0, retries=1)
    try:
        tree = open_tree(server, options=options)
        assert fetch_bytes(tree, SMALL) == b"inline\n"
    finally:
        server.stop()
    started = time.monotonic()
    with pytest.raises(TransientError, match=f"{SMALL}: no answer within 1 s"):
        fetch_bytes(tree, SMALL)
    tree.close()
    assert time.monotonic() - started < 5


def test_ipv6_loopback(nfs_data, nfs_server):
    if not socket.has_ipv6 or not _ipv6_loopback():
        pytest.skip("no IPv6 loopback address")
    server = v4_server(nfs_data, "ganesha-ipv6", address="::1").start()
    try:
        with open_tree(server) as tree:
            assert tree.connection.version == "4.1"
            assert tree.url(SMALL).startswith("nfs:port=") and "[::1]:/export/tree/" in tree.url(SMALL)
            assert fetch_bytes(tree, KERNEL) == nfs_data["content"].files[KERNEL]
        with pytest.raises(BootError, match="NFSv3: .*IPv6"):
            open_tree(server, vers="3")
    finally:
        server.stop()


def _ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6) as sock:
            sock.bind(("::1", 0))
        return True
    except OSError:
        return False


# -- nfs+iso: images read in place ----------------------------------------------------------------


@pytest.fixture(scope="session")
def nfs_images(nfs_data):
    """An ISO and an ext4 image of the same files plus a 24 MiB filler."""
    pytest.importorskip("xenpvnetboot.containers")
    source = os.path.join(nfs_data["base"], "image-source")
    content = full_content(source, many=20)
    content.write("filler.bin", payload(30, 24 << 20))
    images = make_export_dir(os.path.join(nfs_data["export"], "images"))
    iso = build_iso(source, os.path.join(images, "install.iso"), "rockridge")
    ext4 = build_ext(source, os.path.join(images, "root.img"), "ext4", "40M")
    return content, {"iso": iso, "ext4": ext4}


@pytest.mark.parametrize("kind", ["iso", "ext4"])
@pytest.mark.parametrize("vers", ["4.1", "3"])
def test_nfs_iso_reads_the_image_in_place(nfs_server, nfs_images, monkeypatch, kind, vers):
    content, images = nfs_images
    read = []
    original = NfsSource.pread

    def counting(self, offset, length):
        data = original(self, offset, length)
        read.append(len(data))
        return data

    monkeypatch.setattr(NfsSource, "pread", counting)
    name = os.path.basename(images[kind])
    with open_nfs(nfs_server.spec(f"/export/images/{name}", vers=vers), OPTIONS, image=True) as tree:
        assert fetch_bytes(tree, KERNEL) == content.files[KERNEL]
        assert fetch_bytes(tree, INITRD) == content.files[INITRD]
    assert 0 < sum(read) < os.path.getsize(images[kind]) // 3


def test_nfs_iso_through_the_location(nfs_server, nfs_images):
    from xenpvnetboot.location import open_location

    content, _ = nfs_images
    with open_location("nfs+iso:" + nfs_server.spec("/export/images/install.iso"), OPTIONS) as tree:
        assert fetch_bytes(tree, VERSIONED) == content.files[VERSIONED]


def test_nfs_iso_missing_image(nfs_server, nfs_images):
    with pytest.raises(NotFound, match="install-missing.iso"):
        open_nfs(nfs_server.spec("/export/images/install-missing.iso"), OPTIONS, image=True)


def test_nfs_iso_that_is_no_image(nfs_server, nfs_images):
    with pytest.raises(BootError, match="not a recognised"):
        open_nfs(nfs_server.spec(f"/export/tree/{KERNEL}"), OPTIONS, image=True)


# -- the bootloader run as libxl runs it ---------------------------------------------------------


def test_bootloader_boots_the_debian_pair_over_nfs(nfs_server, debian_pair, workdir):
    (kernel, kernel_sha), (initrd, initrd_sha) = debian_pair
    location = "nfs:" + nfs_server.spec("/export/debian")
    run = run_bootloader(["--location", location], workdir, kernel=kernel, ramdisk=initrd)
    assert run.status == 0, run.console
    assert (run.kernel_sha256, run.ramdisk_sha256) == (kernel_sha, initrd_sha)
    assert run.leftovers == []


def test_bootloader_boots_from_an_iso_on_nfs(nfs_server, nfs_images, workdir):
    content, _ = nfs_images
    location = "nfs+iso:" + nfs_server.spec("/export/images/install.iso")
    run = run_bootloader(["--location", location], workdir, kernel=KERNEL, ramdisk=INITRD)
    assert run.status == 0, run.console
    assert run.kernel_sha256 == hashlib.sha256(content.files[KERNEL]).hexdigest()
    assert run.ramdisk_sha256 == hashlib.sha256(content.files[INITRD]).hexdigest()


def test_bootloader_reports_a_missing_export(nfs_server, workdir):
    location = "nfs:" + nfs_server.spec("/no-such-export")
    run = run_bootloader(["--location", location], workdir, kernel="linux", ramdisk="initrd.gz")
    assert run.status == 1, run.console
    assert run.output_unchanged and run.leftovers == []
    assert "Traceback" not in run.console
    errors = run.error_lines
    assert len(errors) == 1 and "127.0.0.1" in errors[0] and "/no-such-export" in errors[0], run.console


# -- restricted mode: the unprivileged worker speaks NFS itself ----------------------------


def _interpreter_unreadable_to(uid: int) -> None:
    """These tests mean something only where the dropped uid cannot read Python."""
    probe = subprocess.run(
        [sys.executable, "-c", f"import os; os.setgid({uid}); os.setuid({uid}); open(os.__file__).close()"],
        capture_output=True)
    if probe.returncode == 0:
        pytest.skip(f"uid {uid} can read the Python installation here; nothing to show")


@pytest.mark.parametrize("form, path", [("nfs", "/export/debian"),
                                        ("nfs+iso", "/export/images/install.iso")])
def test_restricted_worker_reads_nfs_with_python_unreadable(nfs_server, nfs_images, debian_pair,
                                                            form, path, workdir):
    from support.env import need_root

    need_root()
    _interpreter_unreadable_to(40123)
    content, _ = nfs_images
    (kernel, kernel_sha), (initrd, _) = debian_pair
    files = (kernel, initrd) if form == "nfs" else (KERNEL, INITRD)
    run = run_bootloader(["--location", f"{form}:" + nfs_server.spec(path)], workdir,
                         kernel=files[0], ramdisk=files[1], runas=40123)
    assert run.status == 0, run.console
    assert "Traceback" not in run.console and run.console.strip() == ""
    if form == "nfs":
        assert run.kernel_sha256 == kernel_sha
    else:
        assert run.kernel_sha256 == hashlib.sha256(content.files[KERNEL]).hexdigest()
