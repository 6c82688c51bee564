"""The layouts of install trees and media, as data.

A family is a distribution's way of laying out a tree: the marker file that
identifies it, the kernel/ramdisk pairs it may hold (best first, the Xen PV
pair before the generic one), and how it spells architectures in paths.
Adding a distribution is adding a :class:`Family` or a :class:`Row` here
(and a test tree, see ``tests/support/layout_trees.py``).

Pairs are only ever taken whole: a kernel of one row is never booted with
the ramdisk of another.  ``{arch}`` in a path is replaced by each of the
family's names for the guest architecture; a row limited to some
architectures (``arches``) is skipped for the others.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Dict, Iterator, List, Optional, Tuple

from . import markers
from .arch import AARCH64, I686, X86, X86_64
from .model import Pair

#: How installers are told where their packages are (see :mod:`.installargs`).
ANACONDA = "anaconda"
LINUXRC = "linuxrc"


@dataclass(frozen=True)
class Row:
    """One kernel/ramdisk pair a family may ship."""

    kernel: str
    ramdisk: str
    #: What this pair is, for the explanation ("Xen PV kernel").
    what: str
    #: Canonical architectures the row exists for; empty: all.
    arches: Tuple[str, ...] = ()
    #: Also tried when no marker was found (rows whose paths are specific enough).
    walk: bool = True


@dataclass(frozen=True)
class Family:
    """A distribution layout: marker, candidate pairs and architecture names."""

    key: str
    name: str
    rows: Tuple[Row, ...]
    #: File whose presence (and content, see *identify*) marks the family.
    marker: Optional[str] = None
    #: Marker text -> label to show, or None when the file is someone else's.
    identify: Optional[Callable[[str], Optional[str]]] = None
    #: Canonical architecture -> the names ``{arch}`` takes, best first.
    arch_names: Tuple[Tuple[str, Tuple[str, ...]], ...] = ()
    #: Installer to tell where its packages are (ANACONDA, LINUXRC), if any.
    installer: Optional[str] = None
    #: The family in the short "no kernel found" message ("" : not named there).
    short: str = ""

    def names_for(self, arch: str) -> Tuple[str, ...]:
        return dict(self.arch_names).get(arch, (arch,))

    def candidates(self, arches: Tuple[str, ...], walking: bool = False) -> Iterator["Candidate"]:
        """Concrete pairs for *arches*, the first architecture's rows first."""
        for arch in arches:
            for row in self.rows:
                if (row.arches and arch not in row.arches) or (walking and not row.walk):
                    continue
                templated = "{arch}" in row.kernel or "{arch}" in row.ramdisk
                for name in self.names_for(arch) if templated else ("",):
                    pair = Pair(row.kernel.format(arch=name), row.ramdisk.format(arch=name),
                                f"{self.name}, {row.what}")
                    yield Candidate(self, row, pair)


@dataclass(frozen=True)
class Candidate:
    """A concrete pair and the family and row it came from."""

    family: Family
    row: Row
    pair: Pair


DEBIAN_ARCH = ((X86_64, ("amd64",)), (I686, ("i386",)), (AARCH64, ("arm64",)))
SUSE_ARCH = ((X86_64, ("x86_64",)), (I686, ("i386",)), (AARCH64, ("aarch64",)))

#: Fedora, RHEL and rebuilds; identified by ``.treeinfo`` (see :mod:`.treeinfo`).
#: These rows serve a ``.treeinfo`` without usable images sections; without one
#: the same paths are reached as the original pairs at the end of the search.
REDHAT = Family(
    key="redhat",
    name="Fedora/RHEL install tree",
    installer=ANACONDA,
    rows=(
        Row("images/xen/vmlinuz", "images/xen/initrd.img", "Xen PV kernel", X86, walk=False),
        Row("images/pxeboot/vmlinuz", "images/pxeboot/initrd.img", "PXE kernel", walk=False),
        Row("isolinux/vmlinuz", "isolinux/initrd.img", "isolinux kernel", X86, walk=False),
    ),
)

#: SUSE Linux Enterprise and openSUSE: ``content`` up to SLE 12/Leap 42, newer
#: trees only ``.treeinfo`` or nothing; 10.x-11.x shipped a separate Xen kernel.
SUSE = Family(
    key="suse",
    name="SUSE install tree",
    marker="content",
    identify=markers.suse_content,
    arch_names=SUSE_ARCH,
    installer=LINUXRC,
    short="SUSE",
    rows=(
        Row("boot/{arch}/vmlinuz-xen", "boot/{arch}/initrd-xen", "Xen PV kernel", X86),
        Row("boot/{arch}/loader/linux", "boot/{arch}/loader/initrd", "installer kernel"),
    ),
)

#: The netboot Xen pair some Debian and Ubuntu media carry besides their own
#: installer (Debian 8 netinst contents, Ubuntu 18.04 server media).
MEDIA_NETBOOT_XEN = Row("install/netboot/xen/vmlinuz", "install/netboot/xen/initrd.gz",
                        "netboot Xen PV kernel", X86)

#: Debian CD/DVD/netinst media and Debian live media (d-i under install/).
DEBIAN_MEDIA = Family(
    key="debian-media",
    name="Debian install medium",
    marker=".disk/info",
    identify=markers.debian_disk_info,
    short="Debian/Ubuntu",
    rows=(
        Row("install.amd/xen/vmlinuz", "install.amd/xen/initrd.gz", "Xen PV kernel", (X86_64,)),
        MEDIA_NETBOOT_XEN,
        Row("install.amd/vmlinuz", "install.amd/initrd.gz", "installer kernel", (X86_64,)),
        Row("install.386/xen/vmlinuz", "install.386/xen/initrd.gz", "Xen PV kernel", (I686,)),
        Row("install.386/vmlinuz", "install.386/initrd.gz", "installer kernel", (I686,)),
        Row("install.a64/vmlinuz", "install.a64/initrd.gz", "installer kernel", (AARCH64,)),
        Row("install/vmlinuz", "install/initrd.gz", "installer kernel", walk=False),
        Row("live/vmlinuz", "live/initrd.img", "live system kernel", walk=False),
    ),
)

#: Ubuntu media: the debian-installer server ISOs up to 18.04, the live
#: (casper) server and desktop ISOs since; casper's ramdisk name changed over time.
UBUNTU_MEDIA = Family(
    key="ubuntu-media",
    name="Ubuntu install medium",
    marker=".disk/info",
    identify=markers.ubuntu_disk_info,
    arch_names=DEBIAN_ARCH,
    short="Debian/Ubuntu",
    rows=(
        MEDIA_NETBOOT_XEN,
        Row("install/netboot/ubuntu-installer/{arch}/linux",
            "install/netboot/ubuntu-installer/{arch}/initrd.gz", "netboot installer kernel"),
        Row("install/vmlinuz", "install/initrd.gz", "installer kernel"),
        Row("casper/vmlinuz", "casper/initrd", "live server kernel"),
        Row("casper/vmlinuz", "casper/initrd.lz", "live kernel"),
        Row("casper/vmlinuz.efi", "casper/initrd.lz", "live kernel", walk=False),
    ),
)


def _netboot_rows(prefix: str, distros: Tuple[str, ...] = ("debian", "ubuntu")) -> Tuple[Row, ...]:
    """The Xen PV pair, then the generic ones, of debian-installer netboot images."""
    rows = [Row(f"{prefix}xen/vmlinuz", f"{prefix}xen/initrd.gz", "Xen PV kernel", X86)]
    for distro in distros:
        rows.append(Row(f"{prefix}{distro}-installer/{{arch}}/linux",
                        f"{prefix}{distro}-installer/{{arch}}/initrd.gz",
                        f"{distro.capitalize()} netboot kernel"))
    return tuple(rows)


#: Debian and Ubuntu mirrors and netboot trees.  The location may be the
#: ``dists/<suite>/main/installer-<arch>/`` directory of a mirror, Debian's
#: ``daily-images/<arch>/`` (``daily/`` where a release has ``current/images/``),
#: the ``images/`` directory, an unpacked ``netboot.tar.gz``, or the netboot
#: ``xen/`` directory itself; Ubuntu 20.04 moved the images to ``legacy-images``.
DEBIAN_NETBOOT = Family(
    key="debian-netboot",
    name="Debian/Ubuntu installer",
    arch_names=DEBIAN_ARCH,
    short="Debian/Ubuntu",
    rows=(
        _netboot_rows("current/images/netboot/")
        + _netboot_rows("current/legacy-images/netboot/", ("ubuntu",))
        + _netboot_rows("daily/netboot/", ("debian",))
        + _netboot_rows("netboot/")
        + _netboot_rows("")
    ),
)

#: Mageia (and Mandriva before it): installer images under isolinux/<arch>.
MAGEIA = Family(
    key="mageia",
    name="Mageia install tree",
    marker="VERSION",
    identify=markers.mageia_version,
    short="Mageia",
    arch_names=((X86_64, ("x86_64",)), (I686, ("i386", "i586")), (AARCH64, ("aarch64",))),
    rows=(
        Row("isolinux/{arch}/vmlinuz", "isolinux/{arch}/all.rdz", "installer kernel"),
        Row("isolinux/alt0/vmlinuz", "isolinux/alt0/all.rdz", "installer kernel", X86, walk=False),
    ),
)

#: Alpine media (``boot/``) and netboot directories; the kernel flavour names
#: changed over releases, the ``virt`` ones are built for virtual machines.
ALPINE = Family(
    key="alpine",
    name="Alpine Linux",
    marker=".alpine-release",
    identify=markers.alpine_release,
    short="Alpine",
    rows=(
        Row("boot/vmlinuz-virt", "boot/initramfs-virt", "virt kernel"),
        Row("boot/vmlinuz-virthardened", "boot/initramfs-virthardened", "virt kernel", walk=False),
        Row("boot/vmlinuz-virtgrsec", "boot/initramfs-virtgrsec", "virt kernel", walk=False),
        Row("boot/vmlinuz-lts", "boot/initramfs-lts", "lts kernel"),
        Row("boot/vmlinuz-vanilla", "boot/initramfs-vanilla", "vanilla kernel", walk=False),
        Row("boot/vmlinuz-hardened", "boot/initramfs-hardened", "hardened kernel", walk=False),
        Row("boot/vmlinuz-grsec", "boot/initramfs-grsec", "grsec kernel", walk=False),
        Row("vmlinuz-virt", "initramfs-virt", "netboot virt kernel"),
        Row("vmlinuz-lts", "initramfs-lts", "netboot lts kernel"),
    ),
)

#: Arch Linux ISOs and the unpacked ``iso/latest`` of mirrors; before 2020
#: archiso named the files vmlinuz and archiso.img, and i686 ended in 2017.
ARCHLINUX = Family(
    key="archlinux",
    name="Arch Linux",
    short="Arch",
    rows=(
        Row("arch/boot/{arch}/vmlinuz-linux", "arch/boot/{arch}/initramfs-linux.img",
            "live kernel", (X86_64,)),
        Row("arch/boot/{arch}/vmlinuz", "arch/boot/{arch}/archiso.img", "live kernel", X86),
    ),
)

#: Live media made by livecd-tools (Fedora up to 20, CentOS 6/7 live).
ISOLINUX_LIVE = Family(
    key="isolinux-live",
    name="isolinux live medium",
    short="isolinux",
    rows=(Row("isolinux/vmlinuz0", "isolinux/initrd0.img", "live kernel", X86),),
)

#: A location naming the directory of the pair itself: Debian's and Ubuntu's
#: netboot ``xen/`` directory (or their ``install.amd/``).  Tried after every
#: layout, since the two names say little.
NETBOOT_DIRECTORY = Family(
    key="netboot-directory",
    name="Debian/Ubuntu netboot directory",
    short="Debian/Ubuntu",
    rows=(Row("vmlinuz", "initrd.gz", "kernel"),),
)

#: Every family; also the order of the walk made when no marker identified
#: the tree: mirrors and netboot trees, which have no marker, come first.
FAMILIES: Tuple[Family, ...] = (
    REDHAT, DEBIAN_NETBOOT, SUSE, DEBIAN_MEDIA, UBUNTU_MEDIA, MAGEIA, ALPINE, ARCHLINUX,
    ISOLINUX_LIVE, NETBOOT_DIRECTORY,
)

@dataclass(frozen=True)
class KernelOnly:
    """A kernel that carries its own ramdisk, booted alone."""

    kernel: str
    what: str
    arches: Tuple[str, ...] = ()


#: Trees whose install kernel has its ramdisk built in: NetBSD's release trees
#: (the location the architecture's directory, or the release above it).
KERNELS_ALONE: Tuple[KernelOnly, ...] = (
    KernelOnly("binary/kernel/netbsd-INSTALL_XEN3_DOMU.gz",
               "NetBSD release, Xen PV install kernel", (X86_64,)),
    KernelOnly("amd64/binary/kernel/netbsd-INSTALL_XEN3_DOMU.gz",
               "NetBSD release, Xen PV install kernel", (X86_64,)),
    KernelOnly("binary/kernel/netbsd-INSTALL_XEN3PAE_DOMU.gz",
               "NetBSD release, Xen PV (PAE) install kernel", (I686,)),
    KernelOnly("i386/binary/kernel/netbsd-INSTALL_XEN3PAE_DOMU.gz",
               "NetBSD release, Xen PV (PAE) install kernel", (I686,)),
)


def kernels_alone(arches: Tuple[str, ...]) -> List[KernelOnly]:
    """The kernels-alone rows for *arches*, the first architecture's first."""
    return [row for arch in arches for row in KERNELS_ALONE if not row.arches or arch in row.arches]


#: Marker files in the order they are read, after ``.treeinfo`` (see :mod:`.detect`).
MARKERS: Tuple[str, ...] = (".disk/info", "content", "VERSION", ".alpine-release")

#: The six pairs of the original xenpvnetboot, in its order: the last resort.
ORIGINAL_PAIRS: Tuple[Pair, ...] = (
    Pair("images/xen/vmlinuz", "images/xen/initrd.img", "Fedora <= 10, Oracle Linux 5"),
    Pair("boot/i386/vmlinuz-xen", "boot/i386/initrd-xen", "openSUSE >= 10.2, SLES >= 10 (i386)"),
    Pair("boot/x86_64/vmlinuz-xen", "boot/x86_64/initrd-xen", "openSUSE >= 10.2, SLES >= 10 (x86_64)"),
    Pair("current/images/netboot/xen/vmlinuz", "current/images/netboot/xen/initrd.gz", "Debian"),
    Pair("images/pxeboot/vmlinuz", "images/pxeboot/initrd.img", "Fedora >= 10, Oracle Linux >= 6"),
    Pair("isolinux/vmlinuz", "isolinux/initrd.img", "Fedora >= 10, Oracle Linux >= 6"),
)


def families_marked_by(path: str) -> Tuple[Family, ...]:
    return tuple(f for f in FAMILIES if f.marker == path)


def short_names() -> List[str]:
    """The families for the short "no kernel found" message, in table order."""
    return list(dict.fromkeys([family.short for family in FAMILIES if family.short] + ["NetBSD"]))


# -- names that pair within one directory (a --kernel or --ramdisk alone) -----------

#: Installed-system conventions beyond the rows: ``{suffix}`` is what follows
#: ``vmlinuz-`` in the kernel's name (Debian and Ubuntu; the rows bring
#: SUSE's ``initrd-``, Fedora's and Arch's ``initramfs-...img``, Alpine's ``initramfs-``).
INSTALLED_RAMDISKS: Tuple[str, ...] = ("initrd.img-{suffix}",)
KERNEL_PREFIX = "vmlinuz-"


def _row_names() -> List[Tuple[str, str]]:
    """(kernel name, ramdisk name) of every row and original pair, table order."""
    names: List[Tuple[str, str]] = []
    rows = [(row.kernel, row.ramdisk) for family in FAMILIES for row in family.rows]
    for kernel, ramdisk in rows + [(pair.kernel, pair.ramdisk) for pair in ORIGINAL_PAIRS]:
        names.append((kernel.rsplit("/", 1)[-1], ramdisk.rsplit("/", 1)[-1]))
    return list(dict.fromkeys(names))


def _suffix_templates() -> List[str]:
    """Ramdisk names as templates of the kernel's ``vmlinuz-<suffix>``, from the rows."""
    found: List[str] = []
    for kernel, ramdisk in _row_names():
        suffix = kernel[len(KERNEL_PREFIX):] if kernel.startswith(KERNEL_PREFIX) else ""
        if suffix and suffix in ramdisk:
            found.append(ramdisk.replace(suffix, "{suffix}", 1))
    return list(dict.fromkeys(found + list(INSTALLED_RAMDISKS)))


def ramdisk_names(kernel: str) -> List[str]:
    """Names a ramdisk next to a kernel named *kernel* has, by the table, best first."""
    names = [ramdisk for name, ramdisk in _row_names() if name == kernel]
    if kernel.startswith(KERNEL_PREFIX) and len(kernel) > len(KERNEL_PREFIX):
        suffix = kernel[len(KERNEL_PREFIX):]
        names += [template.format(suffix=suffix) for template in _suffix_templates()]
    return list(dict.fromkeys(names))


def kernel_names(ramdisk: str) -> List[str]:
    """Names the kernel next to a ramdisk named *ramdisk* has, by the table, best first."""
    names = [kernel for kernel, name in _row_names() if name == ramdisk]
    for template in _suffix_templates():
        head, _, tail = template.partition("{suffix}")
        if ramdisk.startswith(head) and ramdisk.endswith(tail) and len(ramdisk) > len(head + tail):
            names.append(KERNEL_PREFIX + ramdisk[len(head):len(ramdisk) - len(tail)])
    return list(dict.fromkeys(names))


def all_pairs(arches: Tuple[str, ...]) -> List[Pair]:
    """Every known pair for *arches*, table order, then the original ones."""
    pairs: Dict[Tuple[str, str], Pair] = {}
    for family in FAMILIES:
        for candidate in family.candidates(arches):
            pairs.setdefault((candidate.pair.kernel, candidate.pair.ramdisk), candidate.pair)
    for pair in ORIGINAL_PAIRS:
        pairs.setdefault((pair.kernel, pair.ramdisk), pair)
    return list(pairs.values())
