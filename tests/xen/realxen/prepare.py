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
* ``media-<key>/``: the guest trees served to dom0 (media.py).
"""

from __future__ import annotations

import fcntl
import glob
import gzip
import os
import shutil
import subprocess
import time
import zipfile
from dataclasses import dataclass, field
from typing import Dict, List, Optional

from .media import Media, guest_media
from .steps import Missing, PrepareError, digest, fresh, need, prune, run, work_dir

__all__ = ["Missing", "PrepareError", "Prepared", "prepare", "work_dir"]

HERE = os.path.dirname(os.path.abspath(__file__))
DOM0_DIR = os.path.join(os.path.dirname(HERE), "dom0")
STUB_INIT = os.path.join(DOM0_DIR, "stub-init")
STUB_INIT_PATH = "/sbin/xenpvnb-test-init"

XEN_PACKAGE = "xen-hypervisor-4.17-amd64"
XEN_FILE = "boot/xen-4.17-amd64.gz"
DOM0_PACKAGES = ("xen-utils-4.17", "xenstore-utils", "python3", "python3-pip", "linux-image-amd64",
                 "initramfs-tools", "kmod", "iproute2", "procps", "util-linux")
#: Left out of the dom0 tree: nobody reads them, and they cost image time.
PATH_EXCLUDES = ("/usr/share/doc/*", "/usr/share/man/*", "/usr/share/info/*", "/usr/share/locale/*")
BASE_SIZE = "3G"
#: Bump to make the hypervisor, dom0 system and layer again after a change of
#: how they are made (media.py has its own).
FORMAT = "1"


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
