"""Opening the vault: a ``Runtime`` with its keys loaded and its access log attached.

This is the lowest layer that can build a whole ``Runtime``: a runtime records every access,
and the access log lives here. ``bootstrap`` creates what a new database needs (the
blind-index key, the shared data key for resources outside any compartment and a signing
key); ``vault init`` and ``vault serve`` run it before any worker starts, so workers never
race to create keys.
"""

from __future__ import annotations

import os

from vault.audit.log import AuditLog
from vault.kernel.config import Settings
from vault.kernel.crypto import DataKeyCache, MasterKeyring
from vault.kernel.db import Database
from vault.kernel.runtime import Runtime
from vault.store.keys import blind_index, ensure_vault_keys

__all__ = ["open_runtime"]


def open_runtime(settings: Settings, *, bootstrap: bool = False) -> Runtime:
    keyring = MasterKeyring.load(
        settings.master_key_path, env_value=os.environ.get("VAULT_MASTER_KEY")
    )
    db = Database(settings.database_url, checkpoint_interval=settings.sqlite_checkpoint_interval)
    try:
        if bootstrap:
            with db.write() as conn:
                ensure_vault_keys(conn, keyring)
        with db.read() as conn:
            blind = blind_index(conn, keyring)
    except Exception:
        # A wrong master key must not leave the engine's connections open behind it.
        db.dispose()
        raise
    runtime = Runtime(settings=settings, db=db, keys=DataKeyCache(keyring), blind=blind)
    runtime.audit = AuditLog(runtime)
    return runtime
