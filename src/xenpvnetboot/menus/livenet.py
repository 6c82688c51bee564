"""What a live system needs to fetch the rest of itself over the network.

A live kernel's ramdisk looks for its root filesystem on the medium it was
booted from; a Xen guest booted from a remote location has no such medium,
so it must be told where to download it from, the way the installer
arguments tell anaconda and linuxrc (see :mod:`..layouts.installargs`):

* Ubuntu's casper downloads the whole ISO into memory: ``url=<ISO URL>``
  with ``ip=dhcp``, and ``cloud-config-url=/dev/null`` so that cloud-init
  does not take ``url=`` for its own and download the ISO a second time.
  Only an ISO reached over http, https or ftp serves; an NFS directory
  holding the unpacked ISO is ``netboot=nfs nfsroot=host:/path``;
* Arch's archiso fetches ``<basedir>/`` of the tree:
  ``archiso_http_srv=<tree>/`` (http, https) or ``archiso_nfs_srv=host:/path``
  (NFS), with ``ip=dhcp``; an ISO image cannot serve (its files have no URL);
* Alpine fetches its kernel modules and packages: ``modloop=`` (the
  ``modloop-<flavour>`` next to the kernel) and, for a medium tree with
  ``apks/``, ``alpine_repo=<tree>/apks``, with ``ip=dhcp``.

Nothing is added for a location the guest cannot reach (a local path, an
image on this host, TFTP, a URL carrying a password, which is never
written into a command line) or for a kernel that is not one of these.
The functions are pure: the caller passes the location's URL.
"""

from __future__ import annotations

import posixpath
import re
from typing import Optional
from urllib.parse import urlsplit

from ..layouts.installargs import _nfs_parts as nfs_parts

CASPER = "casper"
ARCHISO = "archiso"
ALPINE = "alpine"

_ARCHISO_OPTIONS = ("archisobasedir", "archisolabel", "archisosearchuuid", "archisodevice")
_ALPINE_KERNEL = re.compile(r"^vmlinuz-([A-Za-z0-9_.-]+)$")
_HTTP = ("http", "https")


def _options(cmdline: str) -> dict:
    return {word.split("=", 1)[0]: word.partition("=")[2] for word in cmdline.split()}


def live_system(kernel: str, cmdline: str = "", family: Optional[str] = None) -> Optional[str]:
    """CASPER, ARCHISO, ALPINE or None, from the kernel path and its arguments.

    *family* is the layout family key when known (``"alpine"``,
    ``"archlinux"``): it settles a kernel path that says little by itself.
    """
    options = _options(cmdline)
    path = kernel.strip("/")
    if options.get("boot") == "casper" or path.startswith("casper/"):
        return CASPER
    if any(name in options for name in _ARCHISO_OPTIONS) or family == "archlinux" \
            or re.search(r"(^|/)arch/boot/[^/]+/vmlinuz", path):
        return ARCHISO
    alpine_hint = family == "alpine" or "alpine_dev" in options or "modloop" in options
    if alpine_hint and _ALPINE_KERNEL.match(posixpath.basename(path)):
        return ALPINE
    return None


def _reachable(location: str) -> Optional[str]:
    """The scheme of a location the guest can reach itself, or None."""
    if any(ch.isspace() for ch in location):
        return None
    if location.startswith("nfs:"):
        return "nfs" if nfs_parts(location) is not None else None
    parts = urlsplit(location)
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https", "ftp") or "@" in parts.netloc or not parts.netloc:
        return None
    return scheme


def _dir_url(location: str, path: str) -> str:
    """``<location>/<path>`` with exactly one slash between."""
    base = location.rstrip("/")
    return f"{base}/{path}" if path else base


def network_args(system: str, location: str, kernel: str, image: bool,
                 cmdline: str = "") -> str:
    """The arguments *system* needs, booted from *location* (see module doc).

    *location* is the URL of the medium (the ISO's URL when *image*, the
    tree's otherwise); *kernel* the kernel's path inside it.
    """
    scheme = _reachable(location)
    if scheme is None:
        return ""
    path = kernel.strip("/")
    if system == CASPER:
        if image and scheme != "nfs":
            return f"ip=dhcp url={location} cloud-config-url=/dev/null"
        if not image and scheme == "nfs":
            host, export = nfs_parts(location)  # type: ignore[misc]
            return f"ip=dhcp netboot=nfs nfsroot={host}:{export}"
        return ""
    if image:
        return ""
    if system == ARCHISO:
        basedir = _options(cmdline).get("archisobasedir") or "arch"
        marker = f"{basedir}/boot/"
        prefix = path[: path.find(marker)] if marker in path else ""
        if scheme == "nfs":
            host, export = nfs_parts(location)  # type: ignore[misc]
            return f"ip=dhcp archiso_nfs_srv={host}:{posixpath.join(export, prefix)}".rstrip("/")
        if scheme not in _HTTP:
            return ""
        return f"ip=dhcp archiso_http_srv={_dir_url(location, prefix.rstrip('/'))}/"
    if system == ALPINE and scheme != "nfs":
        match = _ALPINE_KERNEL.match(posixpath.basename(path))
        if match is None:
            return ""
        directory = posixpath.dirname(path)
        modloop = _dir_url(location, posixpath.join(directory, f"modloop-{match.group(1)}"))
        args = f"ip=dhcp modloop={modloop}"
        if posixpath.basename(directory) == "boot":
            medium = posixpath.dirname(directory)
            args += f" alpine_repo={_dir_url(location, posixpath.join(medium, 'apks'))}"
        return args
    return ""


def live_network_args(kernel: str, cmdline: str, location: str, image: bool,
                      family: Optional[str] = None) -> str:
    """Network arguments for a live kernel booted from *location*; '' for any other."""
    system = live_system(kernel, cmdline, family)
    if system is None:
        return ""
    return network_args(system, location, kernel, image, cmdline)
