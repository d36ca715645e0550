"""Keeping ``consent_grant`` in step with the Consent resources, in the same transaction.

Called by the repository whenever a Consent version is written or deleted, so grants are
never out of date: a revocation (status inactive, a deletion) holds from the next request,
with no job or cache in between.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, delete, insert, select, tuple_

from vault.consent.compile import Grant, compile_consent
from vault.consent.models import ConsentGrant
from vault.crypto import BlindIndex
from vault.errors import Unprocessable
from vault.fhir.models import ResourceRow

__all__ = ["check_consent", "drop_grants", "replace_grants"]


def check_consent(conn: Connection, consent: dict[str, Any], *, patient_id: str) -> list[Grant]:
    """Compile, and check that the data it names belongs to this inwoner."""
    grants = compile_consent(consent, patient_id=patient_id)
    # Also check a Consent that is not (yet) active: it may become active by an update.
    named = {
        (g.data_type, g.data_id)
        for g in compile_consent({**consent, "status": "active"}, patient_id=patient_id)
        if g.data_type is not None
    }
    if named:
        rows = conn.execute(
            select(
                ResourceRow.resource_type, ResourceRow.resource_id, ResourceRow.patient_id
            ).where(tuple_(ResourceRow.resource_type, ResourceRow.resource_id).in_(sorted(named)))
        ).all()
        owners = {(r.resource_type, r.resource_id): r.patient_id for r in rows}
        for data_type, data_id in sorted(named):
            if owners.get((data_type, data_id)) != patient_id:
                raise Unprocessable(
                    f"Consent.provision.data: {data_type}/{data_id} is not part of this "
                    "inwoner's plan",
                    expression=["Consent.provision.data"],
                    code="not-supported",
                )
    return grants


def replace_grants(
    conn: Connection, *, consent_pk: int, patient_id: str, grants: list[Grant], blind: BlindIndex
) -> None:
    drop_grants(conn, consent_pk=consent_pk)
    if not grants:
        return
    conn.execute(
        insert(ConsentGrant),
        [
            {
                "consent_pk": consent_pk,
                "patient_id": patient_id,
                "effect": g.effect,
                "grantee": g.grantee,
                "action": g.action,
                "resource_type": g.resource_type,
                "data_type": g.data_type,
                "data_id": g.data_id,
                "data_meaning": g.data_meaning,
                "label_system": g.label_system,
                "label_hash": blind.token(g.label_code) if g.label_code is not None else None,
                "purpose": g.purpose,
                "valid_from": g.valid_from,
                "valid_until": g.valid_until,
            }
            for g in grants
        ],
    )


def drop_grants(conn: Connection, *, consent_pk: int) -> None:
    conn.execute(delete(ConsentGrant).where(ConsentGrant.consent_pk == consent_pk))
