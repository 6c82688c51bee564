"""Recognising a file from its first bytes, and wording what it is.

The common failures are not subtle: a web server's error page saved as the
kernel, a ramdisk where the kernel belongs, an ISO image.  Saying which of
these a file is turns "no loader found" into a fix.
"""

from __future__ import annotations

import re
from typing import Optional

from ._streams import BZIP2, GZIP, LZ4, LZ4_FRAME, LZMA, LZO, XZ, ZSTD

#: How much of the start of a file the sniffers look at (ISO 9660 needs 32 KiB).
HEAD_SIZE = 64 << 10

#: Compression magics, as Linux (lib/decompress.c) and Xen's bzImage loader test them.
_COMPRESSION_MAGICS = (
    (b"\x1f\x8b", GZIP),
    (b"BZh", BZIP2),
    (b"\xfd7zXZ\x00", XZ),
    (b"\x28\xb5\x2f\xfd", ZSTD),
    (b"\x02\x21\x4c\x18", LZ4),
    (b"\x04\x22\x4d\x18", LZ4_FRAME),
    (b"\x89LZO", LZO),
    (b"\x5d\x00", LZMA),
)

CPIO_NEWC = (b"070701", b"070702")
CPIO_ODC = b"070707"
ELF_MAGIC = b"\x7fELF"
BZIMAGE_MAGIC = b"HdrS"
BZIMAGE_MAGIC_OFFSET = 0x202
ARM64_MAGIC = b"ARM\x64"
ARM64_MAGIC_OFFSET = 0x38

_HTML_STARTS = (b"<!doctype html", b"<html", b"<head", b"<body", b"<title", b"<h1",
                b"<!--", b"<meta", b"<p>", b"<pre")
_TITLE = re.compile(rb"<title[^>]*>(.*?)</title", re.IGNORECASE | re.DOTALL)


def compression_of(head: bytes) -> Optional[str]:
    """The compression format whose magic *head* starts with, if any."""
    for magic, fmt in _COMPRESSION_MAGICS:
        if head.startswith(magic):
            return fmt
    return None


def is_bzimage(head: bytes) -> bool:
    return head[BZIMAGE_MAGIC_OFFSET:BZIMAGE_MAGIC_OFFSET + 4] == BZIMAGE_MAGIC


def is_arm64_image(head: bytes) -> bool:
    return head[ARM64_MAGIC_OFFSET:ARM64_MAGIC_OFFSET + 4] == ARM64_MAGIC


def filesystem_image(head: bytes) -> Optional[str]:
    """The filesystem an old-style initrd image holds (Linux can mount these)."""
    if head[1080:1082] == b"\x53\xef":
        return "ext2/3/4"
    if head[:4] in (b"hsqs", b"sqsh"):
        return "squashfs"
    if head[:4] == b"\x45\x3d\xcd\x28":
        return "cramfs"
    if head[:8] == b"-rom1fs-":
        return "romfs"
    return None


def clean(text: str, limit: int = 60) -> str:
    """*text* on one line, without control characters, shortened to *limit*."""
    text = re.sub(r"\s+", " ", text).strip()
    text = "".join(ch if ch.isprintable() else "?" for ch in text)
    return text if len(text) <= limit else text[:limit - 3] + "..."


def hex_start(data: bytes, count: int = 8) -> str:
    """The first bytes in hex, for data that has no better description."""
    return " ".join(f"{byte:02x}" for byte in data[:count]) or "nothing"


def _text_like(data: bytes) -> bool:
    """True when *data* reads as text (UTF-8 without control characters)."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        # A multi-byte character may be cut at the end of the sample.
        try:
            text = data[:-3].decode("utf-8")
        except UnicodeDecodeError:
            return False
    return all(ch.isprintable() or ch in "\t\r\n\f" for ch in text)


def _html_title(head: bytes) -> str:
    match = _TITLE.search(head)
    if not match:
        return ""
    title = clean(match.group(1).decode("utf-8", "replace"))
    return f' titled "{title}"' if title else ""


def describe_foreign(head: bytes) -> Optional[str]:
    """What *head* is when it is a well-known thing that is neither kernel nor ramdisk.

    The answer completes "is ...", e.g. 'an HTML page titled "404 Not Found"'.
    """
    lowered = head[:1024].lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    if lowered.startswith(_HTML_STARTS) or b"<html" in lowered:
        return "an HTML page" + _html_title(head)
    if lowered.startswith(b"<?xml"):
        return "an XML document"
    if head[0x8001:0x8006] == b"CD001":
        return "an ISO 9660 image"
    if head[:4] == b"PK\x03\x04":
        return "a zip archive"
    if head[257:262] == b"ustar":
        return "a tar archive"
    sample = head[:4096]
    if sample and _text_like(sample):
        first = clean(sample.decode("utf-8", "replace"), 40)
        return f'a text file starting "{first}"'
    return None


def describe_other(head: bytes) -> str:
    """What *head* is, for a file that is in the wrong place or unrecognised."""
    if is_bzimage(head):
        return "a Linux kernel (bzImage)"
    if is_arm64_image(head):
        return "an arm64 Linux kernel (Image)"
    if head.startswith(ELF_MAGIC):
        return "an ELF file (a kernel?)"
    if head.startswith(CPIO_NEWC) or head.startswith(CPIO_ODC):
        return "a cpio archive (a ramdisk?)"
    if head[:2] == b"MZ" and head[4:8] == b"zimg":
        return "an EFI zboot image (a compressed EFI kernel)"
    if head[:2] == b"MZ":
        return "a PE/EFI executable (an EFI application, not a Linux bzImage)"
    foreign = describe_foreign(head)
    if foreign:
        return foreign
    return f"data of no known format (starting with {hex_start(head)})"
