"""The vault's own keys, kept in the database sealed by the master key.

- ``current_master_key_id`` in ``vault_meta``: the master key new keys are wrapped with;
  rotation changes it in its own transaction, and a writer reads it (locking the row on
  PostgreSQL) in the transaction that wraps, so a key is never wrapped with a master key the
  rotation is about to retire.
- The blind-index key (``vault_meta``), the data key of each inwoner and the shared data
  key (``data_key``; an inwoner's is NULL once crypto-shredded), and the signing keys of the
  authorization server (``oauth_signing_key``: private halves sealed, public halves
  published by ``vault/oauth/keys.py``).

``ensure_vault_keys`` creates what a new database lacks; ``vault init`` and ``vault serve``
run it before any worker starts, so workers never race to create keys.
"""

from __future__ import annotations

import json
import secrets

from joserfc import jwk
from sqlalchemy import Connection, insert, select, update

from vault.kernel.crypto import BlindIndex, MasterKey, MasterKeyring, new_data_key
from vault.kernel.errors import KeyUnavailable
from vault.kernel.runtime import now_micros
from vault.store.models import SHARED_OWNER, DataKey, SigningKey, VaultMeta

__all__ = [
    "BLIND_INDEX_KEY",
    "CURRENT_MASTER_KEY",
    "blind_index",
    "create_signing_key",
    "destroy_data_key",
    "ensure_signing_key",
    "ensure_vault_keys",
    "rotate_signing_key",
    "signing_key_owner",
    "wrapping_key",
]

BLIND_INDEX_KEY = "blind_index_key"
CURRENT_MASTER_KEY = "current_master_key_id"
SIGNING_ALGORITHM = "RS256"  # what OpenID Connect relying parties must support


def blind_index(conn: Connection, keyring: MasterKeyring) -> BlindIndex:
    """The blind index of this vault, its key unwrapped by the master key."""
    row = conn.execute(
        select(VaultMeta.value, VaultMeta.master_key_id).where(VaultMeta.name == BLIND_INDEX_KEY)
    ).one_or_none()
    if row is None:
        raise KeyUnavailable("the database has no vault keys yet; run `vault init`")
    return BlindIndex(keyring.unwrap(row.value, owner=BLIND_INDEX_KEY, key_id=row.master_key_id))


def wrapping_key(conn: Connection, keyring: MasterKeyring) -> MasterKey:
    stmt = select(VaultMeta.value).where(VaultMeta.name == CURRENT_MASTER_KEY)
    if conn.dialect.name == "postgresql":
        stmt = stmt.with_for_update(read=True)
    value = conn.execute(stmt).scalar()
    if value is None:
        return keyring.current
    return keyring.get(value.decode("ascii"))


def ensure_vault_keys(conn: Connection, keyring: MasterKeyring) -> None:
    """Create the vault-wide keys this database lacks: blind index, shared data, signing."""
    if (
        conn.execute(select(VaultMeta.name).where(VaultMeta.name == CURRENT_MASTER_KEY)).first()
        is None
    ):
        conn.execute(
            insert(VaultMeta).values(
                name=CURRENT_MASTER_KEY,
                value=keyring.current.key_id.encode("ascii"),
                master_key_id=None,
            )
        )
    master = wrapping_key(conn, keyring)
    if (
        conn.execute(select(VaultMeta.name).where(VaultMeta.name == BLIND_INDEX_KEY)).first()
        is None
    ):
        conn.execute(
            insert(VaultMeta).values(
                name=BLIND_INDEX_KEY,
                value=master.wrap(new_data_key(), owner=BLIND_INDEX_KEY),
                master_key_id=master.key_id,
            )
        )
    if conn.execute(select(DataKey.owner).where(DataKey.owner == SHARED_OWNER)).first() is None:
        conn.execute(
            insert(DataKey).values(
                owner=SHARED_OWNER,
                wrapped=master.wrap(new_data_key(), owner=SHARED_OWNER),
                master_key_id=master.key_id,
                created_at=now_micros(),
            )
        )
    ensure_signing_key(conn, master, now=now_micros())


def signing_key_owner(kid: str) -> str:
    return f"signing-key/{kid}"


def create_signing_key(conn: Connection, master: MasterKey, *, now: int) -> str:
    kid = secrets.token_hex(8)
    key = jwk.RSAKey.generate_key(
        2048, parameters={"kid": kid, "alg": SIGNING_ALGORITHM, "use": "sig"}
    )
    private_pem = key.as_pem(private=True)
    conn.execute(
        insert(SigningKey).values(
            kid=kid,
            algorithm=SIGNING_ALGORITHM,
            private_sealed=master.wrap(private_pem, owner=signing_key_owner(kid)),
            master_key_id=master.key_id,
            public_jwk=json.dumps(key.as_dict(private=False)),
            created_at=now,
            retire_after=None,
        )
    )
    return kid


def ensure_signing_key(conn: Connection, master: MasterKey, *, now: int) -> None:
    active = conn.execute(select(SigningKey.kid).where(SigningKey.retire_after.is_(None))).first()
    if active is None:
        create_signing_key(conn, master, now=now)


def rotate_signing_key(
    conn: Connection, master: MasterKey, *, now: int, keep_public_for: int
) -> str:
    """New signing key; the old ones stay published for ``keep_public_for`` microseconds."""
    conn.execute(
        update(SigningKey)
        .where(SigningKey.retire_after.is_(None))
        .values(retire_after=now + keep_public_for)
    )
    return create_signing_key(conn, master, now=now)


def destroy_data_key(conn: Connection, *, owner: str, now: int) -> None:
    """Crypto-shredding: the inwoner's wrapped data key goes, so no stored version of hers
    (and no backup of one) can be opened again. The row stays, with the moment it went."""
    conn.execute(
        update(DataKey).where(DataKey.owner == owner).values(wrapped=None, destroyed_at=now)
    )
