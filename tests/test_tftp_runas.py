"""tftp:// under --runas when the dropped uid cannot read the Python installation.

The unprivileged child can import nothing from disk, so everything a TFTP
transfer loads lazily (the IDNA codec behind name resolution, the address
policy) must be loaded by the TFTP package's ``preload`` before the drop.
The bootloader runs the way libxl runs it, as root, in a private mount
namespace where every directory of the interpreter and of the project is
overlaid by a view whose top is mode 0700: root reads it all, the uid
nothing (see :data:`HIDE`).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import tempfile

import pytest
from support import libxl
from support.env import need_program, need_root
from support.libxl import run_bootloader
from support.tftp_servers import start_tftpd_hpa, need_tftpd_hpa
from support.trees import build_sample_root, expected
from test_runas import UID

import xenpvnetboot

K = "OL6/images/pxeboot/vmlinuz"
R = "OL6/images/pxeboot/initrd.img"

pytestmark = pytest.mark.timeout(120)

#: ``python3 -c HIDE EMPTY DIR... -- COMMAND...``, run by ``unshare --mount``:
#: overlay each DIR with the empty mode-0700 directory EMPTY on top (the
#: merged directory takes the top's mode), then run COMMAND.
HIDE = """
import os, subprocess, sys
empty, rest = sys.argv[1], sys.argv[2:]
split = rest.index("--")
for directory in rest[:split]:
    subprocess.run(["mount", "-t", "overlay", "overlay", "-o",
                    "lowerdir=" + empty + ":" + directory, directory], check=True)
os.execvp(rest[split + 1], rest[split + 1:])
"""


def installation_dirs() -> list:
    """The directories Python and the project are imported from, outermost only."""
    candidates = {sysconfig.get_paths()[key] for key in ("stdlib", "platstdlib", "purelib", "platlib")}
    candidates.add(os.path.dirname(os.path.dirname(os.path.abspath(xenpvnetboot.__file__))))
    candidates.update(path for path in sys.path if path)
    dirs = sorted({os.path.realpath(path) for path in candidates if os.path.isdir(path)})
    return [path for path in dirs
            if not any(path.startswith(other + os.sep) for other in dirs if other != path)]


@pytest.fixture
def hidden_installation(monkeypatch):
    """Make libxl's bootloader command run with the installation unreadable to UID."""
    need_root()
    unshare = need_program("unshare", "util-linux")
    setpriv = need_program("setpriv", "util-linux")
    empty = tempfile.mkdtemp(prefix="xenpvnetboot-hidden.")  # mode 0700, owned by root
    dirs = installation_dirs()
    wrapper = [unshare, "--mount", "--propagation", "private", sys.executable, "-c", HIDE,
               empty, *dirs, "--"]
    probe = subprocess.run(
        wrapper + [setpriv, f"--reuid={UID}", f"--regid={UID}", "--clear-groups", "--",
                   "cat", os.__file__, xenpvnetboot.__file__],
        capture_output=True, text=True, timeout=30,
    )
    assert probe.returncode != 0 and "Permission denied" in probe.stderr, probe
    monkeypatch.setattr(libxl, "BOOTLOADER", wrapper + libxl.BOOTLOADER)
    yield dirs
    os.rmdir(empty)


@pytest.fixture
def served_tree():
    """The sample install trees, served by tftpd-hpa on 127.0.0.1."""
    need_tftpd_hpa()
    root = tempfile.mkdtemp(prefix="xenpvnetboot-tftp-runas.")
    build_sample_root(root)
    server = start_tftpd_hpa(root)
    yield server
    server.stop()
    shutil.rmtree(root)


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
def test_tftp_boot_as_a_uid_that_cannot_read_python(host, hidden_installation, served_tree,
                                                    workdir):
    location = f"tftp://{host}:{served_tree.port}/OL6"
    run = run_bootloader([f"--location={location}"], workdir, runas=UID, cmdline="console=hvc0")
    assert "Traceback" not in run.console, run.console
    assert run.status == 0, run.console
    assert run.console.strip() == ""  # --quiet, and nothing went wrong
    assert run.kernel == expected(K) and run.ramdisk == expected(R)
    assert run.args == "console=hvc0"
    assert run.leftovers == []


def test_tftp_failure_as_that_uid_is_one_line(hidden_installation, served_tree, workdir):
    """A missing file is an expected failure: one line naming the URL, even
    though the error path too runs in the child that can import nothing."""
    location = f"tftp://localhost:{served_tree.port}/OL6"
    run = run_bootloader([f"--location={location}"], workdir, runas=UID,
                         kernel="images/pxeboot/missing")
    assert run.status == 1
    assert "Traceback" not in run.console, run.console
    lines = [line for line in run.console.splitlines() if line.strip()]
    assert len(lines) == 1 and f"{location}/images/pxeboot/missing" in lines[0], run.console
    assert run.leftovers == [] and run.output_unchanged
