"""Migration 0008: ``consent_related`` is filled for the Consents already in force.

A vault upgraded from 0007 has ``related`` grants but no record of what they reached; the
upgrade takes the references their named resources hold at that moment, so no grant in
force loses or gains anything by the upgrade. Runs on the suite's database engine
(PostgreSQL when VAULT_DATABASE_URL says so).
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from sqlalchemy import select

from tests.conftest import initialise, make_settings
from tests.factories import careplan, consent, goal, patient
from tests.support import fresh_database
from vault.audit.runtime import open_runtime
from vault.consent.access import AccessContext
from vault.consent.models import ConsentRelated
from vault.fhir.repository import Repository
from vault.kernel.db import Database
from vault.kernel.runtime import Runtime
from vault.migrations import alembic_config, upgrade


def _reached(runtime: Runtime) -> set[tuple[str, str, str, str]]:
    c = ConsentRelated.__table__.c
    with runtime.db.read() as conn:
        rows = conn.execute(select(c.data_type, c.data_id, c.target_type, c.target_id))
        return {(r.data_type, r.data_id, r.target_type, r.target_id) for r in rows}


def test_the_upgrade_records_what_related_grants_in_force_reach(tmp_path: Path) -> None:
    with fresh_database(tmp_path) as url:
        settings = make_settings(tmp_path / "vault", url)
        initialise(settings)
        runtime = open_runtime(settings)
        try:
            with runtime.db.write() as conn:
                repo = Repository(runtime, AccessContext.full())

                def create(body: dict[str, object]) -> str:
                    return repo.create(conn, str(body["resourceType"]), body)[0].resource_id

                inwoner = create(patient())
                target = create(goal(patient_id=inwoner))
                plan = create(careplan(patient_id=inwoner, goals=[target]))
                body = consent(patient_id=inwoner, actors=["Organization/mee"])
                body["provision"]["data"] = [
                    {"meaning": "related", "reference": {"reference": f"CarePlan/{plan}"}}
                ]
                create(body)
            written = _reached(runtime)
        finally:
            runtime.close()
        assert ("CarePlan", plan, "Goal", target) in written

        database = Database(url)
        try:
            config = alembic_config(url)
            with database.write_engine.begin() as conn:
                config.attributes["connection"] = conn
                command.downgrade(config, "0007")
            upgrade(database.write_engine)
        finally:
            database.dispose()

        runtime = open_runtime(settings)
        try:
            assert _reached(runtime) == written
        finally:
            runtime.close()
