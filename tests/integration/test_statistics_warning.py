"""A vault on a PostgreSQL server whose autovacuum is off says so when it opens.

Without autovacuum nothing runs ``ANALYZE``: the planner's statistics stay those of the day
the tables were small, and each connection keeps the plans it prepared then (measured:
docs/performance.md). The operator learns it from the log, not from a slow vault.
"""

from __future__ import annotations

import logging

import pytest
from sqlalchemy import text

from vault.audit.runtime import open_runtime, statistics_stay_current
from vault.kernel.config import Settings
from vault.kernel.runtime import Runtime

WARNING = "PostgreSQL's autovacuum is off"


def _autovacuum_on(runtime: Runtime) -> bool:
    """The server's own catalogue of settings, asked another way than the vault asks."""
    with runtime.db.read() as conn:
        setting = conn.execute(
            text("SELECT setting FROM pg_settings WHERE name = 'autovacuum'")
        ).scalar_one()
    return setting == "on"


def test_opening_a_vault_warns_when_nothing_keeps_statistics_current(
    settings: Settings, runtime: Runtime, caplog: pytest.LogCaptureFixture
) -> None:
    expected = runtime.db.is_sqlite or _autovacuum_on(runtime)
    with runtime.db.read() as conn:
        assert statistics_stay_current(conn) is expected
    with caplog.at_level(logging.WARNING, logger="vault.audit.runtime"):
        opened = open_runtime(settings)
    opened.close()
    warned = [r.getMessage() for r in caplog.records if WARNING in r.getMessage()]
    assert len(warned) == (0 if expected else 1), warned
