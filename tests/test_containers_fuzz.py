"""Hostile bytes: whatever an image holds, open_image raises only our errors.

An image comes from whoever controls the guest's configuration or the
server it is fetched from; a parsing library's own exception escaping would
be a traceback instead of a clean boot failure.
"""

from __future__ import annotations

import os
import struct

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from support.images import (
    INITRD,
    KERNEL,
    BytesSource,
    build_ext,
    build_fat,
    build_iso,
    build_squashfs,
    full_content,
    nothing_mounted,  # noqa: F401  (autouse fixture: nothing gets mounted)
)
from xenpvnetboot.containers import open_image
from xenpvnetboot.errors import XenPVNetBootError
from xenpvnetboot.transports.base import TransportOptions

OPTIONS = TransportOptions()
PATHS = [KERNEL, "vmlinuz", INITRD, "boot/loop", "many/target-kernel"]
#: Examples per property; raise it for a longer hunt (say 5000) before a release.
EXAMPLES = int(os.environ.get("XENPVNETBOOT_FUZZ_EXAMPLES", "60"))
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@pytest.fixture(scope="module")
def small_images(tmp_path_factory):
    """Images whose bytes are mostly metadata, so that garbling hits it."""
    work = tmp_path_factory.mktemp("fuzz")
    root = str(work / "tree")
    full_content(root, scale=100, many=40)
    fat_root = str(work / "fat")
    full_content(fat_root, scale=100, many=10, links=False)
    images = {
        "iso": build_iso(root, str(work / "rr.iso"), "rockridge"),
        "ext2": build_ext(root, str(work / "ext2.img"), "ext2", "1M"),
        "ext4": build_ext(root, str(work / "ext4.img"), "ext4", "2M", ["inline_data"]),
        "fat": build_fat(fat_root, str(work / "fat.img"), 12, 1024),
        "squashfs": build_squashfs(root, str(work / "sq.img"), "gzip"),
    }
    result = {}
    for name, path in images.items():
        with open(path, "rb") as image:
            result[name] = image.read()
    return result


def assert_only_our_errors(data: bytes) -> None:
    """Open, stat and read as the boot does; only our own errors may escape,
    and what does come back is consistent."""
    try:
        with open_image(BytesSource(data, "fuzz.img"), OPTIONS) as tree:
            for path in PATHS:
                try:
                    size = tree.stat(path).size
                    content = tree.read_bytes(path, limit=1 << 22)
                    assert size is None or len(content) == size
                    source = tree.open_source(path)
                    assert len(source.pread(source.size // 2, 4096)) <= 4096
                except XenPVNetBootError:
                    pass
    except XenPVNetBootError:
        pass


SIGNATURES = {
    "none": [],
    "iso": [(0x8000, b"\x01CD001\x01")],
    "squashfs": [(0, b"hsqs"), (28, struct.pack("<HH", 4, 0))],
    "ext": [(1080, b"\x53\xef")],
    "fat": [(0, b"\xeb\x3c\x90mkfs.fat\x00\x02\x04\x01\x00\x02\x00\x02\x00\x10\xf8")],
    "mbr": [(446, struct.pack("<B3xB3xII", 0, 0x83, 1, 100)), (510, b"\x55\xaa")],
    "gpt": [(446, struct.pack("<B3xB3xII", 0, 0xEE, 1, 100)), (510, b"\x55\xaa"),
            (512, b"EFI PART")],
}


@FUZZ
@given(
    noise=st.binary(min_size=0, max_size=40_000),
    signature=st.sampled_from(sorted(SIGNATURES)),
    length=st.integers(0, 70_000),
)
def test_noise_with_a_signature(noise, signature, length):
    """Random bytes that claim to be one of the formats."""
    data = bytearray((noise * (length // max(1, len(noise)) + 1))[:length] if noise else bytes(length))
    for offset, magic in SIGNATURES[signature]:
        if len(data) < offset + len(magic):
            data.extend(bytes(offset + len(magic) - len(data)))
        data[offset:offset + len(magic)] = magic
    assert_only_our_errors(bytes(data))


@FUZZ
@given(data=st.data(), kind=st.sampled_from(["iso", "ext2", "ext4", "fat", "squashfs"]))
def test_garbled_images(small_images, data, kind):
    """Real images with a few bytes changed, or cut short."""
    image = bytearray(small_images[kind])
    edits = data.draw(st.lists(
        st.tuples(st.integers(0, len(image) - 1), st.integers(0, 255)), min_size=1, max_size=24
    ))
    for position, value in edits:
        image[position] = value
    if data.draw(st.booleans()):
        image = image[:data.draw(st.integers(0, len(image)))]
    assert_only_our_errors(bytes(image))


@FUZZ
@given(data=st.data(), kind=st.sampled_from(["iso", "ext2", "ext4", "fat", "squashfs"]))
def test_garbled_metadata_blocks(small_images, data, kind):
    """Whole runs of a real image's metadata replaced by noise."""
    image = bytearray(small_images[kind])
    start = data.draw(st.integers(0, min(len(image), 1 << 16) - 1))
    if kind == "squashfs":  # its tables are at the end
        start = len(image) - 1 - start
    noise = data.draw(st.binary(min_size=1, max_size=2048))
    image[start:start + len(noise)] = noise
    assert_only_our_errors(bytes(image[:len(small_images[kind])]))
