"""Mijn gegevens: everything as one download, and erasure by crypto-shredding."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import Connection, delete

from vault.consent.service import erase_grants
from vault.fhir.repository import Repository
from vault.kernel.fhirdata import format_instant
from vault.kernel.runtime import now_micros
from vault.oauth.apps import end_every_account
from vault.page.data import (
    COMPARTMENT_TYPES,
    compartment_search,
)
from vault.page.models import Invitation
from vault.store.keys import destroy_data_key


def export_bundle(repo: Repository, conn: Connection, *, patient_id: str) -> dict[str, Any]:
    """Everything of the inwoner's compartment as a FHIR collection Bundle."""
    entries = []
    for resource_type in COMPARTMENT_TYPES:
        for resource in compartment_search(repo, conn, resource_type, patient_id):
            entries.append(
                {"fullUrl": f"urn:uuid:{uuid.uuid4()}", "resource": resource}
                if not resource.get("id")
                else {"fullUrl": f"{resource_type}/{resource['id']}", "resource": resource}
            )
    return {
        "resourceType": "Bundle",
        "type": "collection",
        "timestamp": format_instant(now_micros()),
        "total": len(entries),
        "entry": entries,
    }


def erase_vault(conn: Connection, *, patient_id: str) -> None:
    """Crypto-shred the inwoner: the data key goes, and with it every way in.

    Each layer ends its own part, all in the caller's one transaction, so every partner and
    app loses access at once: the store destroys the data key, the consent engine drops the
    grants and roles (and tells partners), the authorization server ends tokens, accounts
    and sessions, and the page drops open invitations.
    """
    now = now_micros()
    destroy_data_key(conn, owner=patient_id, now=now)
    # The family compartments she was the last member of go with her (docs/family.md).
    for family_id in erase_grants(conn, patient_id=patient_id):
        destroy_data_key(conn, owner=family_id, now=now)
    end_every_account(conn, patient_id=patient_id)
    conn.execute(delete(Invitation).where(Invitation.patient_id == patient_id))
