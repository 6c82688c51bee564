"""Round trips of layout detection over http: how many requests wait for each other.

On a real link the search costs its sequential round trips, not its bytes.
The server here answers a batch of requests only when no other arrives
(see ``TreeServer``), so the number of groups it saw is the number of round
trips, whatever the machine's speed.  Measured before this search overlapped
its requests: 50 requests and 50 round trips for an empty tree, 8 and 8 for a
Debian mirror, 3 and 3 for a ``.treeinfo`` tree, 45 and 45 for Arch Linux.

The first step asks the markers and the likeliest pair; a marker's family
then costs one step more, a tree without either two (its top-level
directories, then what they leave of the walk).  Each step's requests share at most
``MAX_HOST_CONNECTIONS`` connections: a step of n requests takes
ceil(n / MAX_HOST_CONNECTIONS) round trips, and no more.
"""

from __future__ import annotations

import contextlib
import os

import pytest
from support.layout_trees import x86_64_host  # noqa: F401 (a fixture)
from support.layout_trees import BY_NAME, TREES, LayoutTree, TreeServer, build_all
from support.libxl import run_bootloader

from xenpvnetboot.errors import BootError
from xenpvnetboot.layout import select_files
from xenpvnetboot.layouts.detect import first_round
from xenpvnetboot.layouts.arch import canonical_arch
from xenpvnetboot.location import open_location
from xenpvnetboot.transports import TransportOptions
from xenpvnetboot.transports.curl.tree import MAX_HOST_CONNECTIONS

OPTIONS = TransportOptions(retries=0, timeout=10)
#: Seconds without a new request that end a round trip; a batch is sent in far
#: less, even on a loaded machine.
QUIET = 0.4
EMPTY = LayoutTree("empty", {}, ["README", "pub/README"])
#: A tree of every family and shape, with and without markers.
FAMILY_TREES = [
    "fedora40", "rhel5", "sl6-no-dot", "alma10-x86_64_v2", "leap15-treeinfo", "sles11", "tumbleweed",
    "debian-mirror", "debian-mirror-i386", "ubuntu2004-mirror", "debian-daily", "debian-netboot-tftp",
    "netboot-xen-directory", "debian12-cd", "debian8-netinst", "debian-live", "ubuntu1804-server-xen",
    "ubuntu2204-live-server", "mageia9", "alpine319-virt", "alpine-netboot", "archlinux-2024",
    "centos7-live", "ol6-no-marker",
]
#: Trees with a marker that names their family.
MARKED = ["fedora40", "rhel5", "alma10-x86_64_v2", "leap15-treeinfo", "sles11", "debian12-cd",
          "debian8-netinst", "mageia9", "alpine319-virt", "ubuntu2204-live-server"]


pytestmark = pytest.mark.usefixtures("x86_64_host")


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    return build_all(str(tmp_path_factory.mktemp("rounds")), TREES + [EMPTY])


@pytest.fixture(scope="module")
def server(root):
    started = TreeServer(root, directories="listing", quiet=QUIET).start()
    yield started
    started.stop()


@pytest.fixture(scope="module")
def unlisted(root):
    """nginx or Apache without directory listings: ``dir/`` is HTTP 403."""
    started = TreeServer(root, directories="403", quiet=QUIET).start()
    yield started
    started.stop()


def detect(server, tree: LayoutTree):
    server.clear()
    with contextlib.ExitStack() as stack:
        opened = stack.enter_context(open_location(server.url(tree.name) + "/", OPTIONS))
        wanted = canonical_arch(tree.arch) if tree.arch else None
        return select_files(opened, None, None, OPTIONS, stack, arch=wanted)


#: What the first step asks besides the markers; over http it rides along in
#: later round trips' free places (see ``layouts.detect``).
RIDERS = set(first_round(("x86_64",))[1])


def waves(requests: int) -> int:
    """Round trips *requests* asked together take over the capped connections."""
    return -(-requests // MAX_HOST_CONNECTIONS)


def assert_steps(server, steps: int, log=None) -> None:
    """The requests took *steps* dependent steps at most, never more than the
    connection cap at once, and no round trip that the cap does not force."""
    log = server.log if log is None else log
    per_round = {}
    for _, _, batch in log:
        per_round[batch] = per_round.get(batch, 0) + 1
    assert max(per_round.values()) <= MAX_HOST_CONNECTIONS, per_round
    assert len(per_round) <= waves(len(log)) + steps - 1, log


def in_round(server, number):
    return sorted(path.split("/", 2)[2] for _, path, batch in server.log if batch == number)


@pytest.mark.parametrize("name", FAMILY_TREES)
def test_every_family_in_three_steps(server, name):
    tree = BY_NAME[name]
    selection = detect(server, tree)
    assert (selection.kernel.path, selection.ramdisk.path) == (tree.kernel, tree.ramdisk)
    assert_steps(server, 3)
    assert len(server.log) <= 45  # the empty tree's requests and one family's pairs


@pytest.mark.parametrize("name", MARKED)
def test_a_marked_tree_in_two_steps_without_the_directories(server, name):
    """The marker's family is asked for next: no top-level directory is."""
    tree = BY_NAME[name]
    selection = detect(server, tree)
    assert selection.kernel.path == tree.kernel
    assert_steps(server, 2)
    assert not [path for _, path, _ in server.log if path.endswith("/") and path.count("/") > 2]
    assert len(server.log) <= 26  # was 32-44 with the directories asked at once


@pytest.mark.parametrize("name", ["debian-daily", "tumbleweed", "archlinux-2024", "fedora40"])
def test_without_listings_too(unlisted, name):
    tree = BY_NAME[name]
    assert detect(unlisted, tree).kernel.path == tree.kernel
    assert_steps(unlisted, 3)


def test_an_empty_tree_costs_one_step(server):
    with pytest.raises(BootError, match="no kernel found: "):
        detect(server, EMPTY)
    assert_steps(server, 1)
    assert len(server.log) <= 32  # was 50, one after the other (30 + NetBSD's binary/, amd64/)


def test_a_debian_mirror_is_decided_in_the_first_step(server):
    detect(server, BY_NAME["debian-mirror"])
    assert_steps(server, 1)
    assert len(server.log) <= 12  # markers, the location, the pair, kernels at the top


def test_treeinfo_second_step_is_its_pair(server):
    detect(server, BY_NAME["fedora40"])
    batches = sorted({batch for _, _, batch in server.log})
    assert ".treeinfo" in in_round(server, batches[0])
    last = set(in_round(server, batches[-1]))
    assert {"images/pxeboot/initrd.img", "images/pxeboot/vmlinuz"} <= last
    assert last - {"images/pxeboot/initrd.img", "images/pxeboot/vmlinuz"} <= RIDERS  # free places
    assert_steps(server, 2)


def test_a_marker_stops_the_blind_search(server):
    """After ``content`` names a SUSE tree only SUSE's pairs are asked for."""
    detect(server, BY_NAME["sles11"])
    second = [path for path in in_round(server, max(batch for _, _, batch in server.log))
              if path not in RIDERS]
    assert second and all(path.startswith("boot/") for path in second), second
    assert len(server.log) == len(set(path for _, path, _ in server.log))


def test_a_server_without_directories_costs_more_but_finds_the_same(root):
    """An object store answers 404 for every directory: nothing is ruled out."""
    started = TreeServer(root, directories="files-only", quiet=QUIET).start()
    try:
        for name in ("archlinux-2024", "fedora40", "debian-mirror"):
            tree = BY_NAME[name]
            selection = detect(started, tree)
            assert selection.kernel.path == tree.kernel
            assert_steps(started, 1 if name == "debian-mirror" else 4)
    finally:
        started.stop()


MENU_FILES = ("grub.cfg", "isolinux.cfg", "syslinux.cfg", "extlinux.conf", "loopback.cfg")


def _boot_log(root, workdir, name, env=None, runs=None):
    """The whole bootloader, as libxl runs it, on tree *name*: the server (with
    its log) and the requests it got before the kernel's download began."""
    started = TreeServer(root, directories="listing", quiet=QUIET).start()
    tree = BY_NAME[name]
    try:
        run = run_bootloader([f"--location={started.url(tree.name)}/", "--check=off", "--verify=off"],
                             workdir, env=env)
    finally:
        started.stop()
    assert run.status == 0, run.console
    assert run.kernel == tree.content(tree.kernel)
    assert os.path.basename(tree.kernel) in run.console
    if runs is not None:
        runs.append(run)
    kernel_get = min(batch for method, path, batch in started.log
                     if method == "GET" and path.endswith("/" + tree.kernel))
    return started, [entry for entry in started.log if entry[2] < kernel_get]


@pytest.mark.parametrize("name", ["debian-mirror", "fedora40", "alpine-netboot"])
def test_first_kernel_byte_after_the_search_steps(root, workdir, name):
    """The download starts right after the search's steps (two, three for a tree
    without a marker), nothing waits in between."""
    started, before = _boot_log(root, workdir, name)
    assert_steps(started, 3 if name == "alpine-netboot" else 2, before)


@pytest.mark.parametrize("name", ["fedora40", "rhel5", "leap15-treeinfo", "debian-mirror"])
def test_the_pair_in_the_second_round_trip(root, workdir, name):
    """Over http the markers come first, alone (six requests: one round trip on
    the six connections), so a marked family's pairs fill the second round
    trip; without a marker the likeliest pair (a Debian mirror's) does.
    Asked together, the markers and the pair took two round trips before
    the family's pairs could be asked."""
    started, before = _boot_log(root, workdir, name)
    assert len({batch for _, _, batch in before}) == 2, before
    assert started.connections <= MAX_HOST_CONNECTIONS


def test_a_xen_pair_costs_no_menu_lookup(root, workdir):
    """The layout's pair built for Xen wins over any menu: no menu file is asked for."""
    started, before = _boot_log(root, workdir, "debian-mirror")
    assert not [path for _, path, _ in started.log if path.endswith(MENU_FILES)], started.log
    assert_steps(started, 1, before)
    assert len(before) <= 12


def test_a_xen_pair_loads_no_menu_parser(root, workdir):
    """Nor are the menu parsers loaded for it (some 10 ms of every boot's start)."""
    runs = []
    _boot_log(root, workdir, "debian-mirror", env={"PYTHONPROFILEIMPORTTIME": "1"}, runs=runs)
    imported = [line.rsplit("|", 1)[-1].strip() for line in runs[0].console.splitlines()
                if line.startswith("import time:")]
    assert "xenpvnetboot.layout" in imported  # the import log was read
    assert not [name for name in imported if name.startswith("xenpvnetboot.menus")], imported


def test_a_live_tree_asks_its_menus_in_one_step_of_their_own(root, workdir):
    """No Xen pair: the likely menu files come in one batch after the search."""
    started, before = _boot_log(root, workdir, "ubuntu2204-live-server")
    menus = [batch for _, path, batch in before if path.endswith(MENU_FILES)]
    pair = max(batch for _, path, batch in before if path.endswith("/casper/initrd"))
    assert menus and min(menus) > pair, before  # not mixed into the search's batches
    assert_steps(started, 3, before)  # the marker, its family's pairs, the menus
