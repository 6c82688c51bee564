# xenpvnetboot: install, build and check.
#
#   make install                      pip-install into PREFIX, install the manual
#                                     page, link XEN_BIN_DIR/xenpvnetboot to the command,
#                                     prepare CACHE_DIR as the download cache
#   make install DESTDIR=/tmp/stage   the same below a staging directory
#   make uninstall                    undo make install (without DESTDIR)
#   make man                          regenerate docs/xenpvnetboot.1 from its source
#   make check                        the test suite
#   make xen-test                     real guests under real Xen 4.17 in QEMU
#                                     (root; tests/xen/README.md), XEN_SCENARIOS=all
#                                     for the full set
#   make wheel sdist                  packages into dist/
#   make deb                          Debian packages into ..
#   make clean                        remove what the targets above left here
#
# PYTHON is the interpreter that will run the bootloader.  Without PREFIX,
# pip installs where that interpreter installs by default (/usr/local for
# Debian's /usr/bin/python3, the environment itself for a virtual
# environment or pyenv); PREFIX=/usr installs there instead (Debian's Python
# turns it into /usr/local).  PIP_FLAGS is passed to pip install, e.g.
# "--no-deps" when the dependencies come from the distribution.  A staged
# install (DESTDIR) leaves any installation of PYTHON's own alone.

PYTHON      ?= python3
PREFIX      ?=
DESTDIR     ?=
PIP_FLAGS   ?=
# libxl's private binary directory, where a bare bootloader = name is looked
# up: /usr/lib/xen/bin for Xen built with --prefix=/usr, /usr/local/lib/xen/bin
# for the default prefix, /usr/libexec/xen/bin on Fedora, /usr/lib/xen-4.17/bin
# on Debian 12.
XEN_BIN_DIR ?= /usr/lib/xen/bin
# The shared download cache, prepared (mode 0700, tagged) unless it exists.
CACHE_DIR   ?= /var/cache/xenpvnetboot

# Where pip puts the command and the data files for this PYTHON and PREFIX,
# asked of pip itself: "<scripts dir> <data dir>".
PIP_SCHEME   = $(shell $(PYTHON) -c 'import sys; from pip._internal.locations import get_scheme; \
	s = get_scheme("xenpvnetboot", prefix=sys.argv[1] or None); print(s.scripts, s.data)' '$(PREFIX)')
BINDIR      ?= $(word 1,$(PIP_SCHEME))
MANDIR      ?= $(word 2,$(PIP_SCHEME))/share/man

ROOT := $(or $(DESTDIR),/)

.PHONY: all install uninstall man check-man check xen-test wheel sdist deb clean

all: check-man

install:
	$(PYTHON) -m pip install --root="$(ROOT)" $(if $(PREFIX),--prefix="$(PREFIX)") \
		$(if $(DESTDIR),--ignore-installed) --no-warn-script-location \
		--root-user-action=ignore $(PIP_FLAGS) .
	install -d "$(DESTDIR)$(MANDIR)/man1" "$(DESTDIR)$(XEN_BIN_DIR)"
	install -m 0644 docs/xenpvnetboot.1 "$(DESTDIR)$(MANDIR)/man1/xenpvnetboot.1"
	ln -sfn "$(BINDIR)/xenpvnetboot" "$(DESTDIR)$(XEN_BIN_DIR)/xenpvnetboot"
	install -d -m 0700 "$(DESTDIR)$(CACHE_DIR)"
	test -e "$(DESTDIR)$(CACHE_DIR)/CACHEDIR.TAG" || PYTHONPATH=src $(PYTHON) -c \
		'import sys; from xenpvnetboot.cachedir import tag_text; open(sys.argv[1], "wb").write(tag_text(4 << 30))' \
		"$(DESTDIR)$(CACHE_DIR)/CACHEDIR.TAG"

uninstall:
	$(PYTHON) -m pip uninstall --yes --root-user-action=ignore xenpvnetboot
	rm -f "$(MANDIR)/man1/xenpvnetboot.1" "$(XEN_BIN_DIR)/xenpvnetboot"

man:
	$(PYTHON) docs/mkman.py

check-man:
	$(PYTHON) docs/mkman.py --check

check:
	$(PYTHON) -m pytest

# Boots Xen in QEMU once and runs every chosen scenario in it: ci (default),
# all, or names separated by commas (tests/xen/realxen/scenarios.py).
XEN_SCENARIOS ?= ci
xen-test:
	XENPVNETBOOT_XEN_TEST=1 XEN_SCENARIOS="$(XEN_SCENARIOS)" $(PYTHON) -m pytest -rs tests/xen

wheel:
	$(PYTHON) -m pip wheel --no-deps --wheel-dir dist .

sdist:
	$(PYTHON) -c 'import sys; from setuptools import build_meta; print(build_meta.build_sdist(sys.argv[1]))' dist

# With the system's Python and tools first on PATH (not a pyenv or a virtual
# environment's); -tc cleans the tree again afterwards.
deb:
	env PATH=/usr/sbin:/usr/bin:/sbin:/bin dpkg-buildpackage -us -uc -b -tc

clean:
	rm -rf build dist .pybuild
