"""Migration 0016: an AuditEvent's references move to their own table, and back.

A vault at 0015 keeps an AuditEvent's ``patient``, ``entity`` and ``agent`` rows in
``search_reference``; the downgrade puts them back there. After the upgrade they are rows
of ``search_audit_reference``, none is left behind, and the log's searches by reference
(and a ``_revinclude`` of the log) find what they found before. Runs on the suite's
database engine (PostgreSQL when VAULT_DATABASE_URL says so).
"""

from __future__ import annotations

from pathlib import Path

from tests.conftest import initialise, make_settings
from tests.integration.test_migration_audit_event_single_values import _migrate, _rows
from tests.support import fresh_database, inwoner_context
from tests.support.audit import new_inwoner, read_by
from vault.audit.log import verify_chains
from vault.audit.runtime import open_runtime
from vault.fhir.repository import Repository
from vault.kernel.runtime import Runtime

SEARCHES = [
    [("entity", "Goal/goal-2")],
    [("entity", "Goal/goal-9")],
    [("entity:Goal", "goal-1")],
    [("agent", "Organization/partner")],
    [("agent", "Organization/other")],
]
IN_OLD_TABLE = "SELECT COUNT(*) FROM search_reference WHERE resource_type = 'AuditEvent'"
IN_NEW_TABLE = "SELECT COUNT(*) FROM search_audit_reference"


def _found(runtime: Runtime, inwoner: str) -> list[list[str]]:
    """Each of ``SEARCHES`` in her log as she searches it, and the records a search of her
    Patient brings along by ``_revinclude``: the ids, in order."""
    repo = Repository(runtime, inwoner_context(inwoner), logged=False)
    found = []
    with runtime.db.read() as conn:
        for params in SEARCHES:
            query = repo.parse(
                "AuditEvent", [("_count", "100"), ("_sort", "-date"), *params], lenient=False
            )
            found.append([m.resource_id for m in repo.search(conn, query).matches])
        query = repo.parse(
            "Patient", [("_id", inwoner), ("_revinclude", "AuditEvent:patient")], lenient=False
        )
        found.append(sorted(i.resource_id for i in repo.search(conn, query).includes))
    return found


def test_the_references_move_down_and_up_and_the_log_finds_the_same(tmp_path: Path) -> None:
    with fresh_database(tmp_path) as url:
        settings = make_settings(tmp_path / "vault", url)
        initialise(settings)
        runtime = open_runtime(settings)
        try:
            anna = new_inwoner(runtime)
            bram = new_inwoner(runtime)
            with runtime.db.write() as conn:
                runtime.audit.append(
                    conn, [read_by(anna, n=1), read_by(bram, n=2), read_by(anna, n=2)]
                )
            runtime.audit.settle_all()
            before = _found(runtime, anna)
            refs = _rows(runtime, IN_NEW_TABLE)
        finally:
            runtime.close()
        assert [len(ids) for ids in before] == [1, 0, 1, 2, 0, 2]
        assert refs == 3 * 4  # each record: patient, two entities (her, the Goal), agent

        _migrate(url, "0015_audit_event_single_values")
        runtime = open_runtime(settings)
        try:
            assert _rows(runtime, IN_OLD_TABLE) == refs  # this code searches the new table
        finally:
            runtime.close()

        _migrate(url, "head")
        runtime = open_runtime(settings)
        try:
            assert _rows(runtime, IN_OLD_TABLE) == 0
            assert _rows(runtime, IN_NEW_TABLE) == refs
            assert _found(runtime, anna) == before
            assert verify_chains(runtime) == []
        finally:
            runtime.close()
