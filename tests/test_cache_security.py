"""The cache cannot be planted or poisoned, and one guest cannot stall the others.

As a local user (a directory made first, files planted in it), as a guest's
owner (``--cache-dir`` pointing anywhere, a trickling ramdisk URL) and as a
man in the middle (what an ``--insecure`` boot fetched).
"""

from __future__ import annotations

import os
import ssl
import subprocess
import sys
import time

import pytest
from support.env import need_root
from support.http_server import TestHTTPServer, _Handler
from support.libxl import build_argv, run_bootloader
from support.trees import pxeboot_tree

from xenpvnetboot.cache import Entry, trust_of
from xenpvnetboot.cachedir import SIGNATURE, CacheDirError, init_cache, open_cache_dir

KERNEL = b"the mirror kernel " * 2000
INITRD = b"the mirror initrd " * 8000
EVIL = b"an attacker kernel" * 2000  # same size as KERNEL
UID = 40123


@pytest.fixture(autouse=True)
def _root():
    need_root()


@pytest.fixture
def tree(tmp_path):
    pxeboot_tree(str(tmp_path / "srv"), KERNEL, INITRD)
    return tmp_path / "srv"


@pytest.fixture
def server(tree):
    srv = TestHTTPServer(str(tree)).start()
    yield srv
    srv.stop()


def _boot(server, tmp_path, name, cache, *extra, **kw):
    work = tmp_path / name
    work.mkdir()
    return run_bootloader([f"--location={server.url()}", f"--cache-dir={cache}", *extra],
                          str(work), **kw)


def _tree_files(path):
    found = []
    for dirpath, _, names in os.walk(path):
        found += [os.path.join(dirpath, name) for name in names]
    return sorted(found)


# -- 1. only a directory the administrator prepared ----------------------------------------


def test_init_makes_a_private_tagged_directory(tmp_path):
    from xenpvnetboot.cachedir import main

    path = tmp_path / "cache"
    assert main(["init", str(path), "--size", "1G"]) == 0
    assert os.stat(path).st_mode & 0o777 == 0o700
    tag = (path / "CACHEDIR.TAG").read_bytes()
    assert tag.startswith(SIGNATURE) and b"max-size: 1073741824" in tag
    assert open_cache_dir(str(path)).max_size == 1 << 30


def test_unmarked_directory_is_not_used(server, tmp_path):
    """--cache-dir=/etc, say: no tag there, so root writes nothing into it."""
    target = tmp_path / "etc"
    target.mkdir()
    (target / "passwd").write_text("root:x:0:0::/root:/bin/sh\n")
    before = _tree_files(target)
    run = _boot(server, tmp_path, "one", target)
    assert run.status == 0, run.console
    assert "not using the cache" in run.console and "CACHEDIR.TAG" in run.console
    assert _tree_files(target) == before


def test_missing_directory_is_not_created(server, tmp_path):
    run = _boot(server, tmp_path, "one", tmp_path / "nowhere")
    assert run.status == 0
    assert not (tmp_path / "nowhere").exists()


def _plant(cache, url, data, trust="plain"):
    """What a local user who made the directory first would plant: a matching entry."""
    import hashlib
    import json

    key = hashlib.sha256(f"{trust}\0{url}".encode()).hexdigest()
    sub = os.path.join(cache, key[:2])
    os.makedirs(sub, exist_ok=True)
    with open(os.path.join(sub, key + ".data"), "wb") as handle:
        handle.write(data)
    return os.path.join(sub, key), json, key


@pytest.mark.parametrize("flaw", ["owner", "writable", "symlink"])
def test_directory_someone_else_controls_is_refused(server, tree, public_dir, tmp_path, flaw):
    cache = public_dir / "cache"
    init_cache(str(cache), 1 << 30)
    url = server.url("images/pxeboot/vmlinuz")
    base, json, _ = _plant(str(cache), url, EVIL)
    st = os.stat(tree / "images/pxeboot/vmlinuz")
    with open(base + ".json", "w") as handle:
        json.dump({"url": url, "trust": "plain", "size": len(EVIL), "mtime": int(st.st_mtime),
                   "etag": None, "sha256": None}, handle)
    named = cache
    if flaw == "owner":
        for path in [cache] + _tree_files(cache) + [os.path.dirname(p) for p in _tree_files(cache)]:
            os.chown(path, UID, UID)
    elif flaw == "writable":
        os.chmod(cache, 0o777)
    else:
        named = public_dir / "link"
        os.symlink(cache, named)
    run = _boot(server, tmp_path, "one", named)
    assert run.status == 0, run.console
    assert "not using the cache" in run.console
    assert run.kernel == KERNEL, "the planted kernel was booted"


def test_symlinks_planted_inside_are_never_followed(server, tmp_path):
    cache = tmp_path / "cache"
    init_cache(str(cache), 1 << 30)
    victim = tmp_path / "victim"
    victim.write_bytes(b"precious")
    url = server.url("images/pxeboot/vmlinuz")
    base, _, key = _plant(str(cache), url, b"")
    os.unlink(base + ".data")
    for suffix in (".data", ".json", ".lock"):
        os.symlink(victim, base + suffix)
    run = _boot(server, tmp_path, "one", cache)
    assert victim.read_bytes() == b"precious"
    assert run.kernel == KERNEL or run.status == 0
    second = _boot(server, tmp_path, "two", cache)
    assert second.kernel == KERNEL and victim.read_bytes() == b"precious"


# -- 2. what was trusted how --------------------------------------------------------------


def test_trust_is_part_of_the_key():
    assert trust_of("https", insecure=True, ca_data=None) is None
    assert trust_of("https", False, None) == "tls" and trust_of("http", False, None) == "plain"
    assert trust_of("https", False, b"ca one") != trust_of("https", False, b"ca two")


class _NginxEtag(_Handler):
    """ETag and Last-Modified from size and mtime alone, as nginx makes them: a
    man in the middle can copy them for his own file of the same size."""

    def _validators(self, full):
        st = os.stat(full)
        self.send_header("Last-Modified", self.date_time_string(int(st.st_mtime)))
        self.send_header("ETag", f'"{int(st.st_mtime):x}-{st.st_size:x}"')


def _https(root, cert, port=0):
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    cert.configure_cert(context)
    server = TestHTTPServer(str(root), tls=context)
    server.RequestHandlerClass = _NginxEtag
    if port:
        server.server_close()
        server = _rebind(root, context, port)
    return server.start()


def _rebind(root, context, port):
    import socket

    class Fixed(TestHTTPServer):
        def __init__(self):
            self.address_family = socket.AF_INET
            import http.server

            http.server.ThreadingHTTPServer.__init__(self, ("127.0.0.1", port), _NginxEtag)
            self.root = os.path.realpath(str(root))
            self.faults, self.requests, self.proxied = {}, [], []
            self.bytes_sent, self.authorizations, self.tls, self.host = 0, [], context, "127.0.0.1"
            self.socket = context.wrap_socket(self.socket, server_side=True)
            import threading

            self._thread = threading.Thread(target=self.serve_forever, daemon=True)

    return Fixed()


def test_what_an_insecure_boot_fetched_is_never_served_to_a_verified_one(tree, tmp_path, tls_ca,
                                                                         ca_file):
    trustme = pytest.importorskip("trustme")
    cache = tmp_path / "cache"
    init_cache(str(cache), 1 << 30)
    evil_root = tmp_path / "evil"
    os.makedirs(evil_root / "images/pxeboot")
    (evil_root / "images/pxeboot/vmlinuz").write_bytes(EVIL)
    (evil_root / "images/pxeboot/initrd.img").write_bytes(INITRD)
    real = tree / "images/pxeboot"
    for name in ("vmlinuz", "initrd.img"):  # same dates: the validators match
        st = os.stat(real / name)
        os.utime(evil_root / "images/pxeboot" / name, (st.st_atime, st.st_mtime))
    mitm = _https(evil_root, trustme.CA().issue_cert("127.0.0.1"))
    port = mitm.port
    try:
        first = _boot(mitm, tmp_path, "one", cache, "--insecure", "--check=off")
        assert first.status == 0 and first.kernel == EVIL
    finally:
        mitm.stop()
    assert [p for p in _tree_files(cache) if p.endswith(".data")] == []
    genuine = _https(tree, tls_ca.issue_cert("127.0.0.1"), port=port)
    try:
        second = _boot(genuine, tmp_path, "two", cache, f"--ca-cert={ca_file}", "--check=off")
    finally:
        genuine.stop()
    assert second.status == 0, second.console
    assert second.kernel == KERNEL


def test_entries_are_kept_per_ca(server):
    from xenpvnetboot.cache import Cache

    assert Entry.__init__  # the key is (trust, url): see test_trust_is_part_of_the_key
    first = Entry.__new__(Entry)
    second = Entry.__new__(Entry)
    Entry.__init__(first, Cache.__new__(Cache), "https://h/k", trust_of("https", False, b"a"))
    Entry.__init__(second, Cache.__new__(Cache), "https://h/k", trust_of("https", False, b"b"))
    assert first.key != second.key


# -- 3. one guest's slow server cannot block the others -----------------------------------------


def _popen(args, work):
    work.mkdir()
    out = work / "result"
    out.touch(mode=0o600)
    argv = build_argv(args, str(out), str(work), output_format="simple")
    return subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT), out


def test_a_trickling_ramdisk_does_not_hold_the_shared_kernel(tree, tmp_path):
    cache = tmp_path / "cache"
    init_cache(str(cache), 1 << 30)
    (tree / "evil").mkdir()
    (tree / "evil/initrd.img").write_bytes(os.urandom(1 << 20))
    server = TestHTTPServer(str(tree)).start()
    server.faults["/evil/initrd.img"] = "stall"
    kernel = server.url("images/pxeboot/vmlinuz")
    evil, _ = _popen([f"--kernel={kernel}", f"--ramdisk={server.url('evil/initrd.img')}",
                      f"--cache-dir={cache}", "--timeout=60", "--check=off"], tmp_path / "evil")
    try:
        deadline = time.monotonic() + 20
        while not any(r[1] == "/evil/initrd.img" and r[0] == "GET" for r in server.requests):
            assert time.monotonic() < deadline
            time.sleep(0.05)
        time.sleep(0.3)
        start = time.monotonic()
        good = run_bootloader([f"--location={server.url()}", f"--cache-dir={cache}", "--check=off"],
                              str(_mkdir(tmp_path / "good")), timeout=60)
        took = time.monotonic() - start
    finally:
        evil.kill()
        evil.wait()
        server.stop()
    assert good.status == 0, good.console
    assert good.kernel == KERNEL
    assert took < 15, f"the good boot waited {took:.1f} s for the trickling one"


def test_a_stalled_holder_is_left_alone(tree, tmp_path):
    cache = tmp_path / "cache"
    init_cache(str(cache), 1 << 30)
    server = TestHTTPServer(str(tree)).start()
    # the first GET of the ramdisk stalls; a second one is served normally
    server.faults["/images/pxeboot/initrd.img"] = ["stall", None]
    first, _ = _popen([f"--location={server.url()}", f"--cache-dir={cache}", "--timeout=60",
                       "--check=off"], tmp_path / "first")
    try:
        deadline = time.monotonic() + 20
        while not any(r[1] == "/images/pxeboot/initrd.img" and r[0] == "GET" for r in server.requests):
            assert time.monotonic() < deadline
            time.sleep(0.05)
        second = run_bootloader([f"--location={server.url()}", f"--cache-dir={cache}", "--check=off"],
                                str(_mkdir(tmp_path / "second")), timeout=60)
    finally:
        first.kill()
        first.wait()
        server.stop()
    assert second.status == 0, second.console
    assert second.ramdisk == INITRD
    assert "makes no progress; fetching it without the cache" in second.console


def _mkdir(path):
    path.mkdir()
    return path


def test_open_cache_dir_refuses_relative_paths():
    with pytest.raises(CacheDirError, match="absolute"):
        from xenpvnetboot.cachedir import check_path

        check_path("relative/cache")
    assert sys.executable
