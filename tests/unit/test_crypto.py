"""Envelope encryption: master key and keyring, body sealing with bound identity, blind index."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from vault.kernel.crypto import (
    BlindIndex,
    DataKeyCache,
    MasterKey,
    MasterKeyring,
    new_data_key,
    open_body,
    pending_key_path,
    seal_body,
)
from vault.kernel.errors import KeyUnavailable

PLAINTEXT = b'{"resourceType":"Goal","description":{"text":"Ik wil weer werken"}}'


@pytest.fixture
def permissive_umask() -> Iterator[None]:
    """A umask that would leave a new file world-readable, to prove the mode is set."""
    previous = os.umask(0)
    try:
        yield
    finally:
        os.umask(previous)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


# -- master key and keyring ------------------------------------------------------------------


def test_master_key_wraps_and_unwraps_a_data_key() -> None:
    master = MasterKey.generate()
    data_key = new_data_key()
    wrapped = master.wrap(data_key, owner="patient-1")
    assert data_key not in wrapped
    assert master.unwrap(wrapped, owner="patient-1") == data_key


def test_wrapped_data_key_is_bound_to_its_owner() -> None:
    master = MasterKey.generate()
    wrapped = master.wrap(new_data_key(), owner="patient-1")
    with pytest.raises(KeyUnavailable):
        master.unwrap(wrapped, owner="patient-2")


def test_another_master_key_does_not_unwrap() -> None:
    wrapped = MasterKey.generate().wrap(new_data_key(), owner="patient-1")
    with pytest.raises(KeyUnavailable):
        MasterKey.generate().unwrap(wrapped, owner="patient-1")


def test_tampered_wrapped_key_does_not_unwrap() -> None:
    master = MasterKey.generate()
    wrapped = bytearray(master.wrap(new_data_key(), owner="patient-1"))
    wrapped[-1] ^= 0x01
    with pytest.raises(KeyUnavailable):
        master.unwrap(bytes(wrapped), owner="patient-1")


def test_key_id_names_the_key_without_revealing_it() -> None:
    master = MasterKey.generate()
    assert master.key_id == MasterKey(master.material).key_id
    assert master.key_id != MasterKey.generate().key_id
    assert master.key_id not in master.to_text()
    assert len(master.key_id) == 16


def test_keyring_unwraps_with_the_key_that_wrapped() -> None:
    old, new = MasterKey.generate(), MasterKey.generate()
    ring = MasterKeyring([old, new])
    assert ring.current == old
    data_key = new_data_key()
    for master in (old, new):
        wrapped = master.wrap(data_key, owner="p")
        assert ring.unwrap(wrapped, owner="p", key_id=master.key_id) == data_key


def test_keyring_refuses_a_key_id_it_does_not_hold() -> None:
    stranger = MasterKey.generate()
    ring = MasterKeyring([MasterKey.generate()])
    wrapped = stranger.wrap(new_data_key(), owner="p")
    with pytest.raises(KeyUnavailable, match="not loaded"):
        ring.unwrap(wrapped, owner="p", key_id=stranger.key_id)


def test_keyring_needs_a_key() -> None:
    with pytest.raises(KeyUnavailable):
        MasterKeyring([])


def test_keyring_loads_the_pending_key_of_an_interrupted_rotation(tmp_path: Path) -> None:
    path = tmp_path / "master.key"
    current, pending = MasterKey.generate(), MasterKey.generate()
    current.write(path)
    assert MasterKeyring.load(path).get(current.key_id) == current
    with pytest.raises(KeyUnavailable):
        MasterKeyring.load(path).get(pending.key_id)
    pending.write(pending_key_path(path))
    ring = MasterKeyring.load(path)
    assert ring.current == current
    assert ring.get(pending.key_id) == pending


def test_keyring_from_the_environment_ignores_key_files(tmp_path: Path) -> None:
    path = tmp_path / "master.key"
    MasterKey.generate().write(path)
    from_env = MasterKey.generate()
    ring = MasterKeyring.load(path, env_value=from_env.to_text())
    assert ring.current == from_env


def test_missing_key_file_says_to_run_vault_init(tmp_path: Path) -> None:
    with pytest.raises(KeyUnavailable, match="vault init"):
        MasterKeyring.load(tmp_path / "master.key")


# -- master key text and placeholders ---------------------------------------------------------


def test_master_key_text_round_trip() -> None:
    master = MasterKey.generate()
    assert MasterKey.from_text(master.to_text()) == master
    assert MasterKey.from_text(f"  {master.to_text()}\n") == master


@pytest.mark.parametrize(
    "value", ["changeme", "CHANGEME", " changeme\n", "change-me", "secret", "test", "dev"]
)
def test_placeholder_master_key_is_refused(value: str) -> None:
    with pytest.raises(KeyUnavailable, match="placeholder"):
        MasterKey.from_text(value)


def test_placeholder_master_key_from_the_environment_is_refused(tmp_path: Path) -> None:
    with pytest.raises(KeyUnavailable, match="placeholder"):
        MasterKeyring.load(tmp_path / "master.key", env_value="changeme")


@pytest.mark.parametrize("value", ["c2hvcnQ=", "not base64 at all, é", ""])
def test_master_key_that_is_not_32_bytes_of_base64_is_refused(value: str) -> None:
    with pytest.raises(KeyUnavailable):
        MasterKey.from_text(value)


def test_master_key_material_must_be_32_bytes() -> None:
    with pytest.raises(KeyUnavailable):
        MasterKey(b"\x00" * 16)


# -- the key file ------------------------------------------------------------------------------


@pytest.mark.usefixtures("permissive_umask")
def test_key_file_is_written_with_mode_0600(tmp_path: Path) -> None:
    path = tmp_path / "master.key"
    master = MasterKey.generate()
    master.write(path)
    assert mode(path) == 0o600
    assert MasterKey.read(path) == master


def test_key_file_is_never_overwritten(tmp_path: Path) -> None:
    path = tmp_path / "master.key"
    MasterKey.generate().write(path)
    before = path.read_bytes()
    with pytest.raises(FileExistsError):
        MasterKey.generate().write(path)
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["master.key"]


@pytest.mark.usefixtures("permissive_umask")
def test_key_file_overwrite_must_be_asked_for_and_keeps_mode_0600(tmp_path: Path) -> None:
    path = tmp_path / "master.key"
    path.write_text("old\n")
    path.chmod(0o644)
    master = MasterKey.generate()
    master.write(path, overwrite=True)
    assert MasterKey.read(path) == master
    assert mode(path) == 0o600


def test_key_file_write_leaves_nothing_else_behind(tmp_path: Path) -> None:
    path = tmp_path / "master.key"
    MasterKey.generate().write(path)
    MasterKey.generate().write(pending_key_path(path))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["master.key", "master.key.new"]


# -- sealed bodies -----------------------------------------------------------------------------


def seal(aead: AESGCM, resource_type: str, resource_id: str, version: int) -> bytes:
    return seal_body(
        aead,
        resource_type=resource_type,
        resource_id=resource_id,
        version=version,
        plaintext=PLAINTEXT,
    )


def test_sealed_body_opens_as_itself() -> None:
    aead = AESGCM(new_data_key())
    sealed = seal(aead, "Goal", "a", 1)
    assert b"werken" not in sealed
    opened = open_body(aead, resource_type="Goal", resource_id="a", version=1, sealed=sealed)
    assert opened == PLAINTEXT


@pytest.mark.parametrize(
    ("resource_type", "resource_id", "version"),
    [("Goal", "a", 2), ("Goal", "b", 1), ("CarePlan", "a", 1), ("Goal", "a/_history/1", 1)],
)
def test_sealed_body_does_not_open_as_another_resource_or_version(
    resource_type: str, resource_id: str, version: int
) -> None:
    aead = AESGCM(new_data_key())
    sealed = seal(aead, "Goal", "a", 1)
    with pytest.raises(KeyUnavailable):
        open_body(
            aead,
            resource_type=resource_type,
            resource_id=resource_id,
            version=version,
            sealed=sealed,
        )


def test_sealed_body_does_not_open_under_another_inwoners_key() -> None:
    sealed = seal(AESGCM(new_data_key()), "Goal", "a", 1)
    with pytest.raises(KeyUnavailable):
        open_body(
            AESGCM(new_data_key()), resource_type="Goal", resource_id="a", version=1, sealed=sealed
        )


def test_tampered_body_does_not_open() -> None:
    aead = AESGCM(new_data_key())
    sealed = bytearray(seal(aead, "Goal", "a", 1))
    sealed[20] ^= 0x01
    with pytest.raises(KeyUnavailable):
        open_body(aead, resource_type="Goal", resource_id="a", version=1, sealed=bytes(sealed))


def test_sealing_twice_gives_different_ciphertexts() -> None:
    aead = AESGCM(new_data_key())
    assert seal(aead, "Goal", "a", 1) != seal(aead, "Goal", "a", 1)


# -- data key cache ----------------------------------------------------------------------------


def test_data_key_cache_opens_what_the_master_key_wrapped() -> None:
    master = MasterKey.generate()
    data_key = new_data_key()
    wrapped = master.wrap(data_key, owner="p")
    cache = DataKeyCache(MasterKeyring([master]))
    aead = cache.aead(owner="p", key_id=master.key_id, wrapped=wrapped)
    sealed = seal(AESGCM(data_key), "Goal", "a", 1)
    assert open_body(aead, resource_type="Goal", resource_id="a", version=1, sealed=sealed)
    assert cache.aead(owner="p", key_id=master.key_id, wrapped=wrapped) is aead


def test_data_key_cache_refuses_a_destroyed_key() -> None:
    master = MasterKey.generate()
    cache = DataKeyCache(MasterKeyring([master]))
    with pytest.raises(KeyUnavailable, match="destroyed"):
        cache.aead(owner="p", key_id=master.key_id, wrapped=None)


def test_data_key_cache_does_not_serve_a_key_to_another_owner() -> None:
    master = MasterKey.generate()
    wrapped = master.wrap(new_data_key(), owner="p")
    cache = DataKeyCache(MasterKeyring([master]))
    cache.aead(owner="p", key_id=master.key_id, wrapped=wrapped)
    with pytest.raises(KeyUnavailable):
        cache.aead(owner="q", key_id=master.key_id, wrapped=wrapped)


# -- blind index -------------------------------------------------------------------------------


def test_blind_index_is_deterministic() -> None:
    key = new_data_key()
    assert BlindIndex(key).token("999990019") == BlindIndex(key).token("999990019")


def test_blind_index_depends_on_the_key() -> None:
    assert BlindIndex(new_data_key()).token("999990019") != BlindIndex(new_data_key()).token(
        "999990019"
    )


def test_blind_index_tells_values_apart_and_hides_them() -> None:
    index = BlindIndex(new_data_key())
    first, second = index.token("999990019"), index.token("999990020")
    assert first != second
    assert "99999" not in first
    assert len(first) == 32  # fits search_token.code_hash
