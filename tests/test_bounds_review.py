"""The rest of the review of hostile images: ISO9660 and FAT loops, huge
directories on images that claim to be huge, and the per-image meter.

pycdlib (ISO9660) and TSK (FAT) parse these formats; every byte they read
passes through the image's metered view.  pycdlib >= 1.22 refuses looping
directory records itself and TSK detects looping cluster chains; the meter
is what bounds older versions and whatever they do not detect, including an
image read in place over http that claims to be as large as it likes.
"""

from __future__ import annotations

import io
import struct

import pytest

from support.images import (
    CASES,
    INITRD,
    BytesSource,
    Catalog,
    PaddedSource,
    build_fat,
    build_iso,
    nothing_mounted,  # noqa: F401  (autouse fixture: nothing gets mounted)
    run_bounded,
)
from xenpvnetboot.containers import open_image
from xenpvnetboot.errors import BootError
from xenpvnetboot.transports.base import Sink, TransportOptions
from xenpvnetboot.transports.local import LocalSource

OPTIONS = TransportOptions()
SECTOR = 2048


@pytest.fixture(scope="module")
def catalog(tmp_path_factory):
    return Catalog(str(tmp_path_factory.mktemp("images")))


@pytest.fixture(scope="module")
def iso(tmp_path_factory):
    """A Rock Ridge ISO with boot/vmlinuz; and the offset of the BOOT record."""
    work = tmp_path_factory.mktemp("iso")
    (work / "tree" / "boot").mkdir(parents=True)
    (work / "tree" / "boot" / "vmlinuz").write_bytes(b"kernel\n" * 500)
    with open(build_iso(str(work / "tree"), str(work / "boot.iso"), "rockridge"), "rb") as f:
        image = bytearray(f.read())
    root_extent, root_length = struct.unpack_from("<I4xI", image, 16 * SECTOR + 156 + 2)
    pos = root_extent * SECTOR
    while image[pos]:
        if image[pos + 33:pos + 33 + image[pos + 32]] == b"BOOT":
            return image, pos
        pos += image[pos]
    raise AssertionError("no BOOT directory record")


def with_length(image: bytearray, record: int, length: int) -> bytes:
    patched = bytearray(image)
    struct.pack_into("<I", patched, record + 10, length)
    struct.pack_into(">I", patched, record + 14, length)
    return bytes(patched)


def test_an_iso_directory_claiming_gigabytes_is_not_read(iso):
    """On an image that claims 8 GiB (a server's Content-Length costs nothing),
    a directory of 4 GiB would be read whole into memory by pycdlib."""
    image, record = iso
    source = PaddedSource(with_length(image, record, 0xFFFFF800), 8 << 30, "huge.iso")

    def open_it() -> None:
        open_image(source, OPTIONS).close()
    kind, message = run_bounded(open_it)
    assert kind == "BudgetExceeded", message
    assert message.startswith("huge.iso: more than 67108864 bytes of metadata read (the bound "
                              "per image; corrupt or crafted image?)")


def test_an_iso_directory_that_loops_is_refused(iso):
    """The BOOT directory record pointing at the root directory's extent."""
    image, record = iso
    patched = bytearray(image)
    patched[record + 2:record + 10] = image[16 * SECTOR + 156 + 2:16 * SECTOR + 156 + 10]
    kind, message = run_bounded(lambda: open_image(BytesSource(bytes(patched), "loop.iso"),
                                                   OPTIONS).close())
    assert kind in ("BootError", "BudgetExceeded"), message
    assert message.startswith("loop.iso: ")


def fat_with(tmp_path, edit) -> bytes:
    """A FAT16 image holding KERNEL (3 clusters) and DIR/INNER, after *edit*."""
    tree = tmp_path / "fat"
    (tree / "DIR").mkdir(parents=True)
    (tree / "KERNEL").write_bytes(b"k" * 5000)
    (tree / "DIR" / "INNER").write_bytes(b"inner")
    with open(build_fat(str(tree), str(tmp_path / "fat.img"), 16, 20480), "rb") as f:
        image = bytearray(f.read())
    sector, per_cluster, reserved, fats, roots, _, _, per_fat = struct.unpack_from(
        "<HBHBHHBH", image, 11)
    fat = reserved * sector
    root = fat + fats * per_fat * sector
    entries = {bytes(image[at:at + 11]).rstrip(): at for at in range(root, root + roots * 32, 32)}

    def set_next(cluster: int, following: int) -> None:
        for copy in range(fats):
            struct.pack_into("<H", image, fat + copy * per_fat * sector + 2 * cluster, following)
    edit(image, entries, set_next)
    return bytes(image)


def read_fat(image: bytes, path: str):
    def read() -> int:
        with open_image(BytesSource(image, "fat.img"), OPTIONS) as tree:
            return len(tree.read_bytes(path, limit=1 << 30))
    return run_bounded(read)


def test_a_fat_cluster_chain_that_loops_ends(tmp_path):
    def loop(image, entries, set_next):
        first, = struct.unpack_from("<H", image, entries[b"KERNEL"] + 26)
        set_next(first + 2, first)  # the last cluster leads back to the first
        struct.pack_into("<I", image, entries[b"KERNEL"] + 28, 15 << 20)
    kind, message = read_fat(fat_with(tmp_path, loop), "KERNEL")
    assert kind == "BootError" and message.startswith("fat.img:/KERNEL: "), message


def test_a_fat_directory_chain_that_loops_ends(tmp_path):
    def loop(image, entries, set_next):
        cluster, = struct.unpack_from("<H", image, entries[b"DIR"] + 26)
        set_next(cluster, cluster)
    assert read_fat(fat_with(tmp_path, loop), "DIR/INNER") == ("returned", "5")


def test_metadata_reads_are_bounded_per_image(catalog, monkeypatch):
    from xenpvnetboot.containers import budget

    monkeypatch.setattr(budget, "MAX_METADATA_READS", 5)
    image = catalog.image(CASES[0])
    with pytest.raises(BootError, match=r"more than 5 metadata reads \(the bound per image"):
        with open_image(LocalSource(image), OPTIONS) as tree:
            tree.stat(INITRD)


@pytest.mark.parametrize("name", ["iso-rockridge", "ext2", "ext4", "fat16", "squashfs-xz",
                                  "disk-gpt"])
def test_the_data_of_the_files_fetched_is_not_metadata(catalog, monkeypatch, name):
    """Fetching a file larger than the metadata bound: --max-size bounds it."""
    from xenpvnetboot.containers import budget

    monkeypatch.setattr(budget, "MAX_METADATA_BYTES", 1 << 20)
    case = next(case for case in CASES if case.name == name)
    path, data = max(case.expect(catalog).items(), key=lambda item: len(item[1]))
    assert len(data) > 1 << 20
    with open_image(LocalSource(catalog.image(case)), OPTIONS) as tree:
        out = io.BytesIO()
        tree.fetch(path, Sink(out, path, max_size=1 << 30))
        assert out.getvalue() == data
        source = tree.open_source(path)
        assert source.pread(len(data) - 10, 10) == data[-10:]
