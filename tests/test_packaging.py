"""Packaging: the wheel, the sdist, ``make install`` and the Debian metadata.

Everything is built from a copy of the source tree in a scratch directory
(builds leave files behind), and installed into a fresh virtual environment
or below a DESTDIR, never into the system.  The version has one source,
``xenpvnetboot.__version__``: the command, the wheel, the sdist, the manual
page and debian/changelog must all agree with it.
"""

from __future__ import annotations

import email
import email.message
import glob
import os
import re
import shutil
import subprocess
import sys
import tarfile
import zipfile
from importlib import metadata
from typing import Dict, List

import pytest
from packaging.markers import default_environment
from packaging.requirements import Requirement
from support.env import need_program

from xenpvnetboot import __version__

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEBIAN = os.path.join(ROOT, "debian")
MAN_PAGE = "share/man/man1/xenpvnetboot.1"
#: What a build or a test run leaves in a tree; never copied.
JUNK = (".git", "__pycache__", "*.pyc", ".pytest_cache", ".hypothesis", ".mypy_cache",
        ".benchmarks", "build", "dist", "*.egg-info", ".pybuild")
#: Imported when an image of their format turns up; not declared, since
#: their absence only disables that format.
OPTIONAL_LIBRARIES = ("pycdlib", "pytsk3", "PySquashfsImage")

pytestmark = pytest.mark.timeout(300)


def run(argv: List[str], cwd: str = ROOT, env: Dict[str, str] = None) -> str:
    """Run a program (argument list); fail the test with its output if it fails."""
    done = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True)
    assert done.returncode == 0, f"{argv} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}"
    return done.stdout


def read(path: str) -> str:
    with open(path, encoding="utf-8") as handle:
        return handle.read()


def clean_env() -> Dict[str, str]:
    """The environment without anything that points Python at this tree."""
    return {key: value for key, value in os.environ.items()
            if key not in ("PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP", "VIRTUAL_ENV")}


def package_modules(root: str) -> List[str]:
    base = os.path.join(root, "src")
    return sorted(os.path.relpath(path, base) for path in
                  glob.glob(os.path.join(base, "xenpvnetboot", "**", "*.py"), recursive=True))


# -- builds, once per module ---------------------------------------------------------


@pytest.fixture(scope="module")
def tree(tmp_path_factory) -> str:
    """A copy of the source tree, free to be built in."""
    copy = str(tmp_path_factory.mktemp("tree") / "xenpvnetboot")
    shutil.copytree(ROOT, copy, ignore=shutil.ignore_patterns(*JUNK))
    return copy


@pytest.fixture(scope="module")
def wheel(tree, tmp_path_factory) -> str:
    out = str(tmp_path_factory.mktemp("wheel"))
    run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "--wheel-dir", out, tree])
    (path,) = glob.glob(os.path.join(out, "*.whl"))
    return path


@pytest.fixture(scope="module")
def sdist(tree, tmp_path_factory) -> str:
    """The sdist, through setuptools' PEP 517 backend as any frontend would call it."""
    out = str(tmp_path_factory.mktemp("sdist"))
    name = run([sys.executable, "-c",
                "import sys\nfrom setuptools import build_meta\nprint(build_meta.build_sdist(sys.argv[1]))",
                out], cwd=tree).strip().splitlines()[-1]
    return os.path.join(out, name)


def wheel_metadata(path: str) -> email.message.Message:
    with zipfile.ZipFile(path) as archive:
        (name,) = [n for n in archive.namelist() if n.endswith(".dist-info/METADATA")]
        return email.message_from_bytes(archive.read(name))


# -- the wheel and the sdist ---------------------------------------------------------


def test_wheel_contents(wheel, tree):
    meta = wheel_metadata(wheel)
    assert meta["Name"] == "xenpvnetboot"
    assert meta["Version"] == __version__
    assert meta["License"] == "GPL-2.0-or-later"
    assert Requirement("python" + meta["Requires-Python"]).specifier.contains("3.9")
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        info = f"xenpvnetboot-{__version__}.dist-info/"
        entry_points = archive.read(info + "entry_points.txt").decode()
        assert re.search(r"^xenpvnetboot = xenpvnetboot\.cli:main$", entry_points, re.MULTILINE)
        assert any(n.startswith(info) and "LICENSE" in n for n in names), "LICENSE not in the wheel"
        data = f"xenpvnetboot-{__version__}.data/data/{MAN_PAGE}"
        assert data in names, "the manual page is not in the wheel (pyproject.toml data-files)"
        assert archive.read(data).decode() == read(os.path.join(ROOT, "docs", "xenpvnetboot.1"))
    modules = {n for n in names if n.endswith(".py")}
    assert modules == set(package_modules(tree))


def test_sdist_builds_the_same_wheel(sdist, wheel, tmp_path):
    assert os.path.basename(sdist) == f"xenpvnetboot-{__version__}.tar.gz"
    top = f"xenpvnetboot-{__version__}/"
    with tarfile.open(sdist) as archive:
        names = {m.name for m in archive.getmembers()}
        pkg_info = email.message_from_bytes(archive.extractfile(top + "PKG-INFO").read())
        for required in ("pyproject.toml", "README.md", "LICENSE", "docs/xenpvnetboot.1"):
            assert top + required in names, f"{required} not in the sdist"
        archive.extractall(str(tmp_path))
    assert pkg_info["Version"] == __version__
    out = str(tmp_path / "rebuilt")
    run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "--wheel-dir", out,
         str(tmp_path / top)])
    (rebuilt,) = glob.glob(os.path.join(out, "*.whl"))
    with zipfile.ZipFile(rebuilt) as again, zipfile.ZipFile(wheel) as first:
        assert sorted(again.namelist()) == sorted(first.namelist())


def test_wheel_works_in_a_clean_virtual_environment(wheel, tmp_path):
    venv = str(tmp_path / "venv")
    run([sys.executable, "-m", "venv", "--without-pip", venv])
    python = os.path.join(venv, "bin", "python")
    run([sys.executable, "-m", "pip", "--python", python, "install", "--quiet", "--no-deps",
         "--no-index", wheel], env=clean_env())
    env = clean_env()
    expected = f"xenpvnetboot {__version__}"
    assert run([os.path.join(venv, "bin", "xenpvnetboot"), "--version"], cwd=str(tmp_path), env=env).strip() == expected
    assert run([python, "-m", "xenpvnetboot", "--version"], cwd=str(tmp_path), env=env).strip() == expected
    where = run([python, "-c", "import importlib.metadata as m, xenpvnetboot as x; "
                 "print(x.__file__); print(m.version('xenpvnetboot'))"], cwd=str(tmp_path), env=env)
    module, version = where.split()
    assert module.startswith(venv) and version == __version__
    page = os.path.join(venv, MAN_PAGE)
    assert os.path.isfile(page), "the manual page is not installed into share/man/man1"
    assert read(page) == read(os.path.join(ROOT, "docs", "xenpvnetboot.1"))


# -- make install --------------------------------------------------------------------


def test_make_install_into_destdir(tree, tmp_path):
    make = need_program("make", "make")
    stage = str(tmp_path / "stage")
    system_files = ("/usr/bin/xenpvnetboot", "/usr/lib/xen/bin/xenpvnetboot",
                    "/usr/share/man/man1/xenpvnetboot.1")
    before = {path: os.path.lexists(path) for path in system_files}
    run([make, "-C", tree, "install", f"DESTDIR={stage}", "PREFIX=/usr", f"PYTHON={sys.executable}",
         "PIP_FLAGS=--no-deps --quiet"], env=clean_env())
    assert {path: os.path.lexists(path) for path in system_files} == before, "make install touched the system"
    # ... nor the installation of the Python that ran it (pip replaces one unless told not to).
    assert run([sys.executable, "-c", "import importlib.metadata as m; print(m.version('xenpvnetboot'))"],
               cwd=str(tmp_path)).strip() == __version__

    command = os.path.join(stage, "usr/bin/xenpvnetboot")
    assert os.access(command, os.X_OK)
    link = os.path.join(stage, "usr/lib/xen/bin/xenpvnetboot")  # XEN_BIN_DIR's default
    assert os.path.islink(link) and os.readlink(link) == "/usr/bin/xenpvnetboot"
    cache = os.path.join(stage, "var/cache/xenpvnetboot")
    assert os.stat(cache).st_mode & 0o777 == 0o700
    from xenpvnetboot.cachedir import SIGNATURE

    with open(os.path.join(cache, "CACHEDIR.TAG"), "rb") as handle:
        assert handle.read().startswith(SIGNATURE)
    assert read(os.path.join(stage, "usr", MAN_PAGE)) == read(os.path.join(ROOT, "docs", "xenpvnetboot.1"))
    (site,) = glob.glob(os.path.join(stage, "usr/lib/python3*/site-packages"))
    assert os.path.isfile(os.path.join(site, "xenpvnetboot", "__init__.py"))
    env = dict(clean_env(), PYTHONPATH=site)
    assert run([command, "--version"], cwd=str(tmp_path), env=env).strip() == f"xenpvnetboot {__version__}"

    run([make, "-C", tree, "install", f"DESTDIR={stage}", "PREFIX=/usr", f"PYTHON={sys.executable}",
         "XEN_BIN_DIR=/usr/libexec/xen/bin", "PIP_FLAGS=--no-deps --quiet"], env=clean_env())
    assert os.readlink(os.path.join(stage, "usr/libexec/xen/bin/xenpvnetboot")) == "/usr/bin/xenpvnetboot"


# -- one version, one licence --------------------------------------------------------


def changelog_version() -> str:
    parser = shutil.which("dpkg-parsechangelog")
    if parser:
        return run([parser, "-l", os.path.join(DEBIAN, "changelog"), "-S", "Version"]).strip()
    match = re.match(r"^xenpvnetboot \(([^)]+)\) ", read(os.path.join(DEBIAN, "changelog")))
    assert match, "debian/changelog does not start with an entry for xenpvnetboot"
    return match.group(1)


def test_version_is_the_same_everywhere(wheel, sdist):
    command = run([sys.executable, "-m", "xenpvnetboot", "--version"]).strip()
    assert command == f"xenpvnetboot {__version__}"
    assert wheel_metadata(wheel)["Version"] == __version__
    assert os.path.basename(wheel).startswith(f"xenpvnetboot-{__version__}-")
    assert os.path.basename(sdist) == f"xenpvnetboot-{__version__}.tar.gz"
    assert changelog_version() == __version__  # a native package: no Debian revision
    header = next(line for line in read(os.path.join(ROOT, "docs", "xenpvnetboot.1")).splitlines()
                  if line.startswith(".TH "))
    assert f'"xenpvnetboot {__version__}"' in header
    assert re.fullmatch(r"\d+\.\d+\.\d+", __version__)


def test_licence_is_gpl2_or_later(wheel):
    text = read(os.path.join(ROOT, "LICENSE"))
    assert text.lstrip().startswith("GNU GENERAL PUBLIC LICENSE")
    assert "Version 2, June 1991" in text and "Version 3" not in text
    if os.path.exists("/usr/share/common-licenses/GPL-2"):
        assert text == read("/usr/share/common-licenses/GPL-2")
    assert wheel_metadata(wheel)["License"] == "GPL-2.0-or-later"
    copyright_text = read(os.path.join(DEBIAN, "copyright"))
    assert re.search(r"^Files: \*\n(?:.+\n)*?License: GPL-2\+\n", copyright_text, re.MULTILINE)
    assert "or (at your option)" in copyright_text


def licence_of(dist: metadata.Distribution) -> str:
    """Everything a distribution's metadata says about its licence."""
    meta = dist.metadata
    parts = [meta.get("License-Expression") or "", meta.get("License") or ""]
    parts += [c for c in meta.get_all("Classifier") or [] if c.startswith("License ::")]
    return " | ".join(part for part in parts if part.strip())


def test_dependencies_are_not_agpl(wheel):
    """Every run-time dependency (and optional image library) is under a licence
    a GPL-2.0-or-later program may use (Apache-2.0 ones through GPL-3): nothing
    AGPL, nothing GPL-3-only."""
    environment = default_environment()
    environment["extra"] = ""
    checked = {}
    for text in wheel_metadata(wheel).get_all("Requires-Dist") or []:
        requirement = Requirement(text)
        if requirement.marker is not None and not requirement.marker.evaluate(environment):
            continue  # not installed on this platform
        checked[requirement.name] = licence_of(metadata.distribution(requirement.name))
    assert "pycurl" in checked
    for name in OPTIONAL_LIBRARIES:
        try:
            checked[name] = licence_of(metadata.distribution(name))
        except metadata.PackageNotFoundError:
            pass
    for name, licence in checked.items():
        assert licence, f"{name} states no licence"
        assert not re.search(r"AGPL|Affero", licence, re.IGNORECASE), f"{name}: {licence}"
        assert not re.search(r"GPL-?3|GPLv3|GPL v3", licence) or "LGPL" in licence, f"{name}: {licence}"


# -- the Debian packaging ------------------------------------------------------------


def deb822(path: str) -> List[Dict[str, str]]:
    """The paragraphs of a control-style file, continuation lines joined."""
    paragraphs: List[Dict[str, str]] = []
    current: Dict[str, str] = {}
    last = ""
    for line in read(path).splitlines() + [""]:
        if not line.strip():
            if current:
                paragraphs.append(current)
            current, last = {}, ""
        elif line[0] in " \t":
            current[last] += "\n" + line.strip()
        else:
            last, _, value = line.partition(":")
            current[last] = value.strip()
    return paragraphs


def listed(field: str) -> List[str]:
    """Package names of a relationship field (versions and alternatives dropped)."""
    return [re.split(r"[\s(|]", item.strip())[0] for item in field.replace("\n", " ").split(",")
            if item.strip()]


def test_debian_control(wheel):
    source, binary = deb822(os.path.join(DEBIAN, "control"))
    assert source["Source"] == binary["Package"] == "xenpvnetboot"
    assert binary["Architecture"] == "all"
    build_deps = listed(source["Build-Depends"])
    for needed in ("debhelper-compat", "dh-python", "pybuild-plugin-pyproject", "python3-all",
                   "python3-setuptools"):
        assert needed in build_deps
    depends = listed(binary["Depends"])
    assert "${python3:Depends}" in depends and "${misc:Depends}" in depends
    # Every declared requirement that Debian packages is a dependency of the package.
    required = {Requirement(text).name.lower() for text in wheel_metadata(wheel).get_all("Requires-Dist")}
    for name in ("pycurl", "zstandard", "lz4"):
        assert name in required and f"python3-{name}" in depends
    assert "python3-pycdlib" in depends  # ISO images; packaged by Debian


def test_debian_rules_and_install_files():
    rules = os.path.join(DEBIAN, "rules")
    assert os.access(rules, os.X_OK)
    text = read(rules)
    assert text.startswith("#!/usr/bin/make -f\n") and "--buildsystem=pybuild" in text
    assert read(os.path.join(DEBIAN, "source", "format")).strip() == "3.0 (native)"
    manpages = read(os.path.join(DEBIAN, "xenpvnetboot.manpages")).split()
    assert manpages == ["docs/xenpvnetboot.1"] and os.path.isfile(os.path.join(ROOT, manpages[0]))
    links = [line.split() for line in read(os.path.join(DEBIAN, "xenpvnetboot.links")).splitlines()
             if line.strip() and not line.startswith("#")]
    assert ["usr/bin/xenpvnetboot", "usr/lib/xen/bin/xenpvnetboot"] in links
    for pattern in read(os.path.join(DEBIAN, "xenpvnetboot.examples")).split():
        assert glob.glob(os.path.join(ROOT, pattern)), f"{pattern} matches nothing"
    assert glob.glob(os.path.join(ROOT, "examples", "*.cfg"))
