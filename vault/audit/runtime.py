"""Opening the vault: a ``Runtime`` with its keys loaded and its access log attached.

This is the lowest layer that can build a whole ``Runtime``: a runtime records every access,
and the access log lives here. ``bootstrap`` creates what a new database needs (the
blind-index key, the shared data key for resources outside any compartment and a signing
key); ``vault init`` and ``vault serve`` run it before any worker starts, so workers never
race to create keys.
"""

from __future__ import annotations

import logging
import os

from sqlalchemy import Connection

from vault.audit.log import AuditLog
from vault.kernel.config import Settings
from vault.kernel.crypto import DataKeyCache, MasterKeyring
from vault.kernel.db import Database
from vault.kernel.runtime import Runtime
from vault.store.keys import blind_index, ensure_vault_keys

__all__ = ["open_runtime", "statistics_stay_current", "warn_without_autovacuum"]

log = logging.getLogger(__name__)


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


def statistics_stay_current(conn: Connection) -> bool:
    """False on a PostgreSQL server whose autovacuum is off. Nothing then runs ``ANALYZE``,
    so each connection keeps the plans it prepared while the tables were small: measured on
    a new vault filled through the API, the write's owner check read every Patient of the
    vault by type (51 µs at 125 inwoners, 686 µs at 1,000; docs/performance.md)."""
    if conn.dialect.name != "postgresql":
        return True
    return str(conn.exec_driver_sql("SHOW autovacuum").scalar()).lower() == "on"


def warn_without_autovacuum(runtime: Runtime) -> None:
    """For a serving process, whose connections keep their plans for as long as it runs: a
    warning in its log when nothing keeps the statistics current. A command of the command
    line ends before its plans could go stale, and its errors stay the first thing it says."""
    with runtime.db.read() as conn:
        current = statistics_stay_current(conn)
    if not current:
        log.warning(
            "PostgreSQL's autovacuum is off: the planner's statistics will not follow the"
            " vault as it grows, and plans made on small tables stay in use"
            " (docs/operating.md, PostgreSQL)"
        )
