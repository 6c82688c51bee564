"""The shared cache: one download for many boots, never a stale or broken file."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest
from support.http_server import TestHTTPServer
from support.libxl import build_argv, run_bootloader
from support.trees import pxeboot_tree

KERNEL = b"cached kernel " * 1000
INITRD = b"cached initrd " * 5000


@pytest.fixture
def tree(tmp_path):
    pxeboot_tree(str(tmp_path / "srv"), KERNEL, INITRD)
    return tmp_path / "srv"


@pytest.fixture
def server(tree):
    srv = TestHTTPServer(str(tree)).start()
    yield srv
    srv.stop()


def prepared(tmp_path, size=None):
    """The cache directory, prepared as the administrator does."""
    from xenpvnetboot.cachedir import DEFAULT_LIMIT, init_cache

    path = tmp_path / "cache"
    if not (path / "CACHEDIR.TAG").exists():
        init_cache(str(path), size or DEFAULT_LIMIT)
    return path


def boot(server, tmp_path, name, *extra):
    prepared(tmp_path)
    work = tmp_path / name
    work.mkdir()
    return run_bootloader([f"--location={server.url()}", f"--cache-dir={tmp_path}/cache", *extra],
                          str(work))


def body_gets(server):
    """GETs of the kernel and ramdisk (layout detection also reads marker files)."""
    return [r[1] for r in server.requests if r[0] == "GET" and r[1].startswith("/images/")]


def cache_files(tmp_path, suffix):
    found = []
    for dirpath, _, names in os.walk(tmp_path / "cache"):
        found += [os.path.join(dirpath, n) for n in names if n.endswith(suffix)]
    return found


def test_second_boot_transfers_no_body(server, tmp_path):
    first = boot(server, tmp_path, "one")
    assert first.status == 0, first.console
    assert sorted(body_gets(server)) == ["/images/pxeboot/initrd.img", "/images/pxeboot/vmlinuz"]
    server.requests.clear()
    second = boot(server, tmp_path, "two")
    assert second.status == 0, second.console
    assert body_gets(server) == []
    assert "Using the cached kernel" in second.console
    assert second.kernel == KERNEL and second.ramdisk == INITRD
    assert second.leftovers == []
    data = cache_files(tmp_path, ".data")
    assert len(data) == 2
    # libxl unlinked its copies; the cache keeps its own
    assert all(os.stat(path).st_nlink == 1 for path in data)
    assert all(os.stat(path).st_mode & 0o777 == 0o600 for path in data)


def test_changed_file_is_fetched_again(server, tree, tmp_path):
    assert boot(server, tmp_path, "one").status == 0
    new = b"a newer kernel " * 1000
    (tree / "images/pxeboot/vmlinuz").write_bytes(new)
    os.utime(tree / "images/pxeboot/vmlinuz", (time.time() + 10, time.time() + 10))
    server.requests.clear()
    run = boot(server, tmp_path, "two")
    assert run.status == 0
    assert run.kernel == new
    assert body_gets(server) == ["/images/pxeboot/vmlinuz"]


@pytest.mark.parametrize("damage", ["truncate", "drop-meta", "garble-meta"])
def test_broken_entry_is_fetched_again(server, tmp_path, damage):
    assert boot(server, tmp_path, "one").status == 0
    for path in cache_files(tmp_path, ".data"):
        meta = path[:-5] + ".json"
        if damage == "truncate":
            with open(path, "r+b") as handle:
                handle.truncate(10)
        elif damage == "drop-meta":
            os.unlink(meta)
        else:
            with open(meta, "w") as handle:
                handle.write("{not json")
    server.requests.clear()
    run = boot(server, tmp_path, "two")
    assert run.status == 0
    assert run.kernel == KERNEL and run.ramdisk == INITRD
    assert len(body_gets(server)) == 2


def test_no_cache_option(server, tmp_path):
    run = boot(server, tmp_path, "one", "--no-cache")
    assert run.status == 0
    assert cache_files(tmp_path, ".data") == []


def test_local_trees_are_not_cached(tree, tmp_path):
    prepared(tmp_path)
    work = tmp_path / "w"
    work.mkdir()
    run = run_bootloader([f"--location={tree}", f"--cache-dir={tmp_path}/cache"], str(work))
    assert run.status == 0
    assert cache_files(tmp_path, ".data") == []


def test_eviction_keeps_the_limit(server, tmp_path):
    # The limit holds one file: after the boot only the most recent entry stays.
    run = boot(server, tmp_path, "one", f"--cache-size={len(INITRD) + 100}")
    assert run.status == 0
    data = cache_files(tmp_path, ".data")
    assert sum(os.path.getsize(p) for p in data) <= len(INITRD) + 100


def test_twenty_concurrent_boots_download_once(tree, tmp_path):
    prepared(tmp_path)
    server = TestHTTPServer(str(tree)).start()
    server.faults["/images/pxeboot/initrd.img"] = "slow"  # ~1 s: the boots overlap
    procs = []
    try:
        for index in range(20):
            work = tmp_path / f"guest{index}"
            work.mkdir()
            out = work / "result"
            out.touch(mode=0o600)
            argv = build_argv([f"--location={server.url()}", f"--cache-dir={tmp_path}/cache",
                               "--timeout=60"], str(out), str(work), output_format="simple")
            procs.append((work, subprocess.Popen(argv, stdout=subprocess.PIPE,
                                                 stderr=subprocess.STDOUT)))
        for work, proc in procs:
            output = proc.communicate(timeout=120)[0]
            assert proc.returncode == 0, output
            lines = (work / "result").read_text().splitlines()
            ramdisk = lines[1].split(" ", 1)[1]
            with open(ramdisk, "rb") as handle:
                assert handle.read() == INITRD
    finally:
        server.stop()
        for _, proc in procs:
            if proc.poll() is None:
                proc.kill()
    assert body_gets(server).count("/images/pxeboot/initrd.img") == 1
    assert body_gets(server).count("/images/pxeboot/vmlinuz") == 1
    assert sys.executable  # the boots above ran with this interpreter


def test_a_checksum_asked_of_a_cached_file_is_computed_once(server, tmp_path):
    """An entry stored without its digest (no check, no checksum asked) has it
    computed the first time a boot asks for a checksum, and kept: the next
    boot does not read the whole file again (a 40 MB ramdisk: tens of ms)."""
    import hashlib
    import json

    assert boot(server, tmp_path, "one", "--check=off", "--verify=off").status == 0
    metas = {path: json.load(open(path[:-5] + ".json")) for path in cache_files(tmp_path, ".data")}
    assert len(metas) == 2 and not any(meta.get("content_sha256") for meta in metas.values())
    digest = hashlib.sha256(INITRD).hexdigest()
    server.requests.clear()
    run = boot(server, tmp_path, "two", "--check=off", "--verify=off", f"--ramdisk-sha256={digest}")
    assert run.status == 0 and run.ramdisk == INITRD and body_gets(server) == []
    kept = [json.load(open(path[:-5] + ".json")).get("content_sha256") for path in metas]
    assert digest in kept
    # the kept digest decides from now on, also against a wrong checksum
    wrong = hashlib.sha256(b"other").hexdigest()
    run = boot(server, tmp_path, "three", "--check=off", "--verify=off", f"--ramdisk-sha256={wrong}")
    assert run.status == 1 and "SHA-256" in run.console
