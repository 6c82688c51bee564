#!/usr/bin/env python3
"""Build the manual page docs/xenpvnetboot.1 from docs/xenpvnetboot.1.rst.

The page is written in reStructuredText and converted with docutils'
manpage writer (the engine of rst2man).  The generated page is kept in the
repository, so that building the package needs no docutils; its first line
records the SHA-256 of the source it came from (after the version has been
filled in), which is how ``--check`` and the tests tell a stale page without
depending on the docutils version installed.

    python3 docs/mkman.py            rewrite docs/xenpvnetboot.1
    python3 docs/mkman.py --check    exit 1 if it is out of date
"""

from __future__ import annotations

import argparse
import hashlib
import os
import re
import sys
from typing import Tuple

DOCS = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(DOCS)
SOURCE = os.path.join(DOCS, "xenpvnetboot.1.rst")
PAGE = os.path.join(DOCS, "xenpvnetboot.1")
INIT = os.path.join(ROOT, "src", "xenpvnetboot", "__init__.py")
STAMP = re.compile(r'^\.\\" source sha256 ([0-9a-f]{64}), docutils (\S+)$')


def version() -> str:
    """``__version__`` of the package, read without importing it."""
    with open(INIT, encoding="utf-8") as handle:
        match = re.search(r'^__version__ = "([^"]+)"$', handle.read(), re.MULTILINE)
    if match is None:
        raise SystemExit(f"{INIT}: no __version__")
    return match.group(1)


def source_text() -> str:
    with open(SOURCE, encoding="utf-8") as handle:
        return handle.read().replace("@VERSION@", version())


def source_digest() -> str:
    return hashlib.sha256(source_text().encode()).hexdigest()


def render() -> str:
    """The page as docutils makes it, under the stamp line; warnings are errors."""
    import docutils
    from docutils.core import publish_string

    text = source_text()
    body = publish_string(
        text,
        source_path=SOURCE,
        writer_name="manpage",
        settings_overrides={"halt_level": 2, "report_level": 2, "output_encoding": "utf-8"},
    ).decode("utf-8")
    stamp = f'.\\" source sha256 {hashlib.sha256(text.encode()).hexdigest()}, docutils {docutils.__version__}\n'
    return stamp + body


def page_stamp(path: str = PAGE) -> Tuple[str, str]:
    """(source digest, docutils version) recorded in a generated page."""
    with open(path, encoding="utf-8") as handle:
        match = STAMP.match(handle.readline().rstrip("\n"))
    if match is None:
        raise SystemExit(f"{path}: no source stamp on its first line; run {sys.argv[0]}")
    return match.group(1), match.group(2)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only tell whether the page is up to date")
    opts = parser.parse_args()
    if opts.check:
        if not os.path.exists(PAGE) or page_stamp()[0] != source_digest():
            print(f"{PAGE} is out of date: run python3 docs/mkman.py", file=sys.stderr)
            return 1
        return 0
    page = render()
    with open(PAGE, "w", encoding="utf-8") as handle:
        handle.write(page)
    return 0


if __name__ == "__main__":
    sys.exit(main())
