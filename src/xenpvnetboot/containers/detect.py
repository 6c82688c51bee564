"""Recognise a filesystem from its first bytes, never from a file name.

An image reached over NFS or HTTP may be called anything, and a block device
has no extension at all; the on-disk signatures are what the kernel and
blkid go by too.
"""

from __future__ import annotations

import struct
from typing import Optional

from ..transports.base import ByteSource

ISO9660 = "iso9660"
EXT = "ext"
FAT = "fat"
SQUASHFS = "squashfs"

#: Enough bytes for every signature below (the ISO9660 one is the furthest).
HEAD_SIZE = 0x8800

_ISO_MAGIC_AT = 0x8001  # "CD001" in the first volume descriptor, sector 16
_EXT_SUPERBLOCK = 1024
_EXT_MAGIC = b"\x53\xef"  # 0xEF53 little-endian, at offset 56 of the superblock


def read_head(source: ByteSource) -> bytes:
    return source.pread(0, HEAD_SIZE)


def filesystem_kind(head: bytes) -> Optional[str]:
    """The format of the filesystem starting at offset 0 of *head*, or None.

    Filesystems are checked before any partition table, so a hybrid ISO
    (which carries an MBR for USB sticks) is read as the ISO it is.
    """
    if head[_ISO_MAGIC_AT:_ISO_MAGIC_AT + 5] == b"CD001":
        return ISO9660
    if head[:4] == b"hsqs":
        return SQUASHFS
    if _is_ext(head):
        return EXT
    if is_fat_boot_sector(head):
        return FAT
    return None


def _is_ext(head: bytes) -> bool:
    sb = head[_EXT_SUPERBLOCK:_EXT_SUPERBLOCK + 1024]
    if len(sb) < 64 or sb[56:58] != _EXT_MAGIC:
        return False
    (log_block_size,) = struct.unpack_from("<I", sb, 24)
    return log_block_size <= 6  # blocks of 1 KiB .. 64 KiB


def is_fat_boot_sector(head: bytes) -> bool:
    """A plausible FAT12/16/32 BIOS parameter block at offset 0.

    The checks are those of the kernel's FAT driver and blkid: a jump
    instruction, a power-of-two sector and cluster size, at least one
    reserved sector and FAT, a valid media byte and a non-zero size.  An MBR
    fails them (its bytes 11-12 are code or zero), as do NTFS and exFAT,
    which TSK would read but we do not claim.
    """
    if len(head) < 512 or head[0] not in (0xEB, 0xE9):
        return False
    if head[3:11] in (b"NTFS    ", b"EXFAT   "):
        return False
    sector, per_cluster, reserved, fats = struct.unpack_from("<HBHB", head, 11)
    small_total, = struct.unpack_from("<H", head, 19)
    large_total, = struct.unpack_from("<I", head, 32)
    media = head[21]
    return (
        sector in (512, 1024, 2048, 4096)
        and per_cluster in (1, 2, 4, 8, 16, 32, 64, 128)
        and reserved >= 1
        and fats in (1, 2)
        and (media == 0xF0 or media >= 0xF8)
        and (small_total or large_total) > 0
    )
