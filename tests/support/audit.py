"""What the access log's tests share: a vault of their own, an inwoner, a partner's read."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.conftest import initialise, make_settings
from tests.factories import patient
from tests.support import fresh_database
from vault.audit.log import AuditRecord
from vault.audit.runtime import open_runtime
from vault.consent.access import AccessContext
from vault.fhir.repository import Repository
from vault.kernel.runtime import Runtime, now_micros


@contextmanager
def own_vault(directory: Path) -> Iterator[Runtime]:
    """A fresh database and vault in ``directory``: a test module that checks every chain
    (``verify_chains``) or erases inwoners must not share the suite's."""
    with fresh_database(directory) as url:
        settings = make_settings(directory / "vault", url)
        initialise(settings)
        runtime = open_runtime(settings)
        try:
            yield runtime
        finally:
            runtime.close()


def new_inwoner(runtime: Runtime) -> str:
    with runtime.db.write() as conn:
        stored, _ = Repository(runtime, AccessContext.full()).create(conn, "Patient", patient())
    return stored.resource_id


def read_by(patient_id: str | None, *, n: int) -> AuditRecord:
    """A partner's read; ``n`` (the Goal it read) tells the records apart."""
    return AuditRecord(
        patient_id=patient_id,
        interaction="read",
        permitted=True,
        client_id="partner-client",
        organization="Organization/partner",
        account_id=None,
        entities=[f"Goal/goal-{n}"],
        purposes=("TREAT",),
        recorded=now_micros(),
    )
