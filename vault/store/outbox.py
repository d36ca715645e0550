"""The outbox: a change is recorded for notification in the transaction that makes it.

``notify_event`` has a row per change, written in the transaction of the change itself, so
a committed change is never lost before it is fanned out. Every write of the store records
here (the repository for each create, update and delete; the consent engine when a
Consent's grants change or an inwoner's vault is erased). Nothing here decides who hears
about it: that is the delivery worker's job (``vault/notify/worker.py``), which asks each
subscriber's own access decision.
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import Connection, String, insert, select
from sqlalchemy.orm import Mapped, mapped_column

from vault.kernel.db import Base, BigIntPk, Micros
from vault.kernel.runtime import now_micros
from vault.store.models import ResourceRow

__all__ = ["NotifyEvent", "record_change", "record_grant_change"]


class NotifyEvent(Base):
    __tablename__ = "notify_event"
    id: Mapped[int] = mapped_column(BigIntPk, primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(String(16))  # change | access-ended | access-changed
    patient_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    resource_type: Mapped[str] = mapped_column(String(40))
    resource_id: Mapped[str] = mapped_column(String(64))
    action: Mapped[str] = mapped_column(String(8))  # create | update | delete
    grantee: Mapped[str | None] = mapped_column(String(110), nullable=True)
    created_at: Mapped[Micros]


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
