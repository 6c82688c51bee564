"""Install trees as mirrors and media have them: each shape over http and as an ISO.

Directories named ``name.iso`` (an ISO unpacked under its own name), the
netboot Xen pair on Debian and Ubuntu media, Debian's daily images,
``.treeinfo`` sections of architecture variants and a location pointing
straight at a netboot ``xen/`` directory, served by the test server in each
way real servers answer for directories, by nginx, and packed into ISO
images read in place; with decoys that must not be chosen.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time

import pytest
from support import env as test_env
from support.images import build_iso
from support.layout_trees import x86_64_host  # noqa: F401 (a fixture)
from support.layout_trees import BY_NAME, LayoutTree, TreeServer, build, build_all
from support.libxl import run_bootloader

from xenpvnetboot.errors import BootError
from xenpvnetboot.layout import select_files
from xenpvnetboot.layouts.arch import canonical_arch
from xenpvnetboot.location import open_location
from xenpvnetboot.transports import TransportOptions

OPTIONS = TransportOptions(retries=0, timeout=10)
#: The shapes these tests are about (built by support/layout_trees.py).
SHAPES = ["debian8-netinst", "ubuntu1804-server-xen", "debian-media-xen-copied-without-dotfiles",
          "debian-daily", "debian-daily-i386", "netboot-xen-directory", "alma10-x86_64_v2",
          "alma10-exact-arch-first"]
#: Decoys: the file a careless search would take is there, the right pair too.
DECOYS = [
    LayoutTree(  # a Xen kernel without its ramdisk on the medium: the complete pair wins
        "media-xen-kernel-only", {".disk/info": 'Debian GNU/Linux 8.11.1 "Jessie" - Official amd64 NETINST'},
        ["install/netboot/xen/vmlinuz", "install.amd/vmlinuz", "install.amd/initrd.gz"],
        "install.amd/vmlinuz", "install.amd/initrd.gz", "installer kernel in install.amd",
    ),
    LayoutTree(  # a mirror's daily images next to its release: current/ comes first
        "mirror-current-and-daily", {},
        ["current/images/netboot/xen/vmlinuz", "current/images/netboot/xen/initrd.gz",
         "daily/netboot/xen/vmlinuz", "daily/netboot/xen/initrd.gz"],
        "current/images/netboot/xen/vmlinuz", "current/images/netboot/xen/initrd.gz", "Xen PV kernel",
    ),
    LayoutTree(  # vmlinuz and initrd.gz at the root of a tree with a real layout
        "root-pair-and-layout", {}, ["vmlinuz", "initrd.gz", "boot/vmlinuz-virt", "boot/initramfs-virt"],
        "boot/vmlinuz-virt", "boot/initramfs-virt", "Alpine Linux, virt kernel in boot",
    ),
]
TREES = [BY_NAME[name] for name in SHAPES] + DECOYS


pytestmark = pytest.mark.usefixtures("x86_64_host")


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    return build_all(str(tmp_path_factory.mktemp("shapes")), TREES)


def choose(location: str, tree: LayoutTree):
    with contextlib.ExitStack() as stack:
        opened = stack.enter_context(open_location(location, OPTIONS))
        wanted = canonical_arch(tree.arch) if tree.arch else None
        selection = select_files(opened, None, None, OPTIONS, stack, arch=wanted)
        return selection, opened.read_bytes(selection.kernel.path)


def check(selection, kernel: bytes, tree: LayoutTree) -> None:
    assert (selection.kernel.path, selection.ramdisk.path) == (tree.kernel, tree.ramdisk), selection.reason
    assert tree.reason in selection.reason
    assert kernel == tree.content(tree.kernel)


@pytest.mark.parametrize("directories", ["listing", "403", "files-only"])
@pytest.mark.parametrize("tree", TREES, ids=lambda tree: tree.name)
def test_over_http(root, tree, directories):
    server = TreeServer(root, directories=directories).start()
    try:
        check(*choose(server.url(tree.name) + "/", tree), tree)
    finally:
        server.stop()


@pytest.fixture(scope="module")
def isos(root, tmp_path_factory):
    test_env.need_program("xorriso", "xorriso")
    out = tmp_path_factory.mktemp("shape-isos")
    return {tree.name: build_iso(os.path.join(root, tree.name), str(out / f"{tree.name}.iso"), "rockridge")
            for tree in TREES}


@pytest.mark.parametrize("tree", TREES, ids=lambda tree: tree.name)
def test_as_an_iso(isos, tree):
    check(*choose(isos[tree.name], tree), tree)


@pytest.mark.parametrize("name", ["debian8-netinst", "netboot-xen-directory", "alma10-x86_64_v2"])
def test_as_an_iso_read_in_place_over_http(isos, name):
    server = TreeServer(os.path.dirname(isos[name])).start()
    try:
        selection, kernel = choose(server.url(f"{name}.iso"), BY_NAME[name])
    finally:
        server.stop()
    check(selection, kernel, BY_NAME[name])
    assert selection.install_args == ""  # the guest cannot reach a file inside an image


def test_a_variant_tree_for_another_architecture_is_refused(tmp_path):
    tree = BY_NAME["alma10-v2-on-aarch64"]
    with pytest.raises(BootError, match="the tree is for x86_64_v2"):
        choose(build(str(tmp_path), tree), tree)


def test_a_soft_404_server_never_gives_a_page_as_kernel(root):
    """A server that answers every missing path with an HTML page (HTTP 200)."""
    server = TreeServer(root, directories="listing", soft_404=True).start()
    try:
        tree = BY_NAME["debian-daily"]
        check(*choose(server.url(tree.name) + "/", tree), tree)
    finally:
        server.stop()


# -- a directory named like an image (item 6) -------------------------------------------

UNPACKED = BY_NAME["debian8-netinst"]


@pytest.fixture(scope="module")
def iso_named(tmp_path_factory):
    """``debian-8.iso/`` (the medium unpacked under its name) next to a real ``real.iso``."""
    test_env.need_program("xorriso", "xorriso")
    base = str(tmp_path_factory.mktemp("iso-named"))
    os.rename(build(base, UNPACKED), os.path.join(base, "debian-8.iso"))
    source = build(str(tmp_path_factory.mktemp("iso-source")), BY_NAME["debian-daily"])
    build_iso(source, os.path.join(base, "real.iso"), "rockridge")
    return base


def _boot(location: str, workdir: str):
    return run_bootloader([f"--location={location}", "--check=off", "--verify=off"], workdir)


def _booted(run, tree: LayoutTree, image: bool) -> bool:
    """*run* booted *tree*'s pair, read from an image (``x.iso:/`` on the console) or not."""
    return (run.status == 0 and run.kernel == tree.content(tree.kernel)
            and run.ramdisk == tree.content(tree.ramdisk) and (".iso:/" in run.console) == image)


@pytest.mark.parametrize("directories", ["listing", "403", "404-without-slash"])
def test_directory_named_iso_over_http(iso_named, workdir, directories):
    """A redirect to ``name.iso/`` (then a listing or a 403), or a 404 while ``name.iso/`` answers."""
    server = TreeServer(iso_named, directories=directories).start()
    try:
        unpacked = _boot(server.url("debian-8.iso"), workdir)
        assert _booted(unpacked, UNPACKED, image=False), unpacked.console
        real = _boot(server.url("real.iso"), workdir)
        assert _booted(real, BY_NAME["debian-daily"], image=True), real.console
    finally:
        server.stop()


def test_directory_named_iso_on_a_server_without_directories(iso_named, workdir):
    """An object store cannot tell; the message says how to name the directory."""
    server = TreeServer(iso_named, directories="files-only").start()
    try:
        run = run_bootloader([f"--location={server.url('debian-8.iso')}"], workdir)
        assert run.status == 1 and "end the location with a /" in run.console, run.console
        named = _boot(server.url("debian-8.iso") + "/", workdir)
        assert _booted(named, UNPACKED, image=False), named.console
    finally:
        server.stop()


# -- nginx ------------------------------------------------------------------------------

def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Nginx:
    """nginx serving *root* on loopback, with or without directory listings, logging each request."""

    def __init__(self, root: str, autoindex: bool) -> None:
        binary = shutil.which("nginx") or "/usr/sbin/nginx"
        if not os.path.exists(binary):
            pytest.skip("needs nginx (Debian package nginx)")
        self.dir = tempfile.mkdtemp(prefix="test-nginx.")
        self.port = _free_port()
        self.log = os.path.join(self.dir, "access.log")
        temps = " ".join(f"{kind}_temp_path {self.dir}/{kind};"
                         for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
        user = "user root;" if os.geteuid() == 0 else ""
        with open(os.path.join(self.dir, "nginx.conf"), "w") as conf:
            conf.write(
                f"{user} worker_processes 1; daemon off; pid {self.dir}/nginx.pid;\n"
                f"error_log {self.dir}/error.log;\nevents {{ worker_connections 256; }}\n"
                f"http {{ log_format t '$request_method $uri $status'; access_log {self.log} t;\n"
                f"  {temps}\n  server {{ listen 127.0.0.1:{self.port}; root {root};"
                f" autoindex {'on' if autoindex else 'off'}; }} }}\n")
        self.proc = subprocess.Popen([binary, "-c", os.path.join(self.dir, "nginx.conf"), "-p", self.dir],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while True:
            with socket.socket() as sock:
                if sock.connect_ex(("127.0.0.1", self.port)) == 0:
                    break
            if time.monotonic() > deadline or self.proc.poll() is not None:
                self.stop()
                raise AssertionError("nginx did not start")
            time.sleep(0.05)

    def url(self, path: str = "") -> str:
        return f"http://127.0.0.1:{self.port}/{path.lstrip('/')}"

    def requests(self):
        """(method, uri, status) of every request answered so far (nginx logs on completion)."""
        time.sleep(0.2)
        with open(self.log) as handle:
            return [tuple(line.split()) for line in handle.read().splitlines()]

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGQUIT)
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture(scope="module", params=[True, False], ids=["autoindex", "no-autoindex"])
def nginx(iso_named, root, request):
    both = tempfile.mkdtemp(prefix="nginx-root.")
    for name in os.listdir(iso_named):
        os.symlink(os.path.join(iso_named, name), os.path.join(both, name))
    for tree in TREES + [LayoutTree("empty", {}, ["README"])]:
        if not os.path.exists(os.path.join(root, tree.name)):
            build(root, tree)
        os.symlink(os.path.join(root, tree.name), os.path.join(both, tree.name))
    os.chmod(both, 0o755)
    server = Nginx(both, autoindex=request.param)
    yield server
    server.stop()
    shutil.rmtree(both, ignore_errors=True)


def test_nginx_directory_named_iso_and_a_real_iso(nginx, workdir):
    unpacked = _boot(nginx.url("debian-8.iso"), workdir)
    assert _booted(unpacked, UNPACKED, image=False), unpacked.console
    real = _boot(nginx.url("real.iso"), workdir)
    assert _booted(real, BY_NAME["debian-daily"], image=True), real.console


@pytest.mark.parametrize("name", ["debian8-netinst", "debian-daily", "netboot-xen-directory",
                                  "alma10-x86_64_v2", "root-pair-and-layout"])
def test_nginx_trees(nginx, name):
    tree = next(tree for tree in TREES if tree.name == name)
    before = len(nginx.requests())
    check(*choose(nginx.url(name) + "/", tree), tree)
    asked = nginx.requests()[before:]
    assert len(asked) <= 45, asked
    assert all(status in ("200", "206", "301", "403", "404") for _, _, status in asked)


def test_nginx_empty_tree_in_one_batch(nginx):
    before = len(nginx.requests())
    with pytest.raises(BootError, match="no kernel found: "):
        choose(nginx.url("empty") + "/", LayoutTree("empty", {}, []))
    asked = nginx.requests()[before:]
    assert len(asked) <= 32, asked  # 50 before (30, and NetBSD's binary/, amd64/)
    assert len({uri for _, uri, _ in asked}) == len(asked)
