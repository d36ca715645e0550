"""Migration 0015: an AuditEvent's single search values move into one row, and back.

A vault at 0014 keeps an AuditEvent's ``date`` in ``search_date`` and its ``type``,
``action`` and ``outcome`` in ``search_token``. After the upgrade those rows are one row of
``search_audit_event`` per record, and the log's searches find what they found before.
Runs on the suite's database engine (PostgreSQL when VAULT_DATABASE_URL says so).
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from sqlalchemy import inspect, select, text

from tests.conftest import initialise, make_settings
from tests.support import fresh_database
from tests.support.audit import new_inwoner, read_by
from vault.audit.log import AuditRecord, verify_chains
from vault.audit.runtime import open_runtime
from vault.consent.access import AccessContext
from vault.fhir.repository import Repository
from vault.kernel.db import Database
from vault.kernel.runtime import Runtime
from vault.migrations import alembic_config

SEARCHES = [
    [("action", "R")],
    [("outcome", "4")],
    [("type", "http://terminology.hl7.org/CodeSystem/audit-event-type|rest")],
    [("date", "ge2020-01-01")],
    [("date", "lt2020-01-01")],
]


def _found(runtime: Runtime, inwoner: str) -> list[list[str]]:
    """Each of ``SEARCHES`` in her log, and the log newest first: the ids, in order."""
    repo = Repository(runtime, AccessContext.full(), logged=False)
    found = []
    with runtime.db.read() as conn:
        for params in [*SEARCHES, [("_sort", "-date")]]:
            query = repo.parse(
                "AuditEvent", [("patient", inwoner), ("_count", "100"), *params], lenient=False
            )
            found.append([m.resource_id for m in repo.search(conn, query).matches])
    return found


def _rows(runtime: Runtime, sql: str) -> int:
    with runtime.db.read() as conn:
        return int(conn.execute(text(sql)).scalar_one())


def _migrate(url: str, revision: str) -> None:
    database = Database(url)
    try:
        config = alembic_config(url)
        with database.write_engine.begin() as conn:
            config.attributes["connection"] = conn
            if revision == "head":
                command.upgrade(config, revision)
            else:
                command.downgrade(config, revision)
    finally:
        database.dispose()


def test_the_single_values_move_down_and_up_and_the_log_finds_the_same(tmp_path: Path) -> None:
    with fresh_database(tmp_path) as url:
        settings = make_settings(tmp_path / "vault", url)
        initialise(settings)
        runtime = open_runtime(settings)
        try:
            anna = new_inwoner(runtime)
            refused = AuditRecord(
                patient_id=anna,
                interaction="read",
                permitted=False,
                client_id="c",
                organization="Organization/partner",
                account_id=None,
                entities=["Goal/goal-9"],
                recorded=1_500_000_000_000_000,  # 2017
            )
            with runtime.db.write() as conn:
                runtime.audit.append(conn, [read_by(anna, n=1), refused, read_by(anna, n=2)])
            runtime.audit.settle_all()
            before = _found(runtime, anna)
            events = _rows(
                runtime, "SELECT COUNT(*) FROM fhir_resource WHERE resource_type = 'AuditEvent'"
            )
        finally:
            runtime.close()
        assert [len(ids) for ids in before] == [3, 1, 3, 2, 1, 3]

        _migrate(url, "0014_compact_access_log")
        runtime = open_runtime(settings)
        try:
            tables = inspect(runtime.db.write_engine).get_table_names()
            assert "search_audit_event" not in tables
            tokens = (
                "SELECT COUNT(*) FROM search_token WHERE resource_type = 'AuditEvent'"
                " AND param IN ('type', 'action', 'outcome')"
            )
            dates = "SELECT COUNT(*) FROM search_date WHERE resource_type = 'AuditEvent'"
            assert _rows(runtime, tokens) == 3 * events
            assert _rows(runtime, dates) == events
        finally:
            runtime.close()

        _migrate(url, "head")
        runtime = open_runtime(settings)
        try:
            assert _rows(runtime, tokens) == 0 and _rows(runtime, dates) == 0
            assert _rows(runtime, "SELECT COUNT(*) FROM search_audit_event") == events
            with runtime.db.read() as conn:
                empty = conn.execute(
                    select(text("resource_pk"))
                    .select_from(text("search_audit_event"))
                    .where(text("date_low IS NULL OR type_hash IS NULL OR action_hash IS NULL"))
                ).first()
            assert empty is None
            assert _found(runtime, anna) == before
            assert verify_chains(runtime) == []
        finally:
            runtime.close()
