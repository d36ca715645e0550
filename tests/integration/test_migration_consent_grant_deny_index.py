"""Migration 0018: the deny check's index holds ``effect`` as well as ``consent_pk``.

A vault whose Consents hold a deny goes down to 0017 and up again; the index follows each
step, and the partner's read is decided the same at every step: the permitted Goal is read,
the denied one is not found. Runs on the suite's database engine (PostgreSQL when
VAULT_DATABASE_URL says so).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import inspect

from tests.conftest import initialise, make_settings
from tests.factories import goal, patient
from tests.integration.consent.conftest import grant
from tests.integration.test_migration_audit_event_single_values import _migrate
from tests.support import fresh_database, organization_context
from vault.audit.runtime import open_runtime
from vault.consent.access import AccessContext
from vault.fhir.repository import Repository
from vault.kernel.db import Database
from vault.kernel.errors import NotFound


def _index_columns(url: str) -> list[str | None]:
    database = Database(url)
    try:
        found = inspect(database.write_engine).get_indexes("consent_grant")
    finally:
        database.dispose()
    (index,) = [i for i in found if i["name"] == "ix_consent_grant_consent"]
    return list(index["column_names"])


def test_the_deny_index_follows_the_migration_and_the_decision_stays(tmp_path: Path) -> None:
    with fresh_database(tmp_path) as url:
        settings = make_settings(tmp_path / "vault", url)
        initialise(settings)
        runtime = open_runtime(settings)
        org = "Organization/mee"
        try:
            operator = Repository(runtime, AccessContext.full("test"))
            with runtime.db.write() as conn:
                inwoner = operator.create(conn, "Patient", patient())[0].resource_id
                seen = operator.create(conn, "Goal", goal(patient_id=inwoner))[0].resource_id
                hidden = operator.create(conn, "Goal", goal(patient_id=inwoner))[0].resource_id
                named = {"meaning": "instance", "reference": {"reference": f"Goal/{hidden}"}}
                deny = {"data": [named]}
                body = grant(inwoner, org, classes=("Goal",), denies=[deny])
                operator.create(conn, "Consent", body)
        finally:
            runtime.close()

        def decided() -> None:
            runtime = open_runtime(settings)
            try:
                partner = Repository(runtime, organization_context(org))
                with runtime.db.read() as conn:
                    assert partner.read(conn, "Goal", seen).resource_id == seen
                    with pytest.raises(NotFound):
                        partner.read(conn, "Goal", hidden)
            finally:
                runtime.close()

        assert _index_columns(url) == ["consent_pk", "effect"]
        decided()
        _migrate(url, "0017_audit_link_search")
        assert _index_columns(url) == ["consent_pk"]
        decided()
        _migrate(url, "head")
        assert _index_columns(url) == ["consent_pk", "effect"]
        decided()
