"""Small install trees of every layout family, old and current shapes.

Each tree has the marker files of the real one, the pair a Xen PV guest
should boot, and decoys that must not be picked (a stale ``images/xen`` next
to a ``.treeinfo`` pointing elsewhere, a Xen kernel without its ramdisk, the
other architecture's files...).  Every file holds distinct bytes, so a mix-up
shows.  :data:`TREES` lists them with what detection must answer.
"""

from __future__ import annotations

import hashlib
import html
import os
import threading
import time
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple
from urllib.parse import quote, unquote

import pytest

from . import http_server as http_support


@pytest.fixture
def x86_64_host(monkeypatch):
    """Make the default architecture that of an x86_64 host, wherever the tests run
    (import it into a test module with ``pytestmark = pytest.mark.usefixtures``)."""
    from xenpvnetboot.layouts import arch

    monkeypatch.setattr(arch, "host_arch", lambda: arch.X86_64)


def payload(tree: str, path: str) -> bytes:
    """The bytes of *path* in *tree*: unique, so a wrong file is visible."""
    return f"{tree}:{path}\n".encode() * 8


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@dataclass
class LayoutTree:
    """A tree to build and the answer detection must give for it."""

    name: str
    #: path -> text of metadata files (markers); other files get payload().
    meta: Dict[str, str]
    files: Sequence[str]
    kernel: Optional[str] = None
    ramdisk: Optional[str] = None
    #: Substring of Selection.reason.
    reason: str = ""
    #: Option name the installer source must use over http ("" for none).
    install: str = ""
    #: --arch to search for (None: the default, x86_64 then i686 here).
    arch: Optional[str] = None
    #: Substring of the error, for trees that must be refused.
    error: str = ""
    extra: Dict[str, bytes] = field(default_factory=dict)

    def content(self, path: str) -> bytes:
        if path in self.meta:
            return self.meta[path].encode()
        return self.extra.get(path, payload(self.name, path))


def build(root: str, tree: LayoutTree) -> str:
    """Write *tree* below *root*; return its directory."""
    base = os.path.join(root, tree.name)
    for path in list(tree.meta) + list(tree.files):
        full = os.path.join(base, path)
        os.makedirs(os.path.dirname(full), exist_ok=True)
        with open(full, "wb") as handle:
            handle.write(tree.content(path))
    return base


def build_all(root: str, trees: Sequence["LayoutTree"]) -> str:
    for tree in trees:
        build(root, tree)
    return root


# -- .treeinfo texts ------------------------------------------------------------

def productmd(name: str, version: str, arch: str, images: Dict[str, Sequence[str]],
              checksums: str = "", general: bool = True) -> str:
    """A productmd 1.2 ``.treeinfo`` as Fedora 21+/RHEL 7+ composes write it."""
    text = [
        "[header]", "type = productmd.treeinfo", "version = 1.2", "",
        "[release]", f"name = {name}", f"short = {name.split()[0]}", f"version = {version}", "",
        "[tree]", f"arch = {arch}", "build_timestamp = 1712102400",
        f"platforms = {','.join(images)}", "variants = BaseOS", "",
    ]
    if general:
        text += ["[general]", f"family = {name}", f"version = {version}", f"arch = {arch}",
                 f"platforms = {','.join(images)}", "packagedir = Packages", ""]
    for platform, (kernel, initrd) in images.items():
        text += [f"[images-{platform}]", "boot.iso = images/boot.iso", f"kernel = {kernel}",
                 f"initrd = {initrd}", ""]
    text += ["[stage2]", "mainimage = images/install.img", ""]
    if checksums:
        text += ["[checksums]", checksums, ""]
    return "\n".join(text)


def old_treeinfo(family: str, version: str, arch: str, images: Dict[str, Sequence[str]]) -> str:
    """The pre-productmd ``.treeinfo`` of RHEL 5/6 and Fedora up to 20."""
    text = ["[general]", f"family = {family}", "timestamp = 1285193176.460470",
            "variant = Server", "totaldiscs = 1", f"version = {version}", "discnum = 1",
            "packagedir = Packages", f"arch = {arch}", ""]
    for platform, (kernel, initrd) in images.items():
        text += [f"[images-{platform}]", f"kernel = {kernel}", f"initrd = {initrd}", ""]
    return "\n".join(text)


PXE = ("images/pxeboot/vmlinuz", "images/pxeboot/initrd.img")
XEN = ("images/xen/vmlinuz", "images/xen/initrd.img")
SUSE_LOADER = ("boot/x86_64/loader/linux", "boot/x86_64/loader/initrd")
V2 = ("images/v2/pxeboot/vmlinuz", "images/v2/pxeboot/initrd.img")
MEDIA_XEN = ("install/netboot/xen/vmlinuz", "install/netboot/xen/initrd.gz")


def _fedora40() -> LayoutTree:
    tree = LayoutTree(
        "fedora40", {}, [*PXE, *XEN, "isolinux/vmlinuz", "isolinux/initrd.img", "images/install.img"],
        *PXE, "Fedora 40 x86_64 (.treeinfo [images-xen])", "inst.repo",
    )
    sums = "\n".join(f"{p} = sha256:{sha256(tree.content(p))}" for p in PXE)
    tree.meta[".treeinfo"] = productmd("Fedora", "40", "x86_64", {"x86_64": PXE, "xen": PXE}, sums)
    return tree


SUSE_CONTENT = (
    "CONTENTSTYLE 11\nDATADIR suse\nDESCRDIR suse/setup/descr\n"
    "DISTRO cpe:/o:suse:sles:11:sp4,SUSE Linux Enterprise Server 11 SP4\n"
    "LABEL SUSE Linux Enterprise Server 11 SP4\nNAME SUSE_SLES\nVERSION 11.4\nBASEARCHS {arch}\n"
)
DEBIAN_INFO = 'Debian GNU/Linux 12.5.0 "Bookworm" - Official amd64 NETINST with firmware 20240210-11:27'
DEBIAN_NETBOOT = ("current/images/netboot/debian-installer/amd64/linux",
                  "current/images/netboot/debian-installer/amd64/initrd.gz")
DEBIAN_XEN = ("current/images/netboot/xen/vmlinuz", "current/images/netboot/xen/initrd.gz")


TREES = [
    # -- .treeinfo: Fedora, RHEL and rebuilds, SUSE ---------------------------
    _fedora40(),
    LayoutTree(
        "rhel5", {".treeinfo": old_treeinfo("Red Hat Enterprise Linux Server", "5.11", "x86_64",
                                            {"xen": XEN, "x86_64": PXE})},
        [*PXE, *XEN], *XEN, "Red Hat Enterprise Linux Server 5.11 x86_64 (.treeinfo [images-xen])",
        "method",
    ),
    LayoutTree(
        "centos6", {".treeinfo": old_treeinfo("CentOS", "6.10", "x86_64", {"x86_64": PXE, "xen": PXE})},
        [*PXE, *XEN], *PXE, "CentOS 6.10 x86_64 (.treeinfo [images-xen])", "repo",
    ),
    LayoutTree(
        "sl6-no-dot", {"treeinfo": old_treeinfo("Scientific Linux", "6.4", "x86_64", {"x86_64": PXE})},
        [*PXE, *XEN], *PXE, "Scientific Linux 6.4 x86_64 (treeinfo [images-x86_64])", "repo",
    ),
    LayoutTree(
        "ol7", {".treeinfo": productmd("Oracle Linux Server", "7.9", "x86_64", {"x86_64": PXE, "xen": PXE},
                                       general=False)},
        [*PXE], *PXE, "Oracle Linux Server 7.9 x86_64 (.treeinfo [images-xen])", "inst.repo",
    ),
    LayoutTree(
        "rocky9-aarch64", {".treeinfo": productmd("Rocky Linux", "9.3", "aarch64", {"aarch64": PXE})},
        [*PXE], *PXE, "Rocky Linux 9.3 aarch64 (.treeinfo [images-aarch64])", "inst.repo", arch="aarch64",
    ),
    LayoutTree(
        "alma8-aarch64-on-x86", {".treeinfo": productmd("AlmaLinux", "8.9", "aarch64", {"aarch64": PXE})},
        [*PXE], error="the tree is for aarch64",
    ),
    LayoutTree(
        "leap15-treeinfo", {".treeinfo": productmd("openSUSE Leap", "15.5", "x86_64",
                                                   {"x86_64": SUSE_LOADER, "xen": SUSE_LOADER})},
        [*SUSE_LOADER, "boot/x86_64/vmlinuz-xen", "boot/x86_64/initrd-xen"], *SUSE_LOADER,
        "openSUSE Leap 15.5 x86_64 (.treeinfo [images-xen])", "install",
    ),
    LayoutTree(
        "alma10-x86_64_v2", {".treeinfo": productmd("AlmaLinux", "10.0", "x86_64_v2", {"x86_64_v2": PXE})},
        [*PXE, *XEN], *PXE, "AlmaLinux 10.0 x86_64_v2 (.treeinfo [images-x86_64_v2])", "inst.repo",
    ),
    LayoutTree(
        "alma10-exact-arch-first",
        {".treeinfo": productmd("AlmaLinux", "10.0", "x86_64", {"x86_64_v2": V2, "x86_64": PXE})},
        [*PXE, *V2], *PXE, "AlmaLinux 10.0 x86_64 (.treeinfo [images-x86_64])", "inst.repo",
    ),
    LayoutTree(
        "alma10-v2-on-aarch64", {".treeinfo": productmd("AlmaLinux", "10.0", "x86_64_v2", {"x86_64_v2": PXE})},
        [*PXE], arch="aarch64", error="the tree is for x86_64_v2",
    ),
    LayoutTree(
        "fedora-no-images", {".treeinfo": old_treeinfo("Fedora", "14", "x86_64", {})},
        [*PXE, "isolinux/vmlinuz", "isolinux/initrd.img"], *PXE,
        "Fedora 14 x86_64 (.treeinfo; PXE kernel in images/pxeboot)", "repo",
    ),
    LayoutTree(
        "hostile-dotdot", {".treeinfo": old_treeinfo("Fedora", "40", "x86_64",
                                                     {"xen": ("../../../etc/passwd", PXE[1])})},
        [*PXE, *XEN], error="not a file inside the tree",
    ),
    LayoutTree(
        "hostile-absolute", {".treeinfo": old_treeinfo("Fedora", "40", "x86_64",
                                                       {"x86_64": ("/etc/passwd", "/etc/shadow")})},
        [*PXE], error="not a file inside the tree",
    ),
    LayoutTree(
        "treeinfo-missing-files", {".treeinfo": old_treeinfo("Fedora", "40", "x86_64", {"xen": PXE})},
        [*XEN], error="names files the tree does not have",
    ),
    # -- SUSE: content, and trees without any marker -----------------------------
    LayoutTree(
        "sles11", {"content": SUSE_CONTENT.format(arch="x86_64")},
        ["boot/x86_64/vmlinuz-xen", "boot/x86_64/initrd-xen", *SUSE_LOADER,
         "boot/i386/vmlinuz-xen", "boot/i386/initrd-xen"],
        "boot/x86_64/vmlinuz-xen", "boot/x86_64/initrd-xen",
        "SUSE Linux Enterprise Server 11 SP4 (content; Xen PV kernel in boot/x86_64)", "install",
    ),
    LayoutTree(
        "sles10-i386", {"content": SUSE_CONTENT.format(arch="i586")},
        ["boot/i386/vmlinuz-xen", "boot/i386/initrd-xen", "boot/i386/loader/linux",
         "boot/i386/loader/initrd"],
        "boot/i386/vmlinuz-xen", "boot/i386/initrd-xen", "(content; Xen PV kernel in boot/i386)",
        "install", arch="i586",
    ),
    LayoutTree(
        "sles-xen-kernel-only", {"content": SUSE_CONTENT.format(arch="x86_64")},
        ["boot/x86_64/vmlinuz-xen", *SUSE_LOADER], *SUSE_LOADER,
        "(content; installer kernel in boot/x86_64/loader)", "install",
    ),
    LayoutTree(
        "tumbleweed", {"media.1/media": "openSUSE - openSUSE-20240401-x86_64\n20240401\n"},
        [*SUSE_LOADER, "boot/aarch64/loader/linux", "boot/aarch64/loader/initrd"], *SUSE_LOADER,
        "SUSE install tree, installer kernel in boot/x86_64/loader", "install",
    ),
    LayoutTree(
        "sle15-aarch64", {}, ["boot/aarch64/loader/linux", "boot/aarch64/loader/initrd", *SUSE_LOADER],
        "boot/aarch64/loader/linux", "boot/aarch64/loader/initrd", "installer kernel in boot/aarch64",
        "install", arch="arm64",
    ),
    # -- Debian and Ubuntu mirrors, netboot trees and media ----------------------
    LayoutTree(
        "debian-mirror", {"current/images/MANIFEST": "netboot/xen/vmlinuz: Xen kernel\n"},
        [*DEBIAN_XEN, *DEBIAN_NETBOOT, "current/images/netboot/netboot.tar.gz"], *DEBIAN_XEN,
        "Debian/Ubuntu installer, Xen PV kernel in current/images/netboot/xen",
    ),
    LayoutTree(
        "debian-mirror-i386", {}, ["current/images/netboot/debian-installer/i386/linux",
                                   "current/images/netboot/debian-installer/i386/initrd.gz"],
        "current/images/netboot/debian-installer/i386/linux",
        "current/images/netboot/debian-installer/i386/initrd.gz", "Debian netboot kernel",
    ),
    LayoutTree(
        "debian-mirror-arm64", {}, [*DEBIAN_XEN, "current/images/netboot/debian-installer/arm64/linux",
                                    "current/images/netboot/debian-installer/arm64/initrd.gz"],
        "current/images/netboot/debian-installer/arm64/linux",
        "current/images/netboot/debian-installer/arm64/initrd.gz", "Debian netboot kernel", arch="arm64",
    ),
    LayoutTree(
        "debian-images-dir", {}, ["netboot/xen/vmlinuz", "netboot/xen/initrd.gz"],
        "netboot/xen/vmlinuz", "netboot/xen/initrd.gz", "Xen PV kernel in netboot/xen",
    ),
    LayoutTree(
        "debian-netboot-tftp", {"version.info": "Debian version:  12 (bookworm)\n"},
        ["debian-installer/amd64/linux", "debian-installer/amd64/initrd.gz", "pxelinux.0"],
        "debian-installer/amd64/linux", "debian-installer/amd64/initrd.gz",
        "Debian netboot kernel in debian-installer/amd64",
    ),
    LayoutTree(
        "debian12-cd", {".disk/info": DEBIAN_INFO},
        ["install.amd/vmlinuz", "install.amd/initrd.gz", "install.amd/xen/vmlinuz",
         "install.amd/xen/initrd.gz", "install.amd/gtk/vmlinuz", "install.amd/gtk/initrd.gz",
         "isolinux/isolinux.bin"],
        "install.amd/xen/vmlinuz", "install.amd/xen/initrd.gz",
        f"{DEBIAN_INFO} (.disk/info; Xen PV kernel in install.amd/xen)",
    ),
    LayoutTree(
        "debian-multiarch-cd", {".disk/info": 'Debian GNU/Linux 11.9.0 "Bullseye" - Official Multi-architecture amd64/i386 NETINST'},
        ["install.amd/vmlinuz", "install.amd/initrd.gz", "install.386/vmlinuz", "install.386/initrd.gz",
         "install.386/xen/vmlinuz", "install.386/xen/initrd.gz"],
        "install.386/xen/vmlinuz", "install.386/xen/initrd.gz", "Xen PV kernel in install.386/xen",
        arch="i386",
    ),
    LayoutTree(
        "debian-cd-no-xen-initrd", {".disk/info": DEBIAN_INFO},
        ["install.amd/vmlinuz", "install.amd/initrd.gz", "install.amd/xen/vmlinuz"],
        "install.amd/vmlinuz", "install.amd/initrd.gz", "installer kernel in install.amd",
    ),
    LayoutTree(
        "debian12-arm64-cd", {".disk/info": 'Debian GNU/Linux 12.5.0 "Bookworm" - Official arm64 NETINST'},
        ["install.a64/vmlinuz", "install.a64/initrd.gz"], "install.a64/vmlinuz", "install.a64/initrd.gz",
        "installer kernel in install.a64", arch="aarch64",
    ),
    LayoutTree(
        "debian-live", {".disk/info": 'Debian GNU/Linux 12 "Bookworm" - Official Live amd64'},
        ["live/vmlinuz", "live/initrd.img", "live/filesystem.squashfs"], "live/vmlinuz", "live/initrd.img",
        "live system kernel in live",
    ),
    LayoutTree(
        "debian-cd-copied-without-dotfiles", {},
        ["install.amd/vmlinuz", "install.amd/initrd.gz", "install.amd/xen/vmlinuz",
         "install.amd/xen/initrd.gz"],
        "install.amd/xen/vmlinuz", "install.amd/xen/initrd.gz",
        "Debian install medium, Xen PV kernel in install.amd/xen",
    ),
    LayoutTree(
        "ubuntu1804-mirror", {}, [*DEBIAN_XEN, "current/images/netboot/ubuntu-installer/amd64/linux",
                                  "current/images/netboot/ubuntu-installer/amd64/initrd.gz"],
        *DEBIAN_XEN, "Xen PV kernel in current/images/netboot/xen",
    ),
    LayoutTree(
        "ubuntu2004-mirror", {}, ["current/legacy-images/netboot/ubuntu-installer/amd64/linux",
                                  "current/legacy-images/netboot/ubuntu-installer/amd64/initrd.gz"],
        "current/legacy-images/netboot/ubuntu-installer/amd64/linux",
        "current/legacy-images/netboot/ubuntu-installer/amd64/initrd.gz", "Ubuntu netboot kernel",
    ),
    LayoutTree(
        "ubuntu1804-server-cd",
        {".disk/info": 'Ubuntu-Server 18.04.6 LTS "Bionic Beaver" - Release amd64 (20210915)'},
        ["install/netboot/ubuntu-installer/amd64/linux", "install/netboot/ubuntu-installer/amd64/initrd.gz",
         "install/vmlinuz", "install/initrd.gz"],
        "install/netboot/ubuntu-installer/amd64/linux", "install/netboot/ubuntu-installer/amd64/initrd.gz",
        "Ubuntu-Server 18.04.6 LTS",
    ),
    LayoutTree(
        "ubuntu2204-live-server",
        {".disk/info": 'Ubuntu-Server 22.04.4 LTS "Jammy Jellyfish" - Release amd64 (20240220)'},
        ["casper/vmlinuz", "casper/initrd", "casper/hwe-vmlinuz", "casper/hwe-initrd",
         "casper/ubuntu-server-minimal.squashfs"],
        "casper/vmlinuz", "casper/initrd", "(.disk/info; live server kernel in casper)",
    ),
    LayoutTree(
        "ubuntu1604-desktop",
        {".disk/info": 'Ubuntu 16.04.7 LTS "Xenial Xerus" - Release amd64 (20200810)'},
        ["casper/vmlinuz.efi", "casper/initrd.lz", "casper/filesystem.squashfs"],
        "casper/vmlinuz.efi", "casper/initrd.lz", "live kernel in casper",
    ),
    LayoutTree(
        "debian8-netinst",
        {".disk/info": 'Debian GNU/Linux 8.11.1 "Jessie" - Official amd64 NETINST Binary-1 20190211-02:10'},
        ["install.amd/vmlinuz", "install.amd/initrd.gz", *MEDIA_XEN,
         "install/netboot/debian-installer/amd64/linux", "install/netboot/xm-debian.cfg"],
        *MEDIA_XEN, "(.disk/info; netboot Xen PV kernel in install/netboot/xen)",
    ),
    LayoutTree(
        "ubuntu1804-server-xen",
        {".disk/info": 'Ubuntu-Server 18.04.6 LTS "Bionic Beaver" - Release amd64 (20210915)'},
        [*MEDIA_XEN, "install/netboot/ubuntu-installer/amd64/linux",
         "install/netboot/ubuntu-installer/amd64/initrd.gz", "install/vmlinuz", "install/initrd.gz"],
        *MEDIA_XEN, "Ubuntu-Server 18.04.6 LTS \"Bionic Beaver\" - Release amd64 (20210915) "
        "(.disk/info; netboot Xen PV kernel in install/netboot/xen)",
    ),
    LayoutTree(
        "debian-media-xen-copied-without-dotfiles", {},
        [*MEDIA_XEN, "install.amd/vmlinuz", "install.amd/initrd.gz"], *MEDIA_XEN,
        "Debian install medium, netboot Xen PV kernel in install/netboot/xen",
    ),
    LayoutTree(
        "debian-daily", {"daily/MANIFEST": "netboot/xen/vmlinuz: Xen kernel\n"},
        ["daily/netboot/xen/vmlinuz", "daily/netboot/xen/initrd.gz",
         "daily/netboot/debian-installer/amd64/linux", "daily/netboot/debian-installer/amd64/initrd.gz",
         "daily/netboot/netboot.tar.gz"],
        "daily/netboot/xen/vmlinuz", "daily/netboot/xen/initrd.gz",
        "Debian/Ubuntu installer, Xen PV kernel in daily/netboot/xen",
    ),
    LayoutTree(
        "debian-daily-i386", {},
        ["daily/netboot/debian-installer/i386/linux", "daily/netboot/debian-installer/i386/initrd.gz"],
        "daily/netboot/debian-installer/i386/linux", "daily/netboot/debian-installer/i386/initrd.gz",
        "Debian netboot kernel in daily/netboot/debian-installer/i386",
    ),
    LayoutTree(
        "netboot-xen-directory", {"debian.cfg": "kernel = 'vmlinuz'\n"},
        ["vmlinuz", "initrd.gz", "xm-debian.cfg"], "vmlinuz", "initrd.gz",
        "Debian/Ubuntu netboot directory, kernel in the location root",
    ),
    LayoutTree(
        "disk-info-soft-404", {".disk/info": "<html><body>Apache2 Ubuntu Default Page</body></html>"},
        [*DEBIAN_XEN], *DEBIAN_XEN, "Debian/Ubuntu installer, Xen PV kernel",
    ),
    # -- Mageia, Alpine, Arch Linux, live media ----------------------------------
    LayoutTree(
        "mageia9", {"VERSION": "Mageia 9 x86_64 DVD 20230826 12:00\n"},
        ["isolinux/x86_64/vmlinuz", "isolinux/x86_64/all.rdz", "isolinux/memtest"],
        "isolinux/x86_64/vmlinuz", "isolinux/x86_64/all.rdz", "Mageia 9 x86_64 DVD 20230826 12:00 (VERSION",
    ),
    LayoutTree(
        "mageia8-i586", {"VERSION": "Mageia 8 i586 DVD\n"},
        ["isolinux/i386/vmlinuz", "isolinux/i386/all.rdz"], "isolinux/i386/vmlinuz",
        "isolinux/i386/all.rdz", "Mageia 8 i586", arch="i586",
    ),
    LayoutTree(
        "alpine319-virt", {".alpine-release": "alpine-virt-3.19.1 240126\n"},
        ["boot/vmlinuz-virt", "boot/initramfs-virt", "boot/modloop-virt"],
        "boot/vmlinuz-virt", "boot/initramfs-virt", "Alpine Linux (alpine-virt-3.19.1 240126)",
    ),
    LayoutTree(
        "alpine319-standard", {".alpine-release": "alpine-standard-3.19.1 240126\n"},
        ["boot/vmlinuz-lts", "boot/initramfs-lts"], "boot/vmlinuz-lts", "boot/initramfs-lts",
        "lts kernel in boot",
    ),
    LayoutTree(
        "alpine312-standard", {".alpine-release": "alpine-standard-3.12.12 220404\n"},
        ["boot/vmlinuz-vanilla", "boot/initramfs-vanilla"], "boot/vmlinuz-vanilla",
        "boot/initramfs-vanilla", "vanilla kernel in boot",
    ),
    LayoutTree(
        "alpine-netboot", {}, ["vmlinuz-lts", "initramfs-lts", "vmlinuz-virt", "initramfs-virt",
                               "modloop-virt"],
        "vmlinuz-virt", "initramfs-virt", "Alpine Linux, netboot virt kernel",
    ),
    LayoutTree(
        "archlinux-2024", {"arch/version": "2024.04.01\n"},
        ["arch/boot/x86_64/vmlinuz-linux", "arch/boot/x86_64/initramfs-linux.img",
         "arch/boot/intel-ucode.img", "arch/x86_64/airootfs.sfs"],
        "arch/boot/x86_64/vmlinuz-linux", "arch/boot/x86_64/initramfs-linux.img",
        "Arch Linux, live kernel in arch/boot/x86_64",
    ),
    LayoutTree(
        "archlinux-2017-i686", {}, ["arch/boot/x86_64/vmlinuz", "arch/boot/x86_64/archiso.img",
                                    "arch/boot/i686/vmlinuz", "arch/boot/i686/archiso.img"],
        "arch/boot/i686/vmlinuz", "arch/boot/i686/archiso.img", "live kernel in arch/boot/i686",
        arch="i686",
    ),
    LayoutTree(
        "centos7-live", {}, ["isolinux/vmlinuz0", "isolinux/initrd0.img", "LiveOS/squashfs.img"],
        "isolinux/vmlinuz0", "isolinux/initrd0.img", "isolinux live medium",
    ),
    LayoutTree(
        "ol6-no-marker", {}, [*PXE, "isolinux/vmlinuz", "isolinux/initrd.img"], *PXE,
        "known layout: Fedora >= 10, Oracle Linux >= 6",
    ),
]

BY_NAME = {tree.name: tree for tree in TREES}

#: A marker text each family recognises, for the per-row tests.
SAMPLE_MARKERS = {
    "redhat": (".treeinfo", old_treeinfo("Fedora", "40", "{arch}", {})),
    "suse": ("content", SUSE_CONTENT),
    "debian-media": (".disk/info", DEBIAN_INFO),
    "ubuntu-media": (".disk/info", 'Ubuntu-Server 22.04.4 LTS "Jammy Jellyfish" - Release amd64'),
    "mageia": ("VERSION", "Mageia 9 x86_64 DVD\n"),
    "alpine": (".alpine-release", "alpine-virt-3.19.1 240126\n"),
}


# -- serving trees: directories as real servers answer them, round trips counted ----


class _Batches:
    """Groups requests into round trips: those in flight together.

    Every request is held until no new one has arrived for *quiet* seconds,
    then the whole group is answered at once.  A client that overlaps its
    requests sends a batch within that window; one that waits for an answer
    before its next request starts a new group.  So the group count is the
    number of sequential round trips, however slow or fast the machine is,
    as long as a batch is sent within *quiet* seconds.
    """

    def __init__(self, quiet: float) -> None:
        self.quiet = quiet
        self.number = 0
        self._last = 0.0
        self._cond = threading.Condition()

    def join(self) -> int:
        """Wait until this request's group is complete; return the group's number."""
        with self._cond:
            mine = self.number
            self._last = time.monotonic()
            self._cond.notify_all()
            while self.number == mine:
                remaining = self._last + self.quiet - time.monotonic()
                if remaining <= 0:
                    self.number += 1
                    self._cond.notify_all()
                    break
                self._cond.wait(remaining)
            return mine


class _TreeHandler(http_support._Handler):
    """The test server's handler, answering directories the way nginx does."""

    server: "TreeServer"

    def _serve(self, head: bool) -> None:
        server = self.server
        path = unquote(self.path.split("?", 1)[0])
        batch = server.batches.join() if server.batches is not None else 0
        server.log.append((self.command, path, batch))
        full = os.path.normpath(os.path.join(server.root, path.lstrip("/")))
        inside = full == server.root or full.startswith(server.root + os.sep)
        if server.soft_404 and not os.path.exists(full) and path not in server.faults:
            return self._page(b"<html><body>Welcome! Nothing here.</body></html>\n", head)
        if server.directories == "files-only" or path in server.faults or not (
                inside and os.path.isdir(full)):
            return super()._serve(head)
        server.requests.append((self.command, path, None))
        if not path.endswith("/"):
            if server.directories == "404-without-slash":
                return self._empty(404)
            return self._redirect(quote(path) + "/")
        if server.directories == "403":
            return self._empty(403)
        self._listing(full, path, head)

    def _listing(self, full: str, path: str, head: bool) -> None:
        names = sorted(name + ("/" if os.path.isdir(os.path.join(full, name)) else "")
                       for name in os.listdir(full))
        links = "".join(f'<a href="{quote(name)}">{html.escape(name)}</a>\n' for name in names)
        body = (f"<html><head><title>Index of {html.escape(path)}</title></head><body>"
                f'<h1>Index of {html.escape(path)}</h1><hr><pre><a href="../">../</a>\n'
                f"{links}</pre><hr></body></html>\n").encode()
        self._page(body, head)

    def _page(self, body: bytes, head: bool) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if not head:
            self.wfile.write(body)


class TreeServer(http_support.TestHTTPServer):
    """The loopback test server, with directories answered like a real web server.

    *directories*: ``"listing"`` (nginx/Apache with autoindex: ``dir`` is
    redirected to ``dir/``, which is an HTML listing), ``"403"`` (the same
    without autoindex: ``dir/`` is forbidden), ``"404-without-slash"``
    (``dir`` is not found, ``dir/`` is a listing: no redirect), or
    ``"files-only"`` (every directory is 404, as object stores answer).
    With *soft_404*, a missing path is answered with an HTML page and
    status 200, as some hosting does.  With *quiet*, requests are grouped
    into round trips (see :class:`_Batches`); :attr:`log` holds
    ``(method, path, round)``.
    """

    #: Connections waiting to be accepted, as a real server allows (socketserver's 5
    #: would drop the connections of a batch and stretch it over SYN retries).
    request_queue_size = 128

    def __init__(self, root: str, directories: str = "listing", soft_404: bool = False,
                 quiet: Optional[float] = None) -> None:
        super().__init__(root)
        self.RequestHandlerClass = _TreeHandler
        self.directories = directories
        self.soft_404 = soft_404
        self.batches = _Batches(quiet) if quiet is not None else None
        self.log: List[Tuple[str, str, int]] = []

    def clear(self) -> None:
        self.log.clear()
        self.requests.clear()

    def rounds(self, prefix: str = "") -> int:
        """Round trips the logged requests below *prefix* took."""
        return len({batch for _, path, batch in self.log if path.startswith(prefix)})
