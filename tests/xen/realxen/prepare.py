"""Everything the real-Xen run needs, prepared once and cached in a work directory.

The work directory (``$XENPVNETBOOT_XEN_WORK``, default
``/var/tmp/xenpvnetboot-xen``) keeps, each under a key of what it was made
from, so that only what changed is made again:

* ``xen-<version>/xen``: the hypervisor of the Debian package (gunzipped:
  QEMU's multiboot loader does not unpack it);
* ``base-<key>/``: the dom0 system made by mmdebstrap (the tree, its ext4
  image, its kernel and initrd); the key covers the package list, the apt
  sources and the stub init.  About 2 minutes to make;
* ``layer-<key>.img``: the project as built from the checkout (``pip wheel``
  of it with its dependencies, installed offline by dom0's own pip over the
  base tree), a small ext4 image that dom0 mounts on /usr/local.  A changed
  checkout makes only this again (about 10 s);
* ``media-<key>/``: the guest trees served to dom0 (the Debian installer
  laid out as a mirror, as a netboot tree for TFTP, and as an ISO).
"""

from __future__ import annotations

import fcntl
import glob
import gzip
import hashlib
import os
import shutil
import subprocess
import time
import zipfile
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence

from .scenarios import MIRROR, NETBOOT_XEN

HERE = os.path.dirname(os.path.abspath(__file__))
DOM0_DIR = os.path.join(os.path.dirname(HERE), "dom0")
STUB_INIT = os.path.join(DOM0_DIR, "stub-init")
STUB_INIT_PATH = "/sbin/xenpvnb-test-init"
DEFAULT_WORK = "/var/tmp/xenpvnetboot-xen"

XEN_PACKAGE = "xen-hypervisor-4.17-amd64"
XEN_FILE = "boot/xen-4.17-amd64.gz"
DOM0_PACKAGES = ("xen-utils-4.17", "xenstore-utils", "python3", "python3-pip", "linux-image-amd64",
                 "initramfs-tools", "kmod", "iproute2", "procps", "util-linux")
#: Left out of the dom0 tree: nobody reads them, and they cost image time.
PATH_EXCLUDES = ("/usr/share/doc/*", "/usr/share/man/*", "/usr/share/info/*", "/usr/share/locale/*")
BASE_SIZE = "3G"
DI_PACKAGE = "debian-installer-12-netboot-amd64"
DI_DIR = "/usr/lib/debian-installer/images/12/amd64/text/debian-installer/amd64"
ISO_NAME = "debian-12-netboot.iso"
#: Bump to make every cached piece again after a change of how it is made.
FORMAT = "1"


class Missing(Exception):
    """A program or package the run needs is not installed (a skip, or a failure in CI)."""


class PrepareError(Exception):
    """A preparation step failed; the message names the step and its output."""


def work_dir() -> str:
    path = os.environ.get("XENPVNETBOOT_XEN_WORK") or DEFAULT_WORK
    if any(char in path for char in " ,"):
        raise PrepareError(f"{path}: QEMU's multiboot module list cannot hold spaces or commas")
    os.makedirs(path, exist_ok=True)
    return path


def need(program: str, package: str) -> str:
    for candidate in (program, f"/usr/sbin/{program}", f"/sbin/{program}"):
        found = shutil.which(candidate)
        if found:
            return found
    raise Missing(f"needs {program} (Debian package {package})")


def digest(*parts: object) -> str:
    hasher = hashlib.sha256()
    for part in parts:
        hasher.update(part if isinstance(part, bytes) else str(part).encode())
        hasher.update(b"\0")
    return hasher.hexdigest()[:16]


def run(argv: Sequence[str], log: str, **kwargs) -> None:
    """Run one step with its output appended to *log*; a failure names the step."""
    with open(log, "ab") as out:
        out.write(("$ " + " ".join(argv) + "\n").encode())
        out.flush()
        status = subprocess.run(list(argv), stdout=out, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, **kwargs).returncode
    if status:
        with open(log, "rb") as handle:
            tail = handle.read()[-2500:].decode(errors="replace")
        raise PrepareError(f"{argv[0]} failed (status {status}); the end of {log}:\n{tail}")


def fresh(path: str) -> str:
    """An empty directory at *path* (what a failed earlier attempt left is removed)."""
    shutil.rmtree(path, ignore_errors=True)
    os.makedirs(path)
    return path


def prune(work: str, pattern: str, keep: str) -> None:
    for path in glob.glob(os.path.join(work, pattern)):
        if os.path.abspath(path) != os.path.abspath(keep):
            if os.path.isdir(path):
                shutil.rmtree(path, ignore_errors=True)
            else:
                os.unlink(path)


def apt_version(package: str) -> str:
    out = subprocess.run(["apt-cache", "show", "--no-all-versions", package],
                         capture_output=True, text=True).stdout
    for line in out.splitlines():
        if line.startswith("Version:"):
            return line.split(":", 1)[1].strip()
    raise Missing(f"apt knows no package {package} (run apt-get update)")


# -- the hypervisor ------------------------------------------------------------------

def hypervisor(work: str, log: str) -> str:
    version = apt_version(XEN_PACKAGE)
    target = os.path.join(work, f"xen-{version.replace(':', '_')}")
    binary = os.path.join(target, "xen")
    if os.path.exists(binary):
        return binary
    build = fresh(target + ".tmp")
    run(["apt-get", "download", f"{XEN_PACKAGE}={version}"], log, cwd=build)
    debs = glob.glob(os.path.join(build, "*.deb"))
    run(["dpkg-deb", "-x", debs[0], os.path.join(build, "pkg")], log)
    with gzip.open(os.path.join(build, "pkg", XEN_FILE)) as packed, \
            open(os.path.join(build, "xen"), "wb") as plain:
        shutil.copyfileobj(packed, plain)
    shutil.rmtree(os.path.join(build, "pkg"))
    os.unlink(debs[0])
    prune(work, "xen-*", build)
    os.rename(build, target)
    return binary


# -- the dom0 system -----------------------------------------------------------------

@dataclass(frozen=True)
class Base:
    key: str
    tree: str
    image: str
    vmlinuz: str
    initrd: str


def apt_sources() -> str:
    """This machine's apt source file, which mmdebstrap takes as its mirror."""
    for path in sorted(glob.glob("/etc/apt/sources.list.d/*.sources")) + ["/etc/apt/sources.list"]:
        if os.path.isfile(path) and os.path.getsize(path):
            return path
    raise Missing("no apt source file in /etc/apt")


def codename() -> str:
    with open("/etc/os-release") as handle:
        for line in handle:
            if line.startswith("VERSION_CODENAME="):
                return line.split("=", 1)[1].strip().strip('"')
    return "bookworm"


def base_system(work: str, log: str) -> Base:
    mmdebstrap = need("mmdebstrap", "mmdebstrap")
    need("mke2fs", "e2fsprogs")
    sources = apt_sources()
    with open(sources, "rb") as handle, open(STUB_INIT, "rb") as stub:
        key = digest(FORMAT, DOM0_PACKAGES, PATH_EXCLUDES, BASE_SIZE, codename(), handle.read(),
                     stub.read())
    target = os.path.join(work, f"base-{key}")

    def base(root: str) -> Base:
        return Base(key, os.path.join(root, "tree"), os.path.join(root, "base.img"),
                    os.path.join(root, "vmlinuz"), os.path.join(root, "initrd.img"))

    if os.path.exists(os.path.join(target, "base.img")):
        return base(target)
    build = fresh(target + ".tmp")
    argv = [mmdebstrap, "--variant=minbase", "--include=" + ",".join(DOM0_PACKAGES)]
    argv += [f"--dpkgopt=path-exclude={pattern}" for pattern in PATH_EXCLUDES]
    argv += [codename(), os.path.join(build, "tree"), sources]
    run(argv, log)
    tree = os.path.join(build, "tree")
    shutil.copyfile(STUB_INIT, tree + STUB_INIT_PATH)
    os.chmod(tree + STUB_INIT_PATH, 0o755)
    for pattern, name in (("vmlinuz-*", "vmlinuz"), ("initrd.img-*", "initrd.img")):
        found = sorted(glob.glob(os.path.join(tree, "boot", pattern)))
        if not found:
            raise PrepareError(f"no /boot/{pattern} in the dom0 tree")
        shutil.copyfile(found[-1], os.path.join(build, name))
    run(["mke2fs", "-q", "-t", "ext4", "-L", "dom0", "-d", tree, "-F",
         os.path.join(build, "base.img"), BASE_SIZE], log)
    prune(work, "base-*", build)
    os.rename(build, target)
    return base(target)


# -- the project, from the checkout ----------------------------------------------------

def wheel_key(wheel_dir: str) -> str:
    """What the wheels hold, not when they were zipped: their RECORD files."""
    parts: List[bytes] = []
    for path in sorted(glob.glob(os.path.join(wheel_dir, "*.whl"))):
        with zipfile.ZipFile(path) as archive:
            records = [n for n in archive.namelist() if n.endswith(".dist-info/RECORD")]
            parts += [os.path.basename(path).encode()] + [archive.read(n) for n in records]
    return digest(*parts)


def clean_env() -> Dict[str, str]:
    """No pip or Python settings of the host leak into dom0's pip."""
    return {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "HOME": "/root", "LANG": "C.UTF-8",
            "PIP_CONFIG_FILE": os.devnull}


#: dom0's Python (Debian 12's): the wheels must be built for this version.
DOM0_PYTHON = "3.11"


def wheel_python(python: str) -> str:
    """A host interpreter of dom0's Python version, for ``pip wheel``."""
    for candidate in (python, "/usr/bin/python3", f"/usr/bin/python{DOM0_PYTHON}"):
        found = subprocess.run([candidate, "-c", "import sys, pip; print('%d.%d' % sys.version_info[:2])"],
                               capture_output=True, text=True) if shutil.which(candidate) else None
        if found is not None and found.stdout.strip() == DOM0_PYTHON:
            return candidate
    raise Missing(f"needs a Python {DOM0_PYTHON} with pip on the host to build wheels for dom0 "
                  "(Debian packages python3, python3-pip)")


def project_layer(work: str, base: Base, checkout: str, log: str, python: str) -> str:
    python = wheel_python(python)
    wheels = fresh(os.path.join(work, "wheels"))
    run([python, "-m", "pip", "wheel", "--quiet", "--wheel-dir", wheels, checkout], log)
    key = digest(FORMAT, base.key, wheel_key(wheels))
    image = os.path.join(work, f"layer-{key}.img")
    if os.path.exists(image):
        return image
    overlay = os.path.join(work, "overlay")
    if os.path.ismount(os.path.join(overlay, "merged")):  # an earlier run was stopped here
        run(["umount", os.path.join(overlay, "merged")], log)
    fresh(overlay)
    upper, scratch, merged = (os.path.join(overlay, name) for name in ("upper", "scratch", "merged"))
    for path in (upper, scratch, merged):
        os.makedirs(path)
    run(["mount", "-t", "overlay", "overlay", "-o",
         f"lowerdir={base.tree},upperdir={upper},workdir={scratch}", merged], log)
    try:
        shutil.copytree(wheels, os.path.join(merged, "tmp", "wheels"))
        run(["chroot", merged, "/usr/bin/python3", "-m", "pip", "install", "--quiet", "--no-index",
             "--find-links", "/tmp/wheels", "--no-cache-dir", "--break-system-packages",
             "--root-user-action=ignore", "--no-warn-script-location", "xenpvnetboot"],
            log, env=clean_env())
        shutil.rmtree(os.path.join(merged, "tmp", "wheels"))
    finally:
        run(["umount", merged], log)
    strays = [name for name in os.listdir(upper) if name not in ("usr", "tmp")]
    strays += [name for name in os.listdir(os.path.join(upper, "usr")) if name != "local"]
    if strays:
        raise PrepareError(f"pip wrote outside /usr/local in the dom0 tree: {strays}")
    run(["mke2fs", "-q", "-t", "ext4", "-L", "project", "-d", os.path.join(upper, "usr", "local"),
         "-F", image + ".tmp", "512M"], log)
    shutil.rmtree(overlay)
    prune(work, "layer-*.img", image + ".tmp")
    os.rename(image + ".tmp", image)
    return image


# -- what the guests boot ---------------------------------------------------------------

@dataclass(frozen=True)
class Media:
    root: str
    www: str
    tftp: str
    iso: str


def link(source: str, target: str) -> None:
    os.makedirs(os.path.dirname(target), exist_ok=True)
    os.link(source, target)


def guest_media(work: str, log: str) -> Media:
    xorriso = need("xorriso", "xorriso")
    kernel, initrd = os.path.join(DI_DIR, "linux"), os.path.join(DI_DIR, "initrd.gz")
    if not (os.path.isfile(kernel) and os.path.isfile(initrd)):
        raise Missing(f"needs the Debian installer (Debian package {DI_PACKAGE})")
    version = subprocess.run(["dpkg-query", "-W", "-f=${Version}", DI_PACKAGE],
                             capture_output=True, text=True).stdout
    target = os.path.join(work, f"media-{digest(FORMAT, version, MIRROR, ISO_NAME)}")
    media = Media(target, os.path.join(target, "www"), os.path.join(target, "tftp"),
                  os.path.join(target, "www", "iso", ISO_NAME))
    if os.path.exists(media.iso):
        return media
    build = fresh(target + ".tmp")
    pair = {"linux": os.path.join(build, "di", "linux"), "initrd": os.path.join(build, "di", "initrd.gz")}
    os.makedirs(os.path.join(build, "di"))
    shutil.copyfile(kernel, pair["linux"])
    shutil.copyfile(initrd, pair["initrd"])
    www = os.path.join(build, "www")
    for top in ("", "stall/"):  # stall/: the same mirror, its kernel stalls (servers.py)
        link(pair["linux"], os.path.join(www, top + NETBOOT_XEN, "vmlinuz"))
        link(pair["initrd"], os.path.join(www, top + NETBOOT_XEN, "initrd.gz"))
        netboot = os.path.join(www, top + MIRROR, "current/images/netboot/debian-installer/amd64")
        link(pair["linux"], os.path.join(netboot, "linux"))
        link(pair["initrd"], os.path.join(netboot, "initrd.gz"))
    link(pair["linux"], os.path.join(build, "tftp", "debian-installer", "amd64", "linux"))
    link(pair["initrd"], os.path.join(build, "tftp", "debian-installer", "amd64", "initrd.gz"))
    isotree = os.path.join(build, "isotree")
    link(pair["linux"], os.path.join(isotree, "install.amd", "vmlinuz"))
    link(pair["initrd"], os.path.join(isotree, "install.amd", "initrd.gz"))
    os.makedirs(os.path.join(isotree, ".disk"))
    with open(os.path.join(isotree, ".disk", "info"), "w") as handle:
        handle.write(f'Debian GNU/Linux 12 "Bookworm" - netboot amd64 (installer {version})')
    os.makedirs(os.path.join(www, "iso"))
    run([xorriso, "-as", "mkisofs", "-R", "-J", "-V", "DEBIAN12", "-o",
         os.path.join(www, "iso", ISO_NAME), isotree], log)
    shutil.rmtree(isotree)
    prune(work, "media-*", build)
    os.rename(build, target)
    return media


# -- all of it -------------------------------------------------------------------------

@dataclass
class Prepared:
    xen: str
    base: Base
    layer: str
    media: Media
    seconds: Dict[str, float] = field(default_factory=dict)


def prepare(checkout: str, python: str, log: Optional[str] = None) -> Prepared:
    """Make (or find in the cache) every piece; one run at a time per work directory."""
    need("qemu-system-x86_64", "qemu-system-x86")
    work = work_dir()
    log = log or os.path.join(work, "prepare.log")
    seconds: Dict[str, float] = {}
    with open(os.path.join(work, "lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        open(log, "w").close()  # the log of this preparation only
        start = time.monotonic()
        xen = hypervisor(work, log)
        seconds["hypervisor"] = round(time.monotonic() - start, 1)
        start = time.monotonic()
        base = base_system(work, log)
        seconds["dom0 system"] = round(time.monotonic() - start, 1)
        start = time.monotonic()
        layer = project_layer(work, base, checkout, log, python)
        seconds["project layer"] = round(time.monotonic() - start, 1)
        start = time.monotonic()
        media = guest_media(work, log)
        seconds["guest media"] = round(time.monotonic() - start, 1)
    return Prepared(xen, base, layer, media, seconds)
