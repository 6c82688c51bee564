"""The guest media of the real-Xen harness, made without Xen (about a second).

What the scenarios rely on: the netboot tree's own menu is a real file
where a TFTP server looks for it, the signed mirror's lists are signed by
the key handed to dom0, and the tampered copy shares those lists but not
the Xen ramdisk.
"""

from __future__ import annotations

import os

import pytest
from realxen import media as media_module
from realxen.scenarios import MIRROR, NETBOOT_TREE, NETBOOT_XEN, SIGNED, TAMPERED
from realxen.steps import Missing


@pytest.fixture(scope="module")
def media(tmp_path_factory):
    work = tmp_path_factory.mktemp("xen-work")
    try:
        return media_module.guest_media(str(work), str(work / "prepare.log"))
    except Missing as exc:
        pytest.skip(str(exc))


def test_the_netboot_tree_keeps_its_menu_as_files(media):
    menu = os.path.join(media.tftp, "pxelinux.cfg", "default")
    assert os.path.isfile(menu) and not os.path.islink(menu)
    with open(menu) as handle:
        assert "include debian-installer/amd64/boot-screens/menu.cfg" in handle.read()
    txt = os.path.join("debian-installer", "amd64", "boot-screens", "txt.cfg")
    assert os.path.samefile(os.path.join(media.tftp, txt), os.path.join(media.www, NETBOOT_TREE, txt))


def test_one_copy_of_the_installer_pair_everywhere(media):
    kernel = os.path.join(media.tftp, media_module.PAIR["linux"])
    for path in (f"{NETBOOT_XEN}/vmlinuz", f"stall/{NETBOOT_XEN}/vmlinuz",
                 f"{SIGNED}/{NETBOOT_XEN}/vmlinuz", f"{TAMPERED}/{NETBOOT_XEN}/vmlinuz"):
        assert os.path.samefile(kernel, os.path.join(media.www, path)), path


def test_the_tampered_mirror_shares_the_signed_lists_not_the_ramdisk(media):
    signed, tampered = (os.path.join(media.www, top, MIRROR) for top in (SIGNED, TAMPERED))
    release = os.path.join("..", "..", "InRelease")
    sums = os.path.join("current", "images", "SHA256SUMS")
    for rel in (release, sums):
        assert os.path.samefile(os.path.join(signed, rel), os.path.join(tampered, rel))
    ramdisk = os.path.join("current", "images", "netboot", "xen", "initrd.gz")
    with open(os.path.join(signed, ramdisk), "rb") as a, open(os.path.join(tampered, ramdisk), "rb") as b:
        good, bad = a.read(), b.read()
    assert len(good) == len(bad)
    assert sum(x != y for x, y in zip(good, bad)) == 1


def test_the_lists_are_signed_by_the_key_dom0_gets(media):
    pgp = pytest.importorskip("pysequoia")
    with open(media.keyring, "rb") as handle:
        cert = pgp.Cert.from_bytes(handle.read())
    assert media.signer == " ".join(cert.fingerprint.upper()[i:i + 4] for i in range(0, 40, 4))
    with open(os.path.join(media.www, SIGNED, "debian", "dists", "bookworm", "InRelease"), "rb") as handle:
        signed = handle.read()
    verified = pgp.verify(bytes=signed, store=lambda handles: [cert])
    assert [sig.certificate for sig in verified.valid_sigs] == [cert.fingerprint]
    assert b"main/installer-amd64/current/images/SHA256SUMS" in bytes(verified.bytes)
