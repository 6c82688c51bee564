"""Small generated install trees, each file with distinct content.

Layout of the sample root:
  OL6/images/pxeboot/{vmlinuz,initrd.img}       the tree of the "four ways"
  incomplete/images/xen/vmlinuz                 first default pair without its ramdisk
  incomplete/images/pxeboot/{vmlinuz,initrd.img}
  debianish/current/images/netboot/xen/{vmlinuz,initrd.gz}
  kernel-only/isolinux/vmlinuz                  a kernel and no ramdisk anywhere
  empty/README
  odd name/images/pxeboot/{vmlinuz,initrd.img}  a path that needs quoting
"""

from __future__ import annotations

import os
from typing import Dict


def content(path: str) -> bytes:
    """The bytes stored at *path*: unique per file, so a mix-up is visible."""
    return f"payload of {path}\n".encode() * 64


FILES = (
    "OL6/images/pxeboot/vmlinuz",
    "OL6/images/pxeboot/initrd.img",
    "incomplete/images/xen/vmlinuz",
    "incomplete/images/pxeboot/vmlinuz",
    "incomplete/images/pxeboot/initrd.img",
    "debianish/current/images/netboot/xen/vmlinuz",
    "debianish/current/images/netboot/xen/initrd.gz",
    "kernel-only/isolinux/vmlinuz",
    "empty/README",
    "odd name/images/pxeboot/vmlinuz",
    "odd name/images/pxeboot/initrd.img",
)


def build_sample_root(root: str) -> str:
    for rel in FILES:
        full = os.path.join(root, rel)
        os.makedirs(os.path.dirname(full), exist_ok=True)
        with open(full, "wb") as handle:
            handle.write(content(rel))
    return root


def expected(rel: str) -> bytes:
    return content(rel)


def all_contents() -> Dict[str, bytes]:
    return {rel: content(rel) for rel in FILES}


def pxeboot_tree(root: str, kernel: bytes, initrd: bytes) -> str:
    """A one-pair tree, ``images/pxeboot/{vmlinuz,initrd.img}``, below *root*."""
    os.makedirs(os.path.join(root, "images/pxeboot"))
    for name, data in (("vmlinuz", kernel), ("initrd.img", initrd)):
        with open(os.path.join(root, "images/pxeboot", name), "wb") as handle:
            handle.write(data)
    return root
