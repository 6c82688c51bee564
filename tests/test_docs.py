"""The manual page and the README against the program they describe.

The page is written in docs/xenpvnetboot.1.rst and generated into
docs/xenpvnetboot.1 by docs/mkman.py; both are in the repository.  These
tests check that the generated page is that of the current source, that it
renders without a single groff or man warning, and that what it says --
options, defaults, location forms, layouts, exit statuses, files -- is what
the code does.
"""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from typing import Dict, List

import pytest
from support.env import need_program

from xenpvnetboot import __version__, cache, cli
from xenpvnetboot.layouts import table
from xenpvnetboot.transports import base, tftp

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DOCS = os.path.join(ROOT, "docs")
PAGE = os.path.join(DOCS, "xenpvnetboot.1")
SOURCE = os.path.join(DOCS, "xenpvnetboot.1.rst")
README = os.path.join(ROOT, "README.md")
#: groff and man environment for reproducible text: no pager, no colours, C.UTF-8.
RENDER_ENV = dict(os.environ, LC_ALL="C.UTF-8", MANWIDTH="80", MAN_KEEP_FORMATTING="",
                  MANPAGER="cat", PAGER="cat", GROFF_NO_SGR="1")


def load_mkman():
    spec = importlib.util.spec_from_file_location("mkman", os.path.join(DOCS, "mkman.py"))
    module = importlib.util.module_from_spec(spec)
    assert spec.loader is not None
    spec.loader.exec_module(module)
    return module


def read(path: str) -> str:
    with open(path, encoding="utf-8") as handle:
        return handle.read()


@pytest.fixture(scope="module")
def page_text() -> str:
    """The page as groff renders it, one paragraph per line, plain text."""
    groff = need_program("groff", "groff-base")
    done = subprocess.run([groff, "-man", "-Tutf8", "-P-cbou", "-rLL=1000n", "-rHY=0", PAGE],
                          capture_output=True, env=RENDER_ENV, check=True)
    text = done.stdout.decode("utf-8")
    return text.replace("\u2010", "-").replace("\u2212", "-").replace("\u2011", "-")


def option_strings() -> List[str]:
    """Every option of ``--help``."""
    import argparse

    found = []
    for action in cli.build_parser()._actions:
        if action.help != argparse.SUPPRESS:
            found.extend(action.option_strings)
    return found


def rst_paragraph(option: str) -> str:
    """The description of *option* in the source: its heading line and indented lines."""
    lines = read(SOURCE).splitlines()
    for index, line in enumerate(lines):
        if re.match(rf"^{re.escape(option)}(?:[=, ]|$)", line) or re.match(rf"^-\w, {re.escape(option)}\b", line):
            body = [line]
            for following in lines[index + 1:]:
                if following and not following.startswith(" "):
                    break
                body.append(following)
            return " ".join(" ".join(body).split())
    raise AssertionError(f"{option} has no paragraph of its own in {SOURCE}")


# -- the generated page is the source's -----------------------------------------------


def test_generated_page_matches_its_source():
    mkman = load_mkman()
    digest, made_with = mkman.page_stamp()
    assert digest == mkman.source_digest(), "docs/xenpvnetboot.1 is stale: run make man"
    docutils = pytest.importorskip("docutils", reason="needs docutils (pip install docutils)")
    if docutils.__version__ == made_with:
        # Same converter: regenerating must give the committed page byte for byte.
        assert mkman.render() == read(PAGE), "docs/xenpvnetboot.1 was edited by hand: run make man"
    else:
        # Another docutils may format differently, but the source must still convert cleanly.
        assert mkman.render().startswith('.\\" source sha256 ' + digest)


def test_mkman_check_mode():
    done = subprocess.run([sys.executable, os.path.join(DOCS, "mkman.py"), "--check"],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def test_page_carries_the_version():
    header = next(line for line in read(PAGE).splitlines() if line.startswith(".TH "))
    assert f"xenpvnetboot {__version__}" in header
    assert "@VERSION@" not in read(PAGE)


# -- it renders cleanly -----------------------------------------------------------------


def test_groff_renders_without_warnings():
    groff = need_program("groff", "groff-base")
    done = subprocess.run([groff, "-man", "-Tutf8", "-ww", "-z", PAGE],
                          capture_output=True, text=True, env=RENDER_ENV)
    assert done.returncode == 0 and done.stderr == "", done.stderr


def test_man_renders_without_warnings():
    man = need_program("man", "man-db")
    done = subprocess.run([man, "--warnings", "-E", "UTF-8", "-l", PAGE],
                          capture_output=True, text=True, env=RENDER_ENV)
    assert done.returncode == 0, done.stderr
    assert done.stderr == "", done.stderr
    assert "XENPVNETBOOT(1)" in done.stdout


def test_sections(page_text):
    headings = re.findall(r"^([A-Z][A-Z ]+)$", page_text, re.MULTILINE)
    for section in ("NAME", "SYNOPSIS", "DESCRIPTION", "OPTIONS", "LOCATIONS", "INSTALL TREE LAYOUTS",
                    "USING IT WITH XL", "EXIT STATUS", "ENVIRONMENT", "FILES", "SECURITY",
                    "TROUBLESHOOTING", "EXAMPLES", "SEE ALSO"):
        assert section in headings, f"no {section} section"


# -- what it says is what the program does -------------------------------------------


def test_every_option_of_help_is_in_the_page(page_text):
    options = option_strings()
    assert len(options) > 30
    for option in options:
        assert re.search(rf"(?<![\w-]){re.escape(option)}(?![\w-])", page_text), f"{option} not in the page"


def test_every_option_of_help_is_in_the_readme():
    text = read(README)
    for option in option_strings():
        assert re.search(rf"`[^`]*(?<![\w-]){re.escape(option)}(?![\w-])", text), f"{option} not in README"


def test_no_option_in_the_page_that_the_program_lacks(page_text):
    known = set(option_strings())
    mentioned = set(re.findall(r"(?<![\w/=-])(--[a-z][a-z0-9-]*[a-z0-9])", page_text))
    assert mentioned - known == {"--option"}  # the placeholder of "--option=value"


def test_defaults_in_the_page_are_the_programs():
    defaults = cli.parse_args([])
    assert defaults.timeout == 30 and "(default 30)" in rst_paragraph("--timeout")
    assert defaults.retries == 3 and "(default 3," in rst_paragraph("--retries")
    assert defaults.max_size == cli.parse_size("1G") and "(default **1G**)" in rst_paragraph("--max-size")
    assert defaults.cache_size == cli.parse_size("4G") == cache.DEFAULT_CACHE_SIZE
    assert "(default **4G**)" in rst_paragraph("--cache-size")
    blksize = rst_paragraph("--tftp-blksize")
    assert f"({tftp.MIN_BLKSIZE} to {tftp.MAX_BLKSIZE})" in blksize
    assert f"which is {tftp.DEFAULT_BLKSIZE} on Ethernet" in blksize
    assert f"({tftp.DEFAULT_BLKSIZE} when the MTU cannot be told)" in blksize
    assert tftp.DEFAULT_BLKSIZE == 1500 - 20 - 8 - 4
    assert f"(default {tftp.DEFAULT_WINDOWSIZE};" in rst_paragraph("--tftp-windowsize")
    assert defaults.output_format == "sxp" and "**sxp** (the default" in rst_paragraph("--output-format")
    assert defaults.check == "warn" and "**warn** (the default)" in rst_paragraph("--check")
    assert defaults.guest_type == "pv" and "**pv** (default)" in rst_paragraph("--guest-type")
    assert f"default ``{cli.DEFAULT_OUTPUT_DIRECTORY}``" in rst_paragraph("--output-directory")
    assert f"``{cache.DEFAULT_CACHE_DIR}``" in rst_paragraph("--cache-dir")
    pause = f"starts at {base.retry_delay(0):g} s and doubles up to {base.RETRY_MAX_DELAY:g} s"
    assert pause in rst_paragraph("--retries")
    assert base.retry_delay(1) == 2 * base.retry_delay(0)


def worst_stall(timeout: float, retries: int) -> float:
    """Seconds a dead server can cost one file: every attempt times out, with pauses."""
    pauses = sum(base.retry_delay(attempt) for attempt in range(retries))
    return (retries + 1) * timeout + pauses


def test_restrict_mode_arithmetic(page_text):
    defaults = cli.parse_args([])
    worst = worst_stall(defaults.timeout, defaults.retries)
    assert f"{defaults.retries + 1} x {defaults.timeout:g} + " in page_text
    assert f"= {worst:g} s with the defaults, more than 120" in page_text and worst > 120
    assert '"--timeout=15", "--retries=2" gives at most about 50 s' in page_text
    assert worst_stall(15, 2) <= 50


def documented_bootloader_args(text: str) -> List[List[str]]:
    """The bootloader_args lists of the page's examples (continuation lines joined)."""
    from test_examples import parse_xl_cfg

    found = []
    for match in re.finditer(r'^\s*(bootloader_args = \[(?:\s|,|"[^"]*")*\])', text, re.MULTILINE):
        found.append(parse_xl_cfg(match.group(1) + "\n")["bootloader_args"])
    return found


def test_every_location_form_has_a_working_xl_cfg_line():
    from test_examples import location_form

    lists = documented_bootloader_args(read(SOURCE))
    forms = set()
    for args in lists:
        parsed = cli.parse_args(args + ["/dev/vg0/guest"])  # each line is valid as it stands
        if parsed.location:
            form = location_form(parsed.location)
            if form == "local":
                form = "device" if parsed.location.startswith("/dev/") else (
                    "image" if parsed.location.endswith(".iso") else "directory")
            forms.add(form)
    assert forms == {"http", "https", "ftp", "tftp", "nfs", "nfs+iso", "file", "directory", "image",
                     "device"}


def test_layouts_in_the_page(page_text):
    for pair in table.ORIGINAL_PAIRS:
        assert pair.kernel in page_text
        assert os.path.basename(pair.ramdisk) in page_text
    for marker in (".treeinfo",) + table.MARKERS:
        assert marker in page_text
    for family in table.FAMILIES:
        first = family.rows[0].kernel.replace("{arch}", "ARCH")
        assert first in page_text or os.path.dirname(first) + "/" in page_text, family.key


def test_exit_statuses_are_the_programs(page_text, tmp_path):
    section = page_text.split("\nEXIT STATUS\n", 1)[1].split("\nENVIRONMENT\n", 1)[0]
    statuses: Dict[str, str] = dict(re.findall(r"^ {7}([012]) +(\S.*)$", section, re.MULTILINE))
    assert set(statuses) == {"0", "1", "2"}
    assert "Usage error" in statuses["2"] and "cannot be done" in statuses["1"]

    def status(*args: str) -> int:
        return subprocess.run([sys.executable, "-m", "xenpvnetboot", *args], capture_output=True,
                              env=dict(os.environ, TERM="dumb")).returncode

    tree = tmp_path / "tree" / "images" / "pxeboot"
    tree.mkdir(parents=True)
    (tree / "vmlinuz").write_bytes(b"kernel")
    (tree / "initrd.img").write_bytes(b"ramdisk")
    out = str(tmp_path / "out")
    assert status(f"--location={tmp_path / 'tree'}", f"--output-directory={out}", "--check=off") == 0
    assert status(f"--location={tmp_path / 'missing'}", f"--output-directory={out}") == 1
    assert status("--no-such-option") == 2
    assert status() == 2


def test_environment_and_files(page_text):
    section = page_text.split("\nENVIRONMENT\n", 1)[1].split("\nSECURITY\n", 1)[0]
    for name in ("http_proxy", "https_proxy", "ftp_proxy", "no_proxy", "TERM", "LIBXL_BOOTLOADER_TIMEOUT",
                 cli.DEFAULT_OUTPUT_DIRECTORY, cache.DEFAULT_CACHE_DIR, "/var/log/xen/bootloader.DOMID.log"):
        assert name in section, name


def test_troubleshooting_names_the_programs_messages(page_text):
    section = page_text.split("\nTROUBLESHOOTING\n", 1)[1].split("\nEXAMPLES\n", 1)[0]
    sources = "".join(read(os.path.join(ROOT, "src", "xenpvnetboot", *path)) for path in (
        ("boot.py",), ("layouts", "detect.py"), ("transports", "curl", "transfer.py")))
    for quoted, in_source in (("are free", "are free; choose another place with --output-directory"),
                              ("no kernel found:", "no kernel found: "),
                              ("TLS certificate verification failed", "TLS certificate verification failed")):
        assert quoted in section and in_source in sources
    for advice in ("--output-directory", "--ca-cert", "LIBXL_BOOTLOADER_TIMEOUT", "-n",
                   "--kernel", "--ramdisk", "no loader found", "--check"):
        assert advice in section, advice
