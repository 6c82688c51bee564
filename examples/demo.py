#!/usr/bin/env python3
"""Boot from a sample install tree served on loopback, the way libxl would.

Builds a small Fedora-style tree (``images/pxeboot/vmlinuz`` +
``initrd.img``; the real Debian 12 installer kernel and initrd are used instead
when the Debian package debian-installer-12-netboot-amd64 is installed), serves
it over HTTP on 127.0.0.1, runs ``xenpvnetboot`` against it with libxl's
options, prints the console output and the result, and removes everything.
"""

from __future__ import annotations

import functools
import http.server
import os
import shutil
import subprocess
import sys
import tempfile
import threading

DEBIAN = "/usr/lib/debian-installer/images/12/amd64/text/debian-installer/amd64"


def build_tree(root: str) -> str:
    """Lay out a tree; return the path below the server root to use as location.

    Without the Debian package the files are random bytes, not kernels: the
    demo then turns the kernel check off (``--check=off``).
    """
    if os.path.isfile(os.path.join(DEBIAN, "linux")):
        rel = "debian/dists/bookworm/main/installer-amd64"
        xen = os.path.join(root, rel, "current/images/netboot/xen")
        os.makedirs(xen)
        os.symlink(os.path.join(DEBIAN, "linux"), os.path.join(xen, "vmlinuz"))
        os.symlink(os.path.join(DEBIAN, "initrd.gz"), os.path.join(xen, "initrd.gz"))
        return rel
    rel = "fedora/x86_64/os"
    pxe = os.path.join(root, rel, "images/pxeboot")
    os.makedirs(pxe)
    for name, size in (("vmlinuz", 256 * 1024), ("initrd.img", 1024 * 1024)):
        with open(os.path.join(pxe, name), "wb") as handle:
            handle.write(os.urandom(size))
    return rel


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        pass


def main() -> int:
    work = tempfile.mkdtemp(prefix="xenpvnetboot-demo.")
    try:
        root = os.path.join(work, "srv")
        rel = build_tree(root)
        handler = functools.partial(_QuietHandler, directory=root)
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        location = f"http://127.0.0.1:{server.server_address[1]}/{rel}"
        outdir = os.path.join(work, "bootloader.1.d")
        output = os.path.join(work, "bootloader.1.out")
        argv = ["xenpvnetboot", "--args=console=hvc0", f"--output={output}",
                "--output-format=simple", f"--output-directory={outdir}",
                f"--location={location}", "/dev/null"]
        if not rel.startswith("debian/"):
            argv.insert(1, "--check=off")
        if shutil.which("xenpvnetboot") is None:
            argv[0:1] = [sys.executable, "-m", "xenpvnetboot"]
        print("$", " ".join(argv), flush=True)
        status = subprocess.call(argv)
        server.shutdown()
        if status == 0:
            print("\nResult handed to libxl:")
            with open(output) as handle:
                sys.stdout.write(handle.read())
            for name in sorted(os.listdir(outdir)):
                size = os.path.getsize(os.path.join(outdir, name))
                print(f"  {name}: {size} bytes")
        return status
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
