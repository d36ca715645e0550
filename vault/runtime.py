"""One open vault: settings, database, master keyring, data-key cache and blind index.

Built once per process (the app's lifespan, or a CLI command) and shared by every request.
``bootstrap`` creates what a new database needs (the blind-index key and the shared data
key for resources outside any compartment); ``vault init`` and ``vault serve`` run it
before any worker starts, so workers never race to create keys.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass

from sqlalchemy import Connection, insert, select

from vault.config import Settings
from vault.crypto import BlindIndex, DataKeyCache, MasterKeyring, new_data_key
from vault.db import Database
from vault.errors import KeyUnavailable
from vault.fhir.models import SHARED_OWNER, DataKey, VaultMeta

__all__ = ["Runtime", "now_micros"]

BLIND_INDEX_KEY = "blind_index_key"


def now_micros() -> int:
    return time.time_ns() // 1000


@dataclass
class Runtime:
    settings: Settings
    db: Database
    keys: DataKeyCache
    blind: BlindIndex

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
        except Exception:
            db.dispose()
            raise
        if row is None:
            db.dispose()
            raise KeyUnavailable("the database has no vault keys yet; run `vault init`")
        blind_key = keyring.unwrap(row.value, owner=BLIND_INDEX_KEY, key_id=row.master_key_id)
        return cls(
            settings=settings, db=db, keys=DataKeyCache(keyring), blind=BlindIndex(blind_key)
        )

    def close(self) -> None:
        self.db.dispose()


def ensure_vault_keys(conn: Connection, keyring: MasterKeyring) -> None:
    """Create the blind-index key and the shared data key if this database has none."""
    master = keyring.current
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
