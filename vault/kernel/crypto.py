"""Envelope encryption: one data key per inwoner, wrapped by the vault's master key.

Design section 4. Every resource version body is sealed with AES-256-GCM under the data key
of the compartment it belongs to; ``Type/id/_history/version`` is bound in as associated
data, so a ciphertext copied onto another row does not open. Data keys are wrapped (also
AES-256-GCM, the owner bound in) by the master key, which lives outside the database: a key
file made by ``vault init`` with 0600 rights, or ``VAULT_MASTER_KEY``. Destroying a data key
(crypto-shredding) makes every copy of that inwoner's data unreadable, backups included.

Identifiers such as a BSN are never stored in clear: search indexes hold a keyed hash
(blind index) made with a separate index key, itself wrapped by the master key.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import hmac
import os
import secrets
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from threading import Lock

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from vault.kernel.errors import KeyUnavailable

__all__ = [
    "BlindIndex",
    "DataKeyCache",
    "MasterKey",
    "MasterKeyring",
    "fsync_dir",
    "new_data_key",
    "open_body",
    "pending_key_path",
    "seal_body",
]

KEY_BYTES = 32
NONCE_BYTES = 12
# Values of VAULT_MASTER_KEY that people paste from examples; refused outside tests.
_PLACEHOLDERS = {"changeme", "change-me", "secret", "test", "example", "dev"}


def new_data_key() -> bytes:
    return secrets.token_bytes(KEY_BYTES)


@dataclass(frozen=True, slots=True)
class MasterKey:
    material: bytes

    def __post_init__(self) -> None:
        if len(self.material) != KEY_BYTES:
            raise KeyUnavailable("a master key must be 32 bytes")

    @property
    def key_id(self) -> str:
        """A fingerprint that names the key without revealing it."""
        return hashlib.sha256(b"regiekluis/master-key-id/" + self.material).hexdigest()[:16]

    @classmethod
    def generate(cls) -> MasterKey:
        return cls(secrets.token_bytes(KEY_BYTES))

    @classmethod
    def from_text(cls, text: str) -> MasterKey:
        text = text.strip()
        if text.lower() in _PLACEHOLDERS:
            raise KeyUnavailable("the master key is a placeholder value; generate one")
        try:
            material = base64.urlsafe_b64decode(text.encode("ascii"))
        except (binascii.Error, UnicodeEncodeError, ValueError) as exc:
            raise KeyUnavailable("the master key is not valid base64") from exc
        return cls(material)

    def to_text(self) -> str:
        return base64.urlsafe_b64encode(self.material).decode("ascii")

    def write(self, path: Path, *, overwrite: bool = False) -> None:
        """Write the key file with 0600 rights, durably; never replaces an existing key.

        The key goes to a synced temporary file that is then linked into place, and the
        folder is synced: after a crash the key file is complete or absent, never empty, and
        once this returns it survives a power cut (rotation wraps data keys with it next).
        """
        temporary = path.with_name(f".{path.name}.{secrets.token_hex(8)}.tmp")
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            try:
                os.write(fd, (self.to_text() + "\n").encode("ascii"))
                os.fsync(fd)
            finally:
                os.close(fd)
            os.chmod(temporary, 0o600)
            if overwrite:
                os.replace(temporary, path)
            else:
                os.link(temporary, path)  # FileExistsError if a key is there: never replaced
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(temporary)
        fsync_dir(path.parent)

    @classmethod
    def read(cls, path: Path) -> MasterKey:
        try:
            return cls.from_text(path.read_text(encoding="ascii"))
        except FileNotFoundError as exc:
            raise KeyUnavailable(f"no master key file at {path}; run `vault init`") from exc

    def wrap(self, data_key: bytes, *, owner: str) -> bytes:
        nonce = secrets.token_bytes(NONCE_BYTES)
        return nonce + AESGCM(self.material).encrypt(nonce, data_key, _wrap_aad(owner))

    def unwrap(self, wrapped: bytes, *, owner: str) -> bytes:
        try:
            return AESGCM(self.material).decrypt(
                wrapped[:NONCE_BYTES], wrapped[NONCE_BYTES:], _wrap_aad(owner)
            )
        except InvalidTag as exc:
            raise KeyUnavailable("a data key does not open with the master key") from exc


def _wrap_aad(owner: str) -> bytes:
    return b"regiekluis/data-key/" + owner.encode("utf-8")


class MasterKeyring:
    """The master key in force, plus a pending one while ``vault keys rotate`` runs.

    Rotation writes the new key beside the old one, re-wraps every data key in one
    transaction, then replaces the old key file. If it is interrupted in between, both keys
    are loaded so that every wrapped key still opens and the rotation can be finished.
    """

    def __init__(self, keys: Iterable[MasterKey], *, path: Path | None = None) -> None:
        self._keys = {key.key_id: key for key in keys}
        if not self._keys:
            raise KeyUnavailable("no master key")
        self.current = next(iter(self._keys.values()))
        self._path = path
        self._lock = Lock()

    @classmethod
    def load(cls, path: Path, *, env_value: str | None = None) -> MasterKeyring:
        if env_value:
            return cls([MasterKey.from_text(env_value)])
        return cls(_read_key_files(path), path=path)

    def get(self, key_id: str) -> MasterKey:
        found = self._keys.get(key_id)
        if found is None and self.reload():
            found = self._keys.get(key_id)
        if found is None:
            raise KeyUnavailable("a data key was wrapped by a master key that is not loaded")
        return found

    def reload(self) -> bool:
        """Read the key files again: a running server learns of a rotation this way."""
        if self._path is None:
            return False
        try:
            keys = _read_key_files(self._path)
        except KeyUnavailable:
            return False
        with self._lock:
            self._keys.update({key.key_id: key for key in keys})
        return True

    def unwrap(self, wrapped: bytes, *, owner: str, key_id: str) -> bytes:
        return self.get(key_id).unwrap(wrapped, owner=owner)


def _read_key_files(path: Path) -> list[MasterKey]:
    keys = [MasterKey.read(path)]
    pending = pending_key_path(path)
    if pending.exists():
        keys.append(MasterKey.read(pending))
    return keys


def pending_key_path(path: Path) -> Path:
    return path.with_name(path.name + ".new")


def fsync_dir(path: Path) -> None:
    """Make a file's creation, rename or removal in ``path`` survive a power cut."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _body_aad(resource_type: str, resource_id: str, version: int) -> bytes:
    return f"{resource_type}/{resource_id}/_history/{version}".encode()


def seal_body(
    aead: AESGCM, *, resource_type: str, resource_id: str, version: int, plaintext: bytes
) -> bytes:
    nonce = secrets.token_bytes(NONCE_BYTES)
    return nonce + aead.encrypt(nonce, plaintext, _body_aad(resource_type, resource_id, version))


def open_body(
    aead: AESGCM, *, resource_type: str, resource_id: str, version: int, sealed: bytes
) -> bytes:
    try:
        return aead.decrypt(
            sealed[:NONCE_BYTES],
            sealed[NONCE_BYTES:],
            _body_aad(resource_type, resource_id, version),
        )
    except InvalidTag as exc:
        raise KeyUnavailable("a stored resource does not open under its data key") from exc


class DataKeyCache:
    """Unwrapped data keys, keyed by the wrapped bytes so a re-wrap or a shred misses.

    The cache never outlives a key's destruction: a shredded key has no wrapped bytes left
    in the database, so no request can present them to look it up.
    """

    def __init__(self, keyring: MasterKeyring, *, size: int = 4096) -> None:
        self._keyring = keyring
        self._size = size
        self._entries: OrderedDict[tuple[str, bytes], AESGCM] = OrderedDict()
        self._lock = Lock()

    @property
    def keyring(self) -> MasterKeyring:
        return self._keyring

    def aead(self, *, owner: str, key_id: str, wrapped: bytes | None) -> AESGCM:
        if wrapped is None:
            raise KeyUnavailable("the data key of this compartment was destroyed")
        cache_key = (owner, wrapped)
        with self._lock:
            found = self._entries.get(cache_key)
            if found is not None:
                self._entries.move_to_end(cache_key)
                return found
        aead = AESGCM(self._keyring.unwrap(wrapped, owner=owner, key_id=key_id))
        with self._lock:
            self._entries[cache_key] = aead
            if len(self._entries) > self._size:
                self._entries.popitem(last=False)
        return aead

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()


_CODES_KEPT = 64


class BlindIndex:
    """Keyed hashes of searchable values, so equality search works without clear text."""

    def __init__(self, key: bytes) -> None:
        self._key = key
        self._codes: dict[str, str] = {}

    def token_of_code(self, value: str) -> str:
        """:meth:`token` of a code from a short fixed list (an access-log record's action
        or outcome, ``store/audit_index.py``), kept after its first use. Never for a value
        a person wrote: the map keeps its values in clear."""
        found = self._codes.get(value)
        if found is None:
            if len(self._codes) >= _CODES_KEPT:
                self._codes.clear()
            found = self._codes[value] = self.token(value)
        return found

    def derive(self, label: bytes) -> bytes:
        """A separate key for another keyed-hash use (e.g. the audit chain)."""
        return hmac.new(self._key, label, hashlib.sha256).digest()

    def token(self, value: str) -> str:
        digest = hmac.new(self._key, value.encode("utf-8"), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest[:24]).decode("ascii")
