"""Signatures and keyrings: the real Debian InRelease, and keys made here."""

from __future__ import annotations

import datetime
import glob
import os
import time

import pytest

from support.pgp import Key, pgp, write
from xenpvnetboot.errors import BootError, UsageError
from xenpvnetboot.verify import keyrings as keyring_mod
from xenpvnetboot.verify.keyrings import KeyringData, read_keyring_trees, read_keyrings
from xenpvnetboot.verify.openpgp import (BadSignature, KeyStore, MissingKey, verify_clearsigned,
                                         verify_detached)

DEBIAN_KEYRING = "/usr/share/keyrings/debian-archive-keyring.gpg"
#: Where apt keeps the InRelease files it fetched (apt-get update).
APT_LISTS = "/var/lib/apt/lists"
#: The bookworm archive key's user ID, as in debian-archive-keyring.
BOOKWORM_OWNER = "Debian Archive Automatic Signing Key (12/bookworm) <ftpmaster@debian.org>"


def _store(*keys: Key, fallback=None) -> KeyStore:
    return KeyStore([KeyringData(f"k{i}", key.public) for i, key in enumerate(keys)], fallback)


def _bookworm_inrelease() -> bytes:
    pgp()
    if not os.path.isfile(DEBIAN_KEYRING):
        pytest.skip("needs the Debian package debian-archive-keyring")
    found = sorted(glob.glob(os.path.join(APT_LISTS, "*_dists_bookworm_InRelease")))
    if not found:
        pytest.skip(f"needs a Debian 12 InRelease in {APT_LISTS} (run apt-get update)")
    with open(found[0], "rb") as handle:
        return handle.read()


def test_real_debian_inrelease_verifies_with_the_real_keyring():
    data = _bookworm_inrelease()
    keys = KeyStore(read_keyrings(system_files=[DEBIAN_KEYRING]))
    signed = verify_clearsigned(data, keys, "InRelease")
    assert b"Codename: bookworm" in signed.content
    assert b"-----BEGIN PGP" not in signed.content  # only the signed text comes back
    assert signed.signer.owner.startswith("Debian ")
    assert "ftpmaster@debian.org" in signed.signer.owner or "debian-release" in signed.signer.owner


def test_real_debian_inrelease_with_one_byte_changed_fails():
    data = bytearray(_bookworm_inrelease())
    at = data.index(b"main/installer-amd64/current/images/SHA256SUMS")
    data[at - 10] = ord("0") if data[at - 10] != ord("0") else ord("1")  # inside a hash
    keys = KeyStore(read_keyrings(system_files=[DEBIAN_KEYRING]))
    with pytest.raises(BadSignature, match="InRelease: bad signature: the signature does not match"):
        verify_clearsigned(bytes(data), keys, "InRelease")


def test_real_debian_inrelease_with_only_unrelated_keys_is_missing_key():
    data = _bookworm_inrelease()
    with pytest.raises(MissingKey) as caught:
        verify_clearsigned(data, _store(Key.make()), "InRelease")
    # the bookworm archive signing subkey is among the key IDs to look for
    assert "4cb50190207b4758a3f73a796ed0e7b82643e131" in caught.value.key_ids


def test_text_outside_the_signed_block_is_not_returned():
    key = Key.make()
    signed = key.clearsign(b"SHA256:\n real\n")
    tampered = b"SHA256:\n injected\n" + signed
    result = verify_clearsigned(tampered, _store(key), "InRelease")
    assert result.content == b"SHA256:\n real\n"


def test_clearsigned_and_detached_with_a_made_key():
    key = Key.make("Example Archive <archive@example.org>")
    data = b"Origin: Example\nSuite: stable\n-- dashes\n"
    clear = verify_clearsigned(key.clearsign(data), _store(key), "InRelease")
    assert clear.content == data
    assert clear.signer.fingerprint == key.fingerprint
    assert clear.signer.owner == "Example Archive <archive@example.org>"
    for armor in (True, False):
        detached = verify_detached(data, key.detach(data, armor=armor), _store(key), "Release", "Release.gpg")
        assert detached.signer.fingerprint == key.fingerprint


def test_detached_block_with_several_signatures_any_known_key_wins():
    first, second = Key.make("First <a@example.org>"), Key.make("Second <b@example.org>")
    data = b"payload\n"
    block = first.detach(data, armor=False) + second.detach(data, armor=False)
    assert verify_detached(data, block, _store(second), "R", "R.gpg").signer.fingerprint == second.fingerprint
    with pytest.raises(MissingKey) as caught:
        verify_detached(data, block, _store(Key.make()), "R", "R.gpg")
    assert len(caught.value.key_ids) == 2


def test_detached_over_changed_data_fails():
    key = Key.make()
    sig = key.detach(b"original\n")
    with pytest.raises(BadSignature, match="does not match"):
        verify_detached(b"changed\n", sig, _store(key), "R", "R.gpg")


def test_wrong_key_is_missing_key_naming_the_signer():
    key, other = Key.make(), Key.make()
    with pytest.raises(MissingKey, match="no installed keyring holds"):
        verify_clearsigned(key.clearsign(b"x\n"), _store(other), "http://m/InRelease")


def test_unsigned_and_garbage_signatures():
    key = Key.make()
    with pytest.raises(BadSignature, match="carries no OpenPGP signature"):
        verify_clearsigned(b"-----BEGIN PGP SIGNED MESSAGE-----\nHash: SHA256\n\nx\n", _store(key), "I")
    with pytest.raises(BadSignature, match="Release.gpg: not an OpenPGP signature"):
        verify_detached(b"x", b"<html>404</html>", _store(key), "Release", "Release.gpg")


def test_revoked_key_fails():
    key = Key.make("Revoked <r@example.org>")
    signed = key.clearsign(b"data\n")
    keys = KeyStore([KeyringData("revoked", key.revoked())])
    with pytest.raises(BadSignature, match="is revoked"):
        verify_clearsigned(signed, keys, "InRelease")


def test_a_revocation_in_another_keyring_counts():
    key = Key.make("Twice <t@example.org>")
    signed = key.clearsign(b"data\n")
    revocation = key.revoked()[len(key.public):]
    keys = KeyStore([KeyringData("plain", key.public), KeyringData("update", key.public + revocation)])
    with pytest.raises(BadSignature, match="is revoked"):
        verify_clearsigned(signed, keys, "InRelease")
    twice = KeyStore([KeyringData("a", key.public), KeyringData("b", key.public)])
    assert verify_clearsigned(signed, twice, "InRelease").signer.fingerprint == key.fingerprint


def test_signature_made_after_the_key_expired_fails():
    key = Key.make()
    cert = key.expired_at(datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(seconds=30))
    signed = key.clearsign(b"data\n")  # made now, after the expiry
    with pytest.raises(BadSignature, match="expired on .* before the signature was made"):
        verify_clearsigned(signed, KeyStore([KeyringData("expired", cert)]), "InRelease")


def test_signature_made_before_the_key_expired_stays_valid():
    key = Key.make("Old <old@example.org>")
    signed = key.clearsign(b"data\n")
    made = datetime.datetime.now(datetime.timezone.utc)
    time.sleep(2.1)  # signature times have one-second resolution
    cert = key.expired_at(made + datetime.timedelta(seconds=1))  # expired before now
    keys = KeyStore([KeyringData("expired", cert)])
    ps = pgp()
    assert ps.Cert.from_bytes(cert).expiration < datetime.datetime.now(datetime.timezone.utc)
    assert verify_clearsigned(signed, keys, "InRelease").signer.fingerprint == key.fingerprint


# -- keyrings ---------------------------------------------------------------------

def test_explicit_keyring_armored_or_binary(tmp_path):
    key = Key.make()
    for armored in (True, False):
        path = key.write_keyring(str(tmp_path / f"k{armored}.asc"), armored=armored)
        keys = KeyStore(read_keyrings([path], system=False))
        assert verify_clearsigned(key.clearsign(b"x\n"), keys, "I").signer.fingerprint == key.fingerprint


def test_explicit_keyring_errors_are_usage_errors(tmp_path):
    with pytest.raises(UsageError, match="--keyring .*missing.gpg"):
        read_keyrings([str(tmp_path / "missing.gpg")], system=False)
    with pytest.raises(UsageError, match="Is a directory|not a regular file"):
        read_keyrings([str(tmp_path)], system=False)
    fifo = str(tmp_path / "fifo")
    os.mkfifo(fifo)
    with pytest.raises(UsageError, match="fifo: not a regular file"):
        read_keyrings([fifo], system=False)


def test_explicit_keyring_that_is_not_openpgp(tmp_path):
    path = write(str(tmp_path / "pubring.kbx"), b"\x00\x00\x00\x20\x01\x01KBXf" + b"\0" * 40)
    keys = KeyStore(read_keyrings([path], system=False))
    with pytest.raises(BootError, match="pubring.kbx: .*(not an OpenPGP keyring|no OpenPGP certificate)"):
        keys.load()


def test_oversized_keyrings_are_bounded(tmp_path, monkeypatch):
    monkeypatch.setattr(keyring_mod, "MAX_KEYRING_SIZE", 100)
    big = write(str(tmp_path / "big.gpg"), b"\0" * 101)
    with pytest.raises(UsageError, match="larger than 100 bytes"):
        read_keyrings([big], system=False)
    assert read_keyrings(system_files=[big]) == []  # a system one is skipped


def test_total_keyring_budget(tmp_path, monkeypatch):
    monkeypatch.setattr(keyring_mod, "MAX_TOTAL_SIZE", 150)
    paths = [write(str(tmp_path / f"{i}.gpg"), b"\0" * 100) for i in range(3)]
    assert len(read_keyrings(system_files=paths)) == 1


def test_missing_system_keyrings_are_skipped(tmp_path):
    assert read_keyrings(system_files=[str(tmp_path / "none.gpg")]) == []


def test_distribution_gpg_keys_tree_skips_copr_and_is_lazy(tmp_path):
    fedora, copr = Key.make("Fedora 40 <fedora-40@fedoraproject.org>"), Key.make("copr <u@copr>")
    root = tmp_path / "distribution-gpg-keys"
    fedora.write_keyring(write(str(root / "fedora" / "RPM-GPG-KEY-fedora-40-primary"), b""), armored=True)
    copr.write_keyring(write(str(root / "copr" / "copr.fedorainfracloud.org" / "u.gpg"), b""))
    calls = []

    def fallback():
        calls.append(1)
        return read_keyring_trees([str(root)])

    keys = _store(Key.make(), fallback=fallback)
    assert verify_clearsigned(fedora.clearsign(b"x\n"), keys, "C").signer.owner.startswith("Fedora 40")
    assert calls == [1]
    with pytest.raises(MissingKey):
        verify_clearsigned(copr.clearsign(b"x\n"), keys, "C")
    assert [os.path.basename(k.name) for k in read_keyring_trees([str(root)])] == ["RPM-GPG-KEY-fedora-40-primary"]


def test_fallback_not_read_when_the_first_keyrings_have_the_key():
    key = Key.make()
    keys = _store(key, fallback=lambda: pytest.fail("the fallback keyrings were read"))
    signed = verify_clearsigned(key.clearsign(b"x\n"), keys, "I")
    assert signed.signer.fingerprint == key.fingerprint.lower()
