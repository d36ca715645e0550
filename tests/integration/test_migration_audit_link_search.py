"""Migration 0017: an access-log link keeps its record's search values until it is settled.

A vault whose records wait in their links goes down to 0016, which has no room for the
values, and up again: its links then hold none, as links written before 0017 do, and they
settle all the same (by opening each record), into AuditEvents the log finds and the chain
verifies. Runs on the suite's database engine (PostgreSQL when VAULT_DATABASE_URL says so).
"""

from __future__ import annotations

from pathlib import Path

from tests.conftest import initialise, make_settings
from tests.integration.test_migration_audit_event_references import _found
from tests.integration.test_migration_audit_event_single_values import _migrate, _rows
from tests.support import fresh_database
from tests.support.audit import new_inwoner, read_by
from vault.audit.log import verify_chains
from vault.audit.runtime import open_runtime

WAITING = "SELECT COUNT(*) FROM audit_chain WHERE resource_pk IS NULL AND body IS NOT NULL"
WITH_VALUES = "SELECT COUNT(*) FROM audit_chain WHERE search IS NOT NULL"


def test_links_written_before_the_values_settle_as_before(tmp_path: Path) -> None:
    with fresh_database(tmp_path) as url:
        settings = make_settings(tmp_path / "vault", url)
        initialise(settings)
        runtime = open_runtime(settings)
        try:
            anna, bram = new_inwoner(runtime), new_inwoner(runtime)
            with runtime.db.write() as conn:
                runtime.audit.append(
                    conn, [read_by(anna, n=1), read_by(bram, n=2), read_by(anna, n=2)]
                )
            assert _rows(runtime, WAITING) == 3
            # PostgreSQL settles in SQL from these values; SQLite opens each record.
            assert _rows(runtime, WITH_VALUES) == (0 if runtime.db.is_sqlite else 3)
        finally:
            runtime.close()

        _migrate(url, "0016_audit_event_references")
        _migrate(url, "head")
        runtime = open_runtime(settings)
        try:
            assert _rows(runtime, WAITING) == 3
            assert _rows(runtime, WITH_VALUES) == 0
            assert runtime.audit.settle_all() == 3
            assert _rows(runtime, WAITING) == 0
            assert [len(ids) for ids in _found(runtime, anna)] == [1, 0, 1, 2, 0, 2]
            assert verify_chains(runtime) == []
        finally:
            runtime.close()
