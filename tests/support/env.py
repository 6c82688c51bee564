"""What a test needs from the machine, and a clear skip when it is missing.

On a developer's laptop a missing program or root skips the test with the
reason; CI (XENPVNETBOOT_REQUIRE_ALL=1) turns each such skip into a failure.
"""

from __future__ import annotations

import os
import shutil

import pytest

#: The real Debian 12 installer kernel and initrd (Debian package
#: debian-installer-12-netboot-amd64).
DEBIAN_DI_DIR = "/usr/lib/debian-installer/images/12/amd64/text/debian-installer/amd64"
DEBIAN_PACKAGE = "debian-installer-12-netboot-amd64"


def need_root() -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root")


def need_program(name: str, package: str) -> str:
    """Path of *name*, or skip naming the Debian package that provides it."""
    for candidate in (name, f"/usr/sbin/{name}", f"/sbin/{name}"):
        found = shutil.which(candidate)
        if found:
            return found
    pytest.skip(f"needs {name} (Debian package {package})")
    raise AssertionError("unreachable")


def debian_installer_files() -> tuple:
    """(kernel, initrd) of the real Debian installer, or skip."""
    kernel = os.path.join(DEBIAN_DI_DIR, "linux")
    initrd = os.path.join(DEBIAN_DI_DIR, "initrd.gz")
    if not (os.path.isfile(kernel) and os.path.isfile(initrd)):
        pytest.skip(f"needs the Debian package {DEBIAN_PACKAGE}")
    return kernel, initrd
