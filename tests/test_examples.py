"""The guest configurations of examples/, booted the way xl would boot them.

Each examples/*.cfg is parsed (the part of the xl.cfg syntax they use),
turned into the command line libxl builds from it -- kernel= as --kernel,
ramdisk= as --ramdisk, extra= as --args, --runas for bootloader_restrict,
bootloader_args verbatim, the first disk last -- and run on a pty against a
real server on 127.0.0.1.  The server serves, at the path the example
names, a small tree laid out like the distribution's: only the host part of
each location changes, and a local path moves below a scratch root.  Every
example must boot (exit 0), pick the pair a real tree of that distribution
would boot, pass its kernel check without a warning, and hand the installer
the command line the example promises.

Nothing but 127.0.0.1 is ever contacted: the rewritten command line is
checked for any other host before it runs, and proxies are switched off.
"""

from __future__ import annotations

import glob
import gzip
import os
import re
import shutil
import ssl
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional, Tuple, Union
from urllib.parse import urlsplit, urlunsplit

import pytest
from support import elfgen
from support import layout_trees as lt
from support import libxl
from support.env import debian_installer_files, need_root
from support.libxl import run_bootloader, sha256_file

from xenpvnetboot import cli
from xenpvnetboot.transports.base import retry_delay

EXAMPLES = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "examples")
LOOPBACK = "127.0.0.1"
#: The uid libxl would pass with bootloader_restrict = 1 (no passwd entry).
RESTRICT_UID = 40123
#: Seconds after which libxl kills a restricted bootloader (LIBXL_BOOTLOADER_TIMEOUT).
RESTRICT_TIMEOUT = 120
#: Proxies off: the bootloader must reach the local servers directly.
NO_PROXY_ENV = {name: "" for name in ("http_proxy", "https_proxy", "HTTPS_PROXY", "ftp_proxy",
                                      "FTP_PROXY", "all_proxy", "ALL_PROXY")}
NO_PROXY_ENV.update(no_proxy=LOOPBACK, NO_PROXY=LOOPBACK)

pytestmark = pytest.mark.timeout(180)


# -- a parser for the xl.cfg syntax ---------------------------------------------------

Value = Union[str, int, float, List["Value"]]

_TOKEN = re.compile(r"""
    (?P<space>[ \t\r]+)
  | (?P<comment>\#[^\n]*)
  | (?P<newline>\n)
  | (?P<string>"(?:[^"\\\n]|\\.)*"|'(?:[^'\\\n]|\\.)*')
  | (?P<number>0[xX][0-9a-fA-F]+|[0-9]+(?:\.[0-9]+)?)
  | (?P<name>[A-Za-z_][A-Za-z0-9_]*)
  | (?P<op>\+=|=|\[|\]|,|;)
""", re.VERBOSE)
_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "\\": "\\", '"': '"', "'": "'"}


class XlCfgError(ValueError):
    pass


def _tokens(text: str) -> List[Tuple[str, object, int]]:
    """(kind, value, line) of each token; blanks and comments dropped."""
    out: List[Tuple[str, object, int]] = []
    pos, line = 0, 1
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        if match is None:
            raise XlCfgError(f"line {line}: unexpected {text[pos]!r}")
        kind, raw = match.lastgroup, match.group()
        pos = match.end()
        if kind == "newline":
            out.append(("end", "\n", line))
            line += 1
        elif kind == "string":
            body = re.sub(r"\\(.)", lambda m: _ESCAPES.get(m.group(1), m.group(1)), raw[1:-1])
            out.append(("value", body, line))
        elif kind == "number":
            number = int(raw, 16) if raw[:2].lower() == "0x" else float(raw) if "." in raw else int(raw)
            out.append(("value", number, line))
        elif kind == "name":
            out.append(("name", raw, line))
        elif kind == "op":
            out.append(("end", raw, line) if raw == ";" else (raw, raw, line))
    out.append(("end", "", line))
    return out


def parse_xl_cfg(text: str) -> Dict[str, Value]:
    """Settings of an xl.cfg file: ``key = "string"``, numbers, ``[lists]``,
    ``+=`` to extend a list, comments, ``;`` or a newline between settings."""
    tokens = _tokens(text)
    pos = 0
    settings: Dict[str, Value] = {}

    def peek() -> Tuple[str, object, int]:
        return tokens[pos]

    def take(*kinds: str) -> Tuple[str, object, int]:
        nonlocal pos
        token = tokens[pos]
        if token[0] not in kinds:
            raise XlCfgError(f"line {token[2]}: expected {' or '.join(kinds)}, found {token[1]!r}")
        pos += 1
        return token

    def skip_newlines() -> None:
        nonlocal pos
        while tokens[pos][0] == "end" and tokens[pos][1] == "\n":
            pos += 1

    def value() -> Value:
        kind, item, _ = take("value", "[")
        if kind == "value":
            return item  # type: ignore[return-value]
        items: List[Value] = []
        skip_newlines()
        while peek()[0] != "]":
            items.append(value())
            skip_newlines()
            if peek()[0] != ",":
                break
            take(",")
            skip_newlines()
        take("]")
        return items

    while pos < len(tokens) - 1:
        if peek()[0] == "end":
            pos += 1
            continue
        _, key, line = take("name")
        op = take("=", "+=")[0]
        item = value()
        if op == "+=":
            previous = settings.get(key, [])  # type: ignore[arg-type]
            if not isinstance(previous, list) or not isinstance(item, list):
                raise XlCfgError(f"line {line}: += needs lists")
            item = previous + item
        settings[key] = item  # type: ignore[index]
        take("end")
    return settings


def load_example(name: str) -> Dict[str, Value]:
    with open(os.path.join(EXAMPLES, name), encoding="utf-8") as handle:
        return parse_xl_cfg(handle.read())


def example_names() -> List[str]:
    return sorted(os.path.basename(path) for path in glob.glob(os.path.join(EXAMPLES, "*.cfg")))


def test_parser_handles_the_xl_cfg_syntax():
    cfg = parse_xl_cfg(
        '# comment\nname = "g1"   # trailing comment\nmemory = 1024; vcpus = 0x2\n'
        "disk = [ 'phy:/dev/vg/g1,xvda,w',\n  \"file:/a b.iso,xvdc,r\", ]\n"
        'extra = "a=\\"b c\\" # not a comment"\nratio = 1.5\nvif = []\nvif += ["bridge=xenbr0"]\n'
    )
    assert cfg == {
        "name": "g1", "memory": 1024, "vcpus": 2,
        "disk": ["phy:/dev/vg/g1,xvda,w", "file:/a b.iso,xvdc,r"],
        "extra": 'a="b c" # not a comment', "ratio": 1.5, "vif": ["bridge=xenbr0"],
    }
    for bad in ('name = "unterminated\n', "name = [\"a\"\n", "= 3\n", 'a = "x" "y"\n'):
        with pytest.raises(XlCfgError):
            parse_xl_cfg(bad)


# -- what libxl makes of a configuration --------------------------------------------


def first_disk(cfg: Dict[str, Value]) -> str:
    """The path of the first disk: ``target=`` or the positional one, without prefix."""
    disks = cfg["disk"]
    assert isinstance(disks, list) and disks, "a guest needs a disk"
    spec = str(disks[0])
    if "target=" in spec:
        return spec.split("target=", 1)[1].strip()
    match = re.match(r"^(?:[a-z0-9]+:)*(/[^,]*)", spec.split(",", 1)[0].strip())
    assert match, f"no disk path in {spec!r}"
    return match.group(1)


@dataclass
class Boot:
    """The inputs libxl takes from a configuration for the bootloader."""

    bootloader_args: List[str]
    kernel: Optional[str]
    ramdisk: Optional[str]
    cmdline: Optional[str]
    runas: Optional[int]
    disk: str

    @classmethod
    def from_cfg(cls, cfg: Dict[str, Value]) -> "Boot":
        args = cfg.get("bootloader_args", [])
        assert isinstance(args, list) and all(isinstance(a, str) for a in args)
        cmdline = cfg.get("cmdline", cfg.get("extra"))
        return cls(
            bootloader_args=[str(a) for a in args],
            kernel=cfg.get("kernel"),  # type: ignore[arg-type]
            ramdisk=cfg.get("ramdisk"),  # type: ignore[arg-type]
            cmdline=str(cmdline) if cmdline is not None else None,
            runas=RESTRICT_UID if cfg.get("bootloader_restrict") == 1 else None,
            disk=first_disk(cfg),
        )

    def location(self) -> str:
        """The last --location of bootloader_args (a later option wins)."""
        found = None
        for index, arg in enumerate(self.bootloader_args):
            if arg.startswith("--location="):
                found = arg.split("=", 1)[1]
            elif arg == "--location":
                found = self.bootloader_args[index + 1]
        assert found, "the examples all name a location"
        return found


# -- locations: their form, their path, and where they point in the test ---------

_NFS = re.compile(r"^(?P<prefix>nfs\+iso|nfs):(?:(?P<options>[^:/\[\]]*=[^:]*):)?"
                  r"(?P<host>\[[^\]]+\]|[^:/\[\]]+):(?P<path>/.*)$")
_URL_SCHEMES = ("http", "https", "ftp", "tftp")


def location_form(location: str) -> str:
    """http, https, ftp, tftp, nfs, nfs+iso, file, or local."""
    match = _NFS.match(location)
    if match:
        return match.group("prefix")
    scheme = urlsplit(location).scheme.lower() if "://" in location else ""
    return scheme if scheme else "local"


def location_path(location: str) -> str:
    """The absolute path a location names on its server (or on this host)."""
    match = _NFS.match(location)
    if match:
        return match.group("path")
    if "://" in location:
        return urlsplit(location).path or "/"
    return location


class World:
    """A scratch root standing in for the install server and dom0's disks.

    The path of every location lives at the same path below :attr:`root`,
    which each server serves (NFS: its ``/srv``); :meth:`rewrite` moves a
    command line there.
    """

    def __init__(self, root: str) -> None:
        self.root = root
        self.ports: Dict[str, int] = {}
        #: The certificate of the CA that signed the https server's.
        self.ca_file: Optional[str] = None

    def path(self, absolute: str) -> str:
        return os.path.join(self.root, absolute.lstrip("/"))

    def value(self, text: str) -> str:
        """*text* with its host replaced by the local server's, or its path moved."""
        form = location_form(text)
        if form in ("nfs", "nfs+iso"):
            match = _NFS.match(text)
            assert match is not None
            options = [o for o in (match.group("options") or "").split(",") if o and not o.startswith("port=")]
            options.append(f"port={self.ports['nfs']}")
            return f"{match.group('prefix')}:{','.join(options)}:{LOOPBACK}:{match.group('path')}"
        if form in _URL_SCHEMES:
            parts = urlsplit(text)
            user = parts.netloc.rpartition("@")[0]
            netloc = f"{user + '@' if user else ''}{LOOPBACK}:{self.ports[form]}"
            return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))
        if form == "file":
            return "file://" + self.path(urlsplit(text).path)
        if text.startswith("/"):
            return self.path(text)
        return text  # a path relative to the location, a number, a policy...

    def rewrite(self, boot: Boot) -> Boot:
        args: List[str] = []
        for arg in boot.bootloader_args:
            if arg.startswith("--") and "=" in arg:
                option, value = arg.split("=", 1)
                args.append(f"{option}={self.value(value)}")
            else:
                args.append(arg if arg.startswith("-") else self.value(arg))
        return Boot(args, boot.kernel and self.value(boot.kernel),
                    boot.ramdisk and self.value(boot.ramdisk), boot.cmdline, boot.runas,
                    boot.disk)


def hosts_in(argv: List[str]) -> List[str]:
    """Every host a command line would make the bootloader contact."""
    hosts = []
    for arg in argv:
        if arg.startswith("--args="):
            continue  # the guest's command line: passed on, never fetched
        value = arg.split("=", 1)[1] if arg.startswith("--") and "=" in arg else arg
        match = _NFS.match(value)
        if match:
            hosts.append(match.group("host"))
        for url in re.findall(r"[A-Za-z][A-Za-z0-9+.-]*://[^\s\"']*", value):
            if not url.lower().startswith("file:"):
                hosts.append(urlsplit(url).hostname or "")
    return hosts


# -- the trees served -------------------------------------------------------------

#: A file is its bytes, or the path of a real file to link to.
Files = Dict[str, Union[bytes, str]]


def kernel(tag: str) -> bytes:
    """A small Linux bzImage with the Xen notes of a PV and a PVH kernel, unique per tag."""
    elf = elfgen.build_elf(elfgen.pv_notes() + elfgen.pvh_notes(),
                           banner=f"Linux version 6.1.0-{tag} (builder@example) #1 SMP\n".encode())
    return elfgen.build_bzimage(elf)


def ramdisk(tag: str) -> bytes:
    archive = elfgen.newc_cpio([("init", f"#!/bin/sh\n# {tag}\nexec /bin/sh\n".encode())])
    return gzip.compress(archive, mtime=0)


def decoys(tag: str, *paths: str) -> Files:
    """Files a tree has but that must not be booted (they would fail the check)."""
    return {path: lt.payload(tag, path) for path in paths}


def fedora40() -> Files:
    files: Files = {lt.PXE[0]: kernel("fedora40"), lt.PXE[1]: ramdisk("fedora40")}
    files.update(decoys("fedora40", "images/install.img", *lt.XEN, "EFI/BOOT/grubx64.efi"))
    sums = "\n".join(f"{p} = sha256:{lt.sha256(files[p])}" for p in lt.PXE)  # type: ignore[arg-type]
    files[".treeinfo"] = lt.productmd("Fedora", "40", "x86_64",
                                      {"x86_64": lt.PXE, "xen": lt.PXE}, sums).encode()
    return files


def leap155() -> Files:
    files: Files = {lt.SUSE_LOADER[0]: kernel("leap155"), lt.SUSE_LOADER[1]: ramdisk("leap155")}
    files.update(decoys("leap155", "boot/x86_64/efi", "boot/aarch64/loader/linux",
                        "boot/aarch64/loader/initrd"))
    files[".treeinfo"] = lt.productmd("openSUSE Leap", "15.5", "x86_64",
                                      {"x86_64": lt.SUSE_LOADER, "xen": lt.SUSE_LOADER}).encode()
    files["media.1/media"] = b"openSUSE - openSUSE-Leap-15.5-Build491.1-x86_64\n20230607\n"
    return files


def tumbleweed() -> Files:
    files: Files = {lt.SUSE_LOADER[0]: kernel("tumbleweed"), lt.SUSE_LOADER[1]: ramdisk("tumbleweed")}
    files.update(decoys("tumbleweed", "boot/aarch64/loader/linux", "boot/aarch64/loader/initrd"))
    files["media.1/media"] = b"openSUSE - openSUSE-20240401-x86_64\n20240401\n"
    return files


def alpine_netboot() -> Files:
    files: Files = {"vmlinuz-virt": kernel("alpine-virt"), "initramfs-virt": ramdisk("alpine-virt")}
    files.update(decoys("alpine", "modloop-virt", "vmlinuz-lts", "initramfs-lts", "modloop-lts"))
    return files


def debian_mirror() -> Files:
    """The real Debian 12 installer, as the Xen pair of a mirror's installer-amd64/."""
    real_kernel, real_initrd = debian_installer_files()
    files: Files = {lt.DEBIAN_XEN[0]: real_kernel, lt.DEBIAN_XEN[1]: real_initrd}
    files.update(decoys("debian12", *lt.DEBIAN_NETBOOT, "current/images/netboot/netboot.tar.gz",
                        "current/images/MANIFEST"))
    return files


def debian_netinst() -> Files:
    files: Files = {"install.amd/xen/vmlinuz": kernel("debian-netinst"),
                    "install.amd/xen/initrd.gz": ramdisk("debian-netinst")}
    files.update(decoys("debian-netinst", "install.amd/vmlinuz", "install.amd/initrd.gz",
                        "install.amd/gtk/vmlinuz", "install.amd/gtk/initrd.gz",
                        "isolinux/isolinux.bin"))
    files[".disk/info"] = lt.DEBIAN_INFO.encode()
    return files


def ubuntu2204_live() -> Files:
    files: Files = {"casper/vmlinuz": kernel("ubuntu2204"), "casper/initrd": ramdisk("ubuntu2204")}
    files.update(decoys("ubuntu2204", "casper/hwe-vmlinuz", "casper/hwe-initrd",
                        "casper/ubuntu-server-minimal.squashfs"))
    files[".disk/info"] = b'Ubuntu-Server 22.04.4 LTS "Jammy Jellyfish" - Release amd64 (20240220)'
    files["boot/grub/grub.cfg"] = UBUNTU_GRUB.encode()
    return files


#: The menu of the Ubuntu 22.04 live server ISO, as far as it matters here.
UBUNTU_GRUB = """set timeout=30
loadfont unicode
set menu_color_normal=white/black
menuentry "Try or Install Ubuntu Server" {
	set gfxpayload=keep
	linux	/casper/vmlinuz  ---
	initrd	/casper/initrd
}
menuentry "Ubuntu Server with the HWE kernel" {
	set gfxpayload=keep
	linux	/casper/hwe-vmlinuz  ---
	initrd	/casper/hwe-initrd
}
grub_platform
if [ "$grub_platform" = "efi" ]; then
menuentry 'Boot from next volume' {
	exit 1
}
fi
"""


UBUNTU_LEGACY = "current/legacy-images/netboot/ubuntu-installer/amd64/"


def ubuntu2004_mirror() -> Files:
    files: Files = {UBUNTU_LEGACY + "linux": kernel("ubuntu2004"),
                    UBUNTU_LEGACY + "initrd.gz": ramdisk("ubuntu2004")}
    files.update(decoys("ubuntu2004", "current/legacy-images/netboot/netboot.tar.gz",
                        "current/legacy-images/netboot/mini.iso"))
    return files


@dataclass
class Case:
    """What an example's tree holds and what booting it must give."""

    tree: Callable[[], Files]
    kernel: str
    ramdisk: str
    #: The installer option the bootloader adds from the location ("" for none).
    install: str = ""
    #: The location is an ISO image made of the tree.
    image: bool = False


CASES: Dict[str, Case] = {
    "debian12-http.cfg": Case(debian_mirror, *lt.DEBIAN_XEN),
    "fedora40-https-private-ca.cfg": Case(fedora40, *lt.PXE, install="inst.repo"),
    "opensuse-leap15-ftp.cfg": Case(leap155, *lt.SUSE_LOADER, install="install"),
    "alpine319-tftp.cfg": Case(alpine_netboot, "vmlinuz-virt", "initramfs-virt"),
    "fedora40-nfs.cfg": Case(fedora40, *lt.PXE),
    "ubuntu2204-iso-pvh.cfg": Case(ubuntu2204_live, "casper/vmlinuz", "casper/initrd", image=True),
    "debian12-nfs-iso.cfg": Case(debian_netinst, "install.amd/xen/vmlinuz",
                                 "install.amd/xen/initrd.gz", image=True),
    "opensuse-tumbleweed-dir.cfg": Case(tumbleweed, *lt.SUSE_LOADER),
    "ubuntu2004-http-restricted.cfg": Case(ubuntu2004_mirror, UBUNTU_LEGACY + "linux",
                                           UBUNTU_LEGACY + "initrd.gz"),
}


def write_tree(base: str, files: Files) -> None:
    for rel, content in files.items():
        path = os.path.join(base, rel)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        if isinstance(content, str):
            os.symlink(content, path)
        else:
            with open(path, "wb") as handle:
                handle.write(content)
    for directory, _, _ in os.walk(base):
        os.chmod(directory, 0o755)  # readable by NFS, FTP and TFTP servers alike


def file_digest(content: Union[bytes, str]) -> str:
    return sha256_file(content) if isinstance(content, str) else lt.sha256(content)


# -- the servers: one of each kind, all serving the world ------------------------------


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> World:
    root = str(tmp_path_factory.mktemp("world"))
    os.chmod(root, 0o755)
    os.makedirs(os.path.join(root, "srv"), mode=0o755)
    return World(root)


@pytest.fixture(scope="module")
def http_world(world):
    from support.http_server import TestHTTPServer

    server = TestHTTPServer(world.root).start()
    world.ports["http"] = server.port
    yield server
    server.stop()


@pytest.fixture(scope="module")
def https_world(world, tls_ca):
    from support.http_server import TestHTTPServer

    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    tls_ca.issue_cert(LOOPBACK).configure_cert(context)
    server = TestHTTPServer(world.root, tls=context).start()
    world.ports["https"] = server.port
    yield server
    server.stop()


@pytest.fixture(scope="module")
def ftp_world(world):
    pytest.importorskip("pyftpdlib")
    from support.ftp_server import TestFTPServer

    server = TestFTPServer(world.root).start()
    world.ports["ftp"] = server.port
    yield server
    server.stop()


@pytest.fixture(scope="module")
def tftp_world(world):
    from support.tftp_servers import need_tftpd_hpa, start_tftpd_hpa

    need_tftpd_hpa()
    server = start_tftpd_hpa(world.root)
    world.ports["tftp"] = server.port
    yield server
    server.stop()


@pytest.fixture(scope="module")
def nfs_world(world, tmp_path_factory):
    """An NFSv4 ganesha exporting the world's /srv as /srv, on a port of its own
    (NFSv4 only, so that it never disturbs the NFSv3 registrations of another)."""
    from support.nfs_server import Export, GaneshaServer, Rpcbind, free_port, make_export_dir, need_ganesha

    need_ganesha()
    work = make_export_dir(str(tmp_path_factory.mktemp("ganesha-examples")))
    rpcbind = Rpcbind(work)
    server = GaneshaServer(work, [Export(world.path("/srv"), "/srv", protocols="4")],
                           protocols="4", port=free_port())
    try:
        server.start()
        world.ports["nfs"] = server.port
        yield server
    finally:
        server.stop()
        rpcbind.stop()


SERVER_FIXTURES = {"http": "http_world", "https": "https_world", "ftp": "ftp_world",
                   "tftp": "tftp_world", "nfs": "nfs_world", "nfs+iso": "nfs_world"}


# -- the tests --------------------------------------------------------------------


def test_every_example_has_a_case():
    assert example_names() == sorted(CASES), "add a Case for each example, and an example for each Case"


def test_examples_cover_every_location_form_and_distribution():
    forms = set()
    text = ""
    for name in example_names():
        boot = Boot.from_cfg(load_example(name))
        form = location_form(boot.location())
        if form == "local":
            form = "image" if CASES[name].image else "directory"
        forms.add(form)
        with open(os.path.join(EXAMPLES, name), encoding="utf-8") as handle:
            text += handle.readline()
    assert forms >= {"http", "https", "ftp", "tftp", "nfs", "nfs+iso", "image", "directory"}
    for distribution in ("Debian", "Fedora", "openSUSE", "Ubuntu", "Alpine"):
        assert distribution in text, f"no example for {distribution}"


@pytest.mark.parametrize("name", example_names())
def test_example_is_a_complete_guest_configuration(name):
    cfg = load_example(name)
    assert isinstance(cfg.get("name"), str) and cfg["name"]
    assert cfg.get("type") in ("pv", "pvh")
    assert isinstance(cfg.get("memory"), int) and cfg["memory"] >= 512
    assert isinstance(cfg.get("vcpus"), int) and cfg["vcpus"] >= 1
    assert isinstance(cfg.get("vif"), list) and cfg["vif"]
    assert cfg.get("bootloader") == "xenpvnetboot"
    boot = Boot.from_cfg(cfg)
    assert all(arg.startswith("--") for arg in boot.bootloader_args), boot.bootloader_args
    if cfg["type"] == "pvh":
        assert "--guest-type=pvh" in boot.bootloader_args, "a PVH guest's kernel check needs it"
    # Every option is one the bootloader knows, with a valid value.
    args = cli.parse_args(boot.bootloader_args + [boot.disk])
    assert args.location == boot.location()
    if boot.runas is not None:
        # libxl kills a restricted bootloader after 120 s: a dead server must cost less.
        stalls = (args.retries + 1) * args.timeout + sum(retry_delay(n) for n in range(args.retries))
        assert stalls < RESTRICT_TIMEOUT / 2, f"up to {stalls:g} s of stalls per file"


def boot_example(name: str, world: World, workdir: str, monkeypatch) -> Tuple[libxl.BootloaderRun, Boot]:
    """Build the example's tree, then run the bootloader as libxl would for it."""
    case = CASES[name]
    boot = Boot.from_cfg(load_example(name))
    location = boot.location()
    served = world.path(location_path(location))
    files = case.tree()
    if case.image:
        from support.images import build_iso

        source = os.path.join(world.root, "iso-source", name)
        write_tree(source, files)
        os.makedirs(os.path.dirname(served), mode=0o755, exist_ok=True)
        build_iso(source, served, "rockridge")
        os.chmod(served, 0o644)
    else:
        write_tree(served, files)
    for arg in boot.bootloader_args:  # the private CA, where the example keeps it
        if arg.startswith("--ca-cert="):
            target = world.path(arg.split("=", 1)[1])
            os.makedirs(os.path.dirname(target), exist_ok=True)
            assert world.ca_file is not None
            shutil.copy(world.ca_file, target)

    local = world.rewrite(boot)
    argv = libxl.build_argv(local.bootloader_args, "OUT", "DIR", local.kernel, local.ramdisk,
                            local.cmdline, local.runas, disk=local.disk)
    assert set(hosts_in(argv)) <= {LOOPBACK}, f"would contact another host: {argv}"
    assert "192.168." not in " ".join(a for a in argv if not a.startswith("--args="))

    # libxl appends the guest's first disk.
    run = run_bootloader(local.bootloader_args, workdir, kernel=local.kernel, ramdisk=local.ramdisk,
                         cmdline=local.cmdline, runas=local.runas, env=NO_PROXY_ENV,
                         disk=local.disk)
    assert run.argv[-1] == boot.disk
    return run, local


@pytest.mark.parametrize("name", example_names())
def test_example_boots(name, world, workdir, monkeypatch, request):
    case = CASES[name]
    boot = Boot.from_cfg(load_example(name))
    form = location_form(boot.location())
    if boot.runas is not None:
        need_root()
    if form in SERVER_FIXTURES:
        request.getfixturevalue(SERVER_FIXTURES[form])
    if any(arg.startswith("--ca-cert=") for arg in boot.bootloader_args):
        world.ca_file = request.getfixturevalue("ca_file")

    run, local = boot_example(name, world, workdir, monkeypatch)

    assert run.status == 0, run.console
    files = case.tree()
    assert run.kernel_sha256 == file_digest(files[case.kernel]), f"not {case.kernel}:\n{run.console}"
    assert run.ramdisk_sha256 == file_digest(files[case.ramdisk]), f"not {case.ramdisk}:\n{run.console}"
    assert run.leftovers == []
    # The test trees are not signed (--verify says so); nothing else may warn.
    assert not [line for line in run.console.splitlines()
                if ("warning" in line and "Not verified:" not in line) or "error" in line], run.console
    if boot.runas is not None:
        assert run.console.strip() == "", "libxl passes --quiet with --runas"
    else:
        assert "Found " in run.console

    extra = boot.cmdline or ""
    if not case.install:
        assert run.args == extra
    else:
        # The installer is told where the tree is: the location, as the guest reaches it.
        head, _, added = run.args.rpartition(" ")
        assert head == extra
        option, _, value = added.partition("=")
        assert option == case.install
        assert value.rstrip("/") == local.location().rstrip("/")
