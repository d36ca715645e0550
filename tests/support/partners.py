"""Helpers for tests where a partner system reads what an inwoner shared with it."""

from __future__ import annotations

from sqlalchemy import select

from adapters.sink import SinkAdapter, records
from tests.factories import consent
from vault.testing import RegisteredClient, ThrowawayVault

__all__ = ["held", "share"]


def share(vault: ThrowawayVault, inwoner: str, partner: RegisteredClient, *classes: str) -> str:
    """The inwoner's Consent for ``partner`` on ``classes``; returns the Consent id."""
    body = consent(patient_id=inwoner, actors=[partner.organization_ref], classes=classes)
    return str(vault.write(body)["id"])


def held(sink: SinkAdapter) -> dict[str, str | None]:
    """What the partner's sink database holds: ``Type/id`` -> title."""
    with sink.engine.connect() as conn:
        rows = conn.execute(select(records.c.resource_type, records.c.resource_id, records.c.title))
        return {f"{r.resource_type}/{r.resource_id}": r.title for r in rows}
