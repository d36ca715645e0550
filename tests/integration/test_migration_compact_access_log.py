"""Migration 0014: the access log's links learn to hold a waiting record.

A vault upgraded from 0013 has only settled links (each points at its AuditEvent and has no
id or body of its own): they must verify as before, and new records, waiting in their links,
must join the same chains. Runs on the suite's database engine (PostgreSQL when
VAULT_DATABASE_URL says so).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from alembic import command
from sqlalchemy import select
from typer.testing import CliRunner

from tests.conftest import initialise, make_settings
from tests.factories import patient
from tests.support import fresh_database
from tests.support.audit import read_by
from vault.app import cli
from vault.audit.log import verify_chains
from vault.audit.models import AuditChain
from vault.audit.runtime import open_runtime
from vault.consent.access import AccessContext
from vault.fhir.repository import Repository
from vault.kernel.db import Database
from vault.kernel.runtime import Runtime
from vault.migrations import alembic_config, upgrade


def _links(runtime: Runtime, chain: str) -> list[tuple[int, bool]]:
    """(seq, settled) of each link of the chain, in order."""
    c = AuditChain.__table__.c
    with runtime.db.read() as conn:
        rows = conn.execute(select(c.seq, c.resource_pk).where(c.chain == chain).order_by(c.seq))
        return [(row.seq, row.resource_pk is not None) for row in rows]


def test_links_from_before_the_upgrade_verify_and_new_records_join_their_chains(
    tmp_path: Path,
) -> None:
    with fresh_database(tmp_path) as url:
        settings = make_settings(tmp_path / "vault", url)
        initialise(settings)
        runtime = open_runtime(settings)
        try:
            with runtime.db.write() as conn:
                repo = Repository(runtime, AccessContext.full())
                anna = repo.create(conn, "Patient", patient())[0].resource_id
                runtime.audit.append(conn, [read_by(anna, n=1), read_by(anna, n=2)])
            runtime.audit.settle_all()  # a downgrade needs every record settled
        finally:
            runtime.close()

        database = Database(url)
        try:
            config = alembic_config(url)
            with database.write_engine.begin() as conn:
                config.attributes["connection"] = conn
                command.downgrade(config, "0013_grant_family_index")
            upgrade(database.write_engine)
        finally:
            database.dispose()

        runtime = open_runtime(settings)
        try:
            assert _links(runtime, anna) == [(1, True), (2, True)]
            assert verify_chains(runtime) == []
            with runtime.db.write() as conn:
                runtime.audit.append(conn, [read_by(anna, n=3)])
            assert _links(runtime, anna)[-1] == (3, False)
            assert verify_chains(runtime) == []
            assert runtime.audit.settle_all() == 1
            assert verify_chains(runtime) == []
        finally:
            runtime.close()


def test_vault_audit_settle_stores_every_waiting_record(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with fresh_database(tmp_path) as url:
        settings = make_settings(tmp_path / "vault", url)
        initialise(settings)
        runtime = open_runtime(settings)
        try:
            with runtime.db.write() as conn:
                repo = Repository(runtime, AccessContext.full())
                anna = repo.create(conn, "Patient", patient())[0].resource_id
                runtime.audit.append(conn, [read_by(anna, n=n) for n in range(3)])
        finally:
            runtime.close()
        monkeypatch.setenv("VAULT_DATABASE_URL", url)

        result = CliRunner().invoke(
            cli.app, ["audit", "settle", "--data-dir", str(tmp_path / "vault")]
        )

        assert result.exit_code == 0, result.output
        assert "3 records stored as AuditEvents; none waits" in result.output
        runtime = open_runtime(settings)
        try:
            assert [settled for _, settled in _links(runtime, anna)] == [True] * 3
            assert verify_chains(runtime) == []
        finally:
            runtime.close()
