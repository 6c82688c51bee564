"""TFTP locations against real servers: tftpd-hpa (lock-step, refuses
windowsize) and atftpd (RFC 7440 windows) on 127.0.0.1, a lossy UDP proxy,
and real frame loss between two network namespaces."""

from __future__ import annotations

import filecmp
import json
import os
import random
import subprocess
import time

import pytest
from support.env import debian_installer_files
from support.tftp_servers import (
    LossyLink,
    LossyProxy,
    atftpd,
    atftpd_argv,
    client_argv,
    client_env,
    need_atftpd,
    need_namespaces,
    tftpd_hpa,
)

from xenpvnetboot.errors import BootError, NotFound, TransientError
from xenpvnetboot.location import open_location
from xenpvnetboot.transports import TransportOptions
from xenpvnetboot.transports import tftp
from xenpvnetboot.transports.base import Sink

__all__ = ["atftpd", "tftpd_hpa"]  # imported as fixtures: the tests name them as arguments

pytestmark = pytest.mark.timeout(90)

SIZES = {"empty": 0, "one": 1, "small": 1000, "exact": 1468 * 10, "medium": 300_000}


def _write(path, size: int, seed: int) -> bytes:
    data = random.Random(seed).randbytes(size)
    path.write_bytes(data)
    return data


@pytest.fixture
def root(tmp_path):
    """A served directory with generated files, including edge sizes."""
    served = tmp_path / "served"
    (served / "sub dir").mkdir(parents=True)
    for seed, (name, size) in enumerate(SIZES.items()):
        _write(served / name, size, seed)
    _write(served / "sub dir" / "nested", 5000, 99)
    return served


@pytest.fixture(params=["tftpd-hpa", "atftpd"])
def server(request, root):
    """Each real server, serving *root*."""
    return request.getfixturevalue(request.param.replace("-", "_"))(root)


def fetch_file(tree, name: str, dest, **sink_args) -> Sink:
    with open(dest, "wb") as out:
        sink = Sink(out, tree.url(name), **sink_args)
        tree.fetch(name, sink)
    return sink


def options(**kwargs) -> TransportOptions:
    """Ethernet-sized blocks unless a test says otherwise: loopback's MTU would
    otherwise make every transfer a handful of 64 KiB blocks."""
    kwargs.setdefault("timeout", 5)
    kwargs.setdefault("retries", 0)
    kwargs.setdefault("tftp_blksize", tftp.DEFAULT_BLKSIZE)
    return TransportOptions(**kwargs)


# --- real servers, real data --------------------------------------------------------


@pytest.mark.parametrize("kind", ["tftpd-hpa", "atftpd"])
def test_debian_installer_pair_byte_identical(kind, request, tmp_path):
    kernel, initrd = debian_installer_files()
    start = request.getfixturevalue(kind.replace("-", "_"))
    srv = start(os.path.dirname(kernel))
    tree = open_location(srv.url("/"), options(tftp_blksize=None))
    for source in (kernel, initrd):
        name = os.path.basename(source)
        assert tree.stat(name).size == os.path.getsize(source)
        sink = fetch_file(tree, name, tmp_path / name)
        sink.check_complete()
        assert sink.written == os.path.getsize(source)
        assert filecmp.cmp(source, tmp_path / name, shallow=False)
    stats = tree.last_stats
    # Loopback's MTU is 65536: the default block is the largest TFTP allows.
    assert stats.blksize == tftp.MAX_BLKSIZE
    assert stats.windowsize == (tftp.DEFAULT_WINDOWSIZE if kind == "atftpd" else 1)


def test_edge_sizes_and_paths(server, root, tmp_path):
    tree = tftp.open_tree(server.url(), options())
    for name in list(SIZES) + ["sub dir/nested"]:
        dest = tmp_path / name.replace("/", "_")
        fetch_file(tree, name, dest)
        assert dest.read_bytes() == (root / name).read_bytes(), name
    assert tree.read_bytes("small") == (root / "small").read_bytes()


def test_stat(server, root):
    tree = tftp.open_tree(server.url(), options())
    for name, size in SIZES.items():
        assert tree.stat(name).size == size
    assert tree.stat("sub dir/nested").size == 5000
    with pytest.raises(NotFound) as info:
        tree.stat("missing")
    assert str(info.value) == f"{server.url('missing')}: file not found"


def test_missing_file_fetch(server, tmp_path):
    tree = tftp.open_tree(server.url(), options())
    with pytest.raises(NotFound, match="file not found"):
        fetch_file(tree, "no/such/file", tmp_path / "out")


def test_windowsize_negotiated_with_atftpd(atftpd, root, tmp_path):
    srv = atftpd(root)
    for asked, blksize in ((None, 1468), (64, 1468), (4, 700)):
        tree = tftp.open_tree(srv.url(), options(tftp_windowsize=asked, tftp_blksize=blksize))
        fetch_file(tree, "medium", tmp_path / "medium")
        assert (tmp_path / "medium").read_bytes() == (root / "medium").read_bytes()
        stats = tree.last_stats
        assert (stats.windowsize, stats.blksize) == (asked or 16, blksize)


def test_tftpd_hpa_does_not_grant_windowsize(tftpd_hpa, root, tmp_path):
    tree = tftp.open_tree(tftpd_hpa(root).url(), options(tftp_windowsize=64, tftp_blksize=1468))
    fetch_file(tree, "medium", tmp_path / "medium")
    assert (tree.last_stats.windowsize, tree.last_stats.blksize) == (1, 1468)


def test_default_block_size_follows_the_path_mtu():
    import socket

    assert tftp.path_blksize(socket.AF_INET, ("127.0.0.1", 69)) == tftp.MAX_BLKSIZE
    assert tftp.path_blksize(socket.AF_INET6, ("::1", 69, 0, 0)) == tftp.MAX_BLKSIZE
    # an address with no route: the Ethernet-sized default
    assert tftp.path_blksize(socket.AF_INET6, ("fe80::1", 69, 0, 0)) == tftp.DEFAULT_BLKSIZE


def test_refused_blksize_gives_512_byte_blocks_and_rolls_over(tftpd_hpa, tmp_path):
    """tftpd-hpa -r blksize: 512-byte blocks; a file past block 65535 makes
    the block number roll over (to 0) for real."""
    served = tmp_path / "served"
    served.mkdir()
    data = _write(served / "big", 512 * 65536 + 300, 3)
    tree = tftp.open_tree(tftpd_hpa(served, ["-r", "blksize"]).url(), options())
    sink = fetch_file(tree, "big", tmp_path / "big")
    stats = tree.last_stats
    assert (stats.blksize, stats.windowsize, stats.tsize) == (512, 1, len(data))
    assert stats.blocks == 65537 and sink.written == len(data)
    assert filecmp.cmp(served / "big", tmp_path / "big", shallow=False)


def test_rollover_with_windows_at_atftpd(atftpd, tmp_path):
    served = tmp_path / "served"
    served.mkdir()
    _write(served / "many", 64 * 65600 + 5, 4)
    tree = tftp.open_tree(atftpd(served).url(), options(tftp_blksize=64, tftp_windowsize=64))
    fetch_file(tree, "many", tmp_path / "many")
    assert tree.last_stats.blocks == 65601 and tree.last_stats.windowsize == 64
    assert filecmp.cmp(served / "many", tmp_path / "many", shallow=False)


def test_ipv6_loopback_and_hostname(tftpd_hpa, root):
    srv6 = tftpd_hpa(root, host="::1")
    tree = open_location(f"tftp://[::1]:{srv6.port}/sub%20dir/", options())
    assert tree.url("nested") == f"tftp://[::1]:{srv6.port}/sub%20dir/nested"
    assert tree.read_bytes("nested") == (root / "sub dir" / "nested").read_bytes()
    srv4 = tftpd_hpa(root)
    tree = tftp.open_tree(f"tftp://localhost:{srv4.port}", options())
    assert tree.read_bytes("small") == (root / "small").read_bytes()


def test_boot_from_a_location_naming_loopback(tftpd_hpa, sample_root, workdir):
    """The location names 127.0.0.1 itself, so the address policy lets the
    boot use it (a name that only resolves there would be refused)."""
    from support.libxl import run_bootloader
    from support.trees import expected

    srv = tftpd_hpa(sample_root)
    run = run_bootloader([f"--location=tftp://127.0.0.1:{srv.port}/OL6"], workdir)
    assert run.status == 0, run.console
    assert run.kernel == expected("OL6/images/pxeboot/vmlinuz")
    assert run.ramdisk == expected("OL6/images/pxeboot/initrd.img")
    assert "refused" not in run.console and run.leftovers == []


# --- limits and failures ------------------------------------------------------------


def test_tsize_over_max_size_is_refused_before_download(server, tmp_path):
    tree = tftp.open_tree(server.url(), options())
    start = time.monotonic()
    with pytest.raises(BootError, match=r"more than the limit of 1000 bytes \(--max-size\)"):
        fetch_file(tree, "medium", tmp_path / "out", max_size=1000)
    assert time.monotonic() - start < 1
    assert tree.last_stats.blocks == 0 and (tmp_path / "out").stat().st_size == 0


def test_server_stopping_mid_file_fails_within_the_timeout(server, tmp_path):
    with LossyProxy(("127.0.0.1", server.port), stop_after=60) as proxy:
        tree = tftp.open_tree(proxy.url(), options(timeout=1.5))
        start = time.monotonic()
        with open(tmp_path / "out", "wb") as out:
            sink = Sink(out, tree.url("medium"))
            with pytest.raises(TransientError, match="no data from the TFTP server for 1.5 s") as info:
                tree.fetch("medium", sink)
    assert 1.4 < time.monotonic() - start < 4
    assert 0 < sink.written < SIZES["medium"] and sink.expected == SIZES["medium"]
    with pytest.raises(BootError):
        sink.check_complete()
    assert "\n" not in str(info.value) and proxy.url("medium") in str(info.value)


def test_killed_server_fails_fast(atftpd, root, tmp_path):
    srv = atftpd(root)

    def kill_midway(sink: Sink) -> None:
        if sink.written > 100_000:
            srv.kill()

    tree = tftp.open_tree(srv.url(), options(timeout=10))
    start = time.monotonic()
    with open(tmp_path / "out", "wb") as out:
        sink = Sink(out, tree.url("medium"), progress=kill_midway)
        with pytest.raises(TransientError, match="stopped the transfer"):
            tree.fetch("medium", sink)
    assert time.monotonic() - start < 3
    assert sink.written < SIZES["medium"]


# --- loss ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kind, loss, size",
    [
        ("atftpd", 0.05, 1_000_000),
        ("atftpd", 0.20, 250_000),
        ("tftpd-hpa", 0.05, 200_000),
        ("tftpd-hpa", 0.20, 30_000),
    ],
)
def test_random_loss_through_proxy(kind, loss, size, request, tmp_path):
    served = tmp_path / "served"
    served.mkdir()
    _write(served / "f", size, 11)
    srv = request.getfixturevalue(kind.replace("-", "_"))(served)
    with LossyProxy(("127.0.0.1", srv.port), loss=loss, seed=20240) as proxy:
        tree = tftp.open_tree(proxy.url(), options(timeout=20))
        fetch_file(tree, "f", tmp_path / "f")
    assert filecmp.cmp(served / "f", tmp_path / "f", shallow=False)
    stats = tree.last_stats
    assert proxy.dropped > 0 and stats.timeouts + stats.gaps + stats.idle_acks > 0


def test_one_percent_frame_loss_between_namespaces(tmp_path):
    """Real Ethernet-sized frames (MTU 1500) with 1 % dropped each way: the
    default 1468-byte blocks in windows of 16 get the kernel through intact."""
    need_namespaces()
    binary = need_atftpd()
    kernel, _ = debian_installer_files()
    out = tmp_path / "linux"
    with LossyLink(per_mille=10) as link:
        argv = atftpd_argv(binary, os.path.dirname(kernel), link.SERVER_ADDR, 69)
        server = subprocess.Popen(link.exec_argv(link.server_ns, argv),
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            proc = subprocess.run(
                link.exec_argv(link.client_ns,
                               client_argv(f"tftp://{link.SERVER_ADDR}/linux", str(out), 20)),
                env=client_env(), capture_output=True, text=True, timeout=60,
            )
        finally:
            server.terminate()
            server.wait(timeout=10)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    stats = json.loads(proc.stdout)
    assert (stats["blksize"], stats["windowsize"]) == (1468, 16)
    assert stats["gaps"] + stats["timeouts"] + stats["idle_acks"] > 0  # loss really happened
    assert filecmp.cmp(kernel, out, shallow=False)
