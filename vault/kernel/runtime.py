"""One open vault: settings, database, master keyring, data-key cache and blind index.

Built once per process (the app's lifespan, or a CLI command) and shared by every request.
``bootstrap`` creates what a new database needs (the blind-index key and the shared data
key for resources outside any compartment); ``vault init`` and ``vault serve`` run it
before any worker starts, so workers never race to create keys.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field

from sqlalchemy import Connection, insert, select

from vault.audit.log import AuditLog
from vault.kernel.config import Settings
from vault.kernel.crypto import BlindIndex, DataKeyCache, MasterKey, MasterKeyring, new_data_key
from vault.kernel.db import Database
from vault.kernel.errors import KeyUnavailable
from vault.store.models import SHARED_OWNER, DataKey, VaultMeta

__all__ = ["Runtime", "now_micros"]

BLIND_INDEX_KEY = "blind_index_key"
# The id of the master key new data keys must be wrapped with. Rotation changes it in its
# own transaction; a writer reads it (locking the row) in the transaction that wraps, so a
# data key can never be wrapped with a key the rotation is about to retire.
CURRENT_MASTER_KEY = "current_master_key_id"


def now_micros() -> int:
    return time.time_ns() // 1000


@dataclass
class Runtime:
    settings: Settings
    db: Database
    keys: DataKeyCache
    blind: BlindIndex
    audit: AuditLog = field(init=False)

    def __post_init__(self) -> None:
        self.audit = AuditLog(self)

    @classmethod
    def open(cls, settings: Settings, *, bootstrap: bool = False) -> Runtime:
        keyring = MasterKeyring.load(
            settings.master_key_path, env_value=os.environ.get("VAULT_MASTER_KEY")
        )
        db = Database(
            settings.database_url, checkpoint_interval=settings.sqlite_checkpoint_interval
        )
        try:
            if bootstrap:
                with db.write() as conn:
                    ensure_vault_keys(conn, keyring)
            with db.read() as conn:
                row = conn.execute(
                    select(VaultMeta.value, VaultMeta.master_key_id).where(
                        VaultMeta.name == BLIND_INDEX_KEY
                    )
                ).one_or_none()
            if row is None:
                raise KeyUnavailable("the database has no vault keys yet; run `vault init`")
            blind_key = keyring.unwrap(row.value, owner=BLIND_INDEX_KEY, key_id=row.master_key_id)
        except Exception:
            # A wrong master key must not leave the engine's connections open behind it.
            db.dispose()
            raise
        return cls(
            settings=settings, db=db, keys=DataKeyCache(keyring), blind=BlindIndex(blind_key)
        )

    def close(self) -> None:
        self.db.dispose()

    def wrapping_key(self, conn: Connection) -> MasterKey:
        """The master key to wrap a new data key with, inside the caller's transaction."""
        return wrapping_key(conn, self.keys.keyring)


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
    from vault.oauth.keys import ensure_signing_key

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
