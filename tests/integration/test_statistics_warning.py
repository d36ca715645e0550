"""A vault served from a PostgreSQL server whose autovacuum is off says so when it starts.

Without autovacuum nothing runs ``ANALYZE``: the planner's statistics stay those of the day
the tables were small, and each connection keeps the plans it prepared then (measured:
docs/performance.md). The operator learns it from the log, not from a slow vault. Commands
of the command line do not say it: their errors stay the first line they print
(``tests/integration/oauth/test_client_commands.py`` holds them to that).
"""

from __future__ import annotations

import asyncio
import logging

import pytest
from sqlalchemy import text

from vault.app.main import create_app
from vault.app.metrics import statistics_stay_current
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


def test_starting_to_serve_warns_when_nothing_keeps_statistics_current(
    settings: Settings, runtime: Runtime, caplog: pytest.LogCaptureFixture
) -> None:
    expected = runtime.db.is_sqlite or _autovacuum_on(runtime)
    with runtime.db.read() as conn:
        assert statistics_stay_current(conn) is expected
    app = create_app(settings)  # opens its own runtime when it starts, as `vault serve` does

    async def start_and_stop() -> None:
        async with app.router.lifespan_context(app):
            pass

    with caplog.at_level(logging.WARNING, logger="vault.app.metrics"):
        asyncio.run(start_and_stop())
    warned = [r.getMessage() for r in caplog.records if WARNING in r.getMessage()]
    assert len(warned) == (0 if expected else 1), warned
