"""The outbox: a change is recorded for notification in the transaction that makes it.

Called by the repository for every create, update and delete, and by the consent engine
when a Consent's grants change or an inwoner's vault is erased. Nothing here decides who
hears about it: that is the delivery worker's job (``notify/worker.py``), which asks each
subscriber's own access decision.
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import Connection, insert, select

from vault.consent.models import ConsentGrant
from vault.fhir.models import ResourceRow
from vault.notify.models import NotifyEvent
from vault.runtime import now_micros

__all__ = ["record_change", "record_erasure", "record_grant_change"]

_NOT_NOTIFIED = frozenset({"AuditEvent", "Provenance"})  # the vault's own records


def record_change(
    conn: Connection,
    *,
    resource_type: str,
    resource_id: str,
    patient_id: str | None,
    action: str,
) -> None:
    if resource_type in _NOT_NOTIFIED:
        return
    conn.execute(
        insert(NotifyEvent).values(
            kind="change",
            patient_id=patient_id,
            resource_type=resource_type,
            resource_id=resource_id,
            action=action,
            grantee=None,
            created_at=now_micros(),
        )
    )


def record_grant_change(
    conn: Connection,
    *,
    consent_pk: int,
    patient_id: str,
    ended: Iterable[str],
    changed: Iterable[str],
) -> None:
    """Grantees whose grant by this Consent ended, or changed while some of it remains."""
    rows = [("access-ended", g) for g in sorted(set(ended))]
    rows += [("access-changed", g) for g in sorted(set(changed))]
    if not rows:
        return
    consent_id = conn.scalar(select(ResourceRow.resource_id).where(ResourceRow.pk == consent_pk))
    if consent_id is None:
        return
    now = now_micros()
    conn.execute(
        insert(NotifyEvent),
        [
            {
                "kind": kind,
                "patient_id": patient_id,
                "resource_type": "Consent",
                "resource_id": consent_id,
                "action": "update",
                "grantee": grantee,
                "created_at": now,
            }
            for kind, grantee in rows
        ],
    )


def record_erasure(conn: Connection, *, patient_id: str) -> None:
    """Every grantee of the inwoner's Consents loses access; call before grants go."""
    pairs = conn.execute(
        select(ConsentGrant.consent_pk, ConsentGrant.grantee)
        .where(
            ConsentGrant.patient_id == patient_id,
            ConsentGrant.effect == "permit",
            ConsentGrant.grantee.is_not(None),
        )
        .distinct()
    ).all()
    by_consent: dict[int, set[str]] = {}
    for consent_pk, grantee in pairs:
        by_consent.setdefault(consent_pk, set()).add(str(grantee))
    for consent_pk, grantees in sorted(by_consent.items()):
        record_grant_change(
            conn, consent_pk=consent_pk, patient_id=patient_id, ended=grantees, changed=()
        )
