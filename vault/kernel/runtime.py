"""One open vault: settings, database, master keyring, data-key cache, blind index, access log.

Built once per process (the app's lifespan, or a CLI command) by ``open_runtime``
(``vault/audit/runtime.py``) and shared by every request. The access log is given to the
runtime by whoever opens it, as an ``AuditSink``: the kernel knows that every access is
recorded, not how.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from sqlalchemy import Connection

from vault.kernel.config import Settings
from vault.kernel.crypto import BlindIndex, DataKeyCache
from vault.kernel.db import Database

__all__ = ["AuditSink", "Runtime", "now_micros"]


def now_micros() -> int:
    return time.time_ns() // 1000


class AuditSink(Protocol):
    """Where records of access go (``vault/audit/log.py`` ``AuditLog``)."""

    def append(self, conn: Connection, records: Iterable[Any], *, settled: bool = False) -> None:
        """Write records inside the caller's transaction (``settled``: stored in full)."""

    def record(self, records: Sequence[Any]) -> None:
        """Write records durably (group commit) before returning."""

    async def record_async(self, records: Sequence[Any]) -> None:
        """``record`` without blocking the event loop."""

    def settle_for(self, ctx: Any) -> None:
        """Before a caller who may read the log reads: its waiting records stored in full."""

    def settle(
        self, conn: Connection, chains: Sequence[str] | None = None, *, limit: int = 500
    ) -> int:
        """Up to ``limit`` waiting records stored in full, in the caller's transaction."""

    def settle_all(self, chains: Sequence[str] | None = None) -> int:
        """Every waiting record (of these chains) stored in full now; returns how many."""

    def close(self) -> None:
        """Stop once every record submitted so far is durable; refuse records after."""


@dataclass
class Runtime:
    settings: Settings
    db: Database
    keys: DataKeyCache
    blind: BlindIndex
    # Set by ``open_runtime`` right after construction (the log needs the runtime itself).
    audit: AuditSink = field(init=False)

    def close(self) -> None:
        """The access log's writer first (it may still be committing), then the database."""
        self.audit.close()
        self.db.dispose()
