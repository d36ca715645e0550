"""Keeping ``consent_grant`` in step with the Consent resources, in the same transaction.

Called by the repository whenever a Consent version is written or deleted, so grants are
never out of date: a revocation (status inactive, a deletion) holds from the next request,
with no job or cache in between.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from sqlalchemy import Connection, delete, insert, select

from vault.consent.compile import Grant, compile_consent
from vault.consent.family import families_of, leave_families
from vault.consent.models import BirthDate, ConsentGrant, ConsentRelated, Representation
from vault.consent.representation import child_consent_window
from vault.kernel.crypto import BlindIndex
from vault.kernel.db import pairs_in
from vault.kernel.errors import Unprocessable
from vault.store.models import ResourceRow, SearchReference
from vault.store.outbox import record_grant_change

__all__ = ["check_consent", "drop_grants", "erase_grants", "record_erasure", "replace_grants"]


def check_consent(
    conn: Connection,
    consent: dict[str, Any],
    *,
    patient_id: str,
    now: int,
    writer: str | None,
    previous: dict[str, Any] | None,
) -> list[Grant]:
    """Compile, check that the data it names belongs to this inwoner, and apply the age
    rules of a child's Consent (``consent/representation.py``): who signed it (``writer``
    adds only their own signature to ``previous``'s) and, signed by a parent alone, its
    grants ending at the child's 12th birthday."""
    grants = compile_consent(consent, patient_id=patient_id)
    ends = child_consent_window(
        conn, consent, patient_id=patient_id, now=now, writer=writer, previous=previous
    )
    if ends is not None:
        grants = [
            replace(g, valid_until=ends if g.valid_until is None else min(g.valid_until, ends))
            if g.effect == "permit"
            else g
            for g in grants
        ]
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
            ).where(pairs_in(ResourceRow.resource_type, ResourceRow.resource_id, named))
        ).all()
        owners = {(r.resource_type, r.resource_id): r.patient_id for r in rows}
        # Her own compartment, or a family compartment she is a member of (docs/family.md
        # section 6): Consent.patient must be a Patient, so a family has no Consents of its
        # own, and each member grants the family plan in her own Consents.
        allowed = {patient_id, *families_of(conn, patient_id)}
        for data_type, data_id in sorted(named):
            if owners.get((data_type, data_id)) not in allowed:
                raise Unprocessable(
                    f"Consent.provision.data: {data_type}/{data_id} is not part of this "
                    "inwoner's plan",
                    expression=["Consent.provision.data"],
                    code="not-supported",
                )
        grants = [
            replace(g, family_id=owners[(g.data_type, g.data_id)])
            if g.data_type is not None
            and g.data_id is not None
            and owners[(g.data_type, g.data_id)] != patient_id
            else g
            for g in grants
        ]
    return grants


def replace_grants(
    conn: Connection, *, consent_pk: int, patient_id: str, grants: list[Grant], blind: BlindIndex
) -> None:
    before = _grant_rows(conn, consent_pk)
    conn.execute(delete(ConsentGrant).where(ConsentGrant.consent_pk == consent_pk))
    conn.execute(delete(ConsentRelated).where(ConsentRelated.consent_pk == consent_pk))
    _notify_grantees(conn, consent_pk, patient_id, before, {_shape(g) for g in grants})
    if not grants:
        return
    _fix_related(conn, consent_pk=consent_pk, patient_id=patient_id, grants=grants)
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
                "family_id": g.family_id,
            }
            for g in grants
        ],
    )


def _fix_related(
    conn: Connection, *, consent_pk: int, patient_id: str, grants: list[Grant]
) -> None:
    """Record what each ``related`` data grant reaches now, as the inwoner sees it while she
    writes the Consent. Later writes of the named resource add nothing to it (a partner
    with ``correct`` would otherwise widen its own grant by adding references); see
    docs/partner-writes.md."""
    named = sorted(
        {
            (g.data_type, g.data_id)
            for g in grants
            if g.data_meaning == "related" and g.data_type is not None and g.data_id is not None
        }
    )
    if not named:
        return
    r, sr = ResourceRow.__table__.c, SearchReference.__table__.c
    targets = conn.execute(
        select(r.resource_type, r.resource_id, sr.target_type, sr.target_id)
        .distinct()
        .select_from(ResourceRow.__table__.join(SearchReference.__table__, sr.resource_pk == r.pk))
        .where(
            pairs_in(r.resource_type, r.resource_id, named),
            r.patient_id.in_(sorted({patient_id, *(g.family_id for g in grants if g.family_id)})),
            r.deleted.is_(False),
        )
    ).all()
    if targets:
        conn.execute(
            insert(ConsentRelated),
            [
                {
                    "consent_pk": consent_pk,
                    "patient_id": patient_id,
                    "data_type": t.resource_type,
                    "data_id": t.resource_id,
                    "target_type": t.target_type,
                    "target_id": t.target_id,
                }
                for t in targets
            ],
        )


def drop_grants(conn: Connection, *, consent_pk: int) -> None:
    before = _grant_rows(conn, consent_pk)
    conn.execute(delete(ConsentGrant).where(ConsentGrant.consent_pk == consent_pk))
    conn.execute(delete(ConsentRelated).where(ConsentRelated.consent_pk == consent_pk))
    if before:
        _notify_grantees(conn, consent_pk, before[0][0], before, set())


# -- change notifications: grantees hear that their grant changed or ended ---------------

_Shape = tuple[object, ...]


def _shape(g: Grant) -> _Shape:
    # The label is compared by system only: stored rows hold its keyed hash, not the code.
    return (
        g.effect,
        g.grantee,
        g.action,
        g.resource_type,
        g.data_type,
        g.data_id,
        g.data_meaning,
        g.label_system,
        g.purpose,
        g.valid_from,
        g.valid_until,
        g.family_id,
    )


def _grant_rows(conn: Connection, consent_pk: int) -> list[tuple[str, _Shape]]:
    c = ConsentGrant.__table__.c
    rows = conn.execute(
        select(
            c.patient_id,
            c.effect,
            c.grantee,
            c.action,
            c.resource_type,
            c.data_type,
            c.data_id,
            c.data_meaning,
            c.label_system,
            c.purpose,
            c.valid_from,
            c.valid_until,
            c.family_id,
        ).where(c.consent_pk == consent_pk)
    ).all()
    return [(row[0], tuple(row[1:])) for row in rows]


def _notify_grantees(
    conn: Connection,
    consent_pk: int,
    patient_id: str,
    before: list[tuple[str, _Shape]],
    after: set[_Shape],
) -> None:
    old = {shape for _, shape in before}
    if old == after:
        return
    had = {str(s[1]) for s in old if s[0] == "permit" and s[1] is not None}
    has = {str(s[1]) for s in after if s[0] == "permit" and s[1] is not None}
    record_grant_change(
        conn, consent_pk=consent_pk, patient_id=patient_id, ended=had - has, changed=has
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


def erase_grants(conn: Connection, *, patient_id: str) -> list[str]:
    """The erased inwoner's grants and representatives go; partners hear their access ended.
    She leaves her families; returns those left without members, whose data key the caller
    destroys (docs/family.md section 6)."""
    record_erasure(conn, patient_id=patient_id)
    conn.execute(delete(ConsentGrant).where(ConsentGrant.patient_id == patient_id))
    conn.execute(delete(Representation).where(Representation.patient_id == patient_id))
    conn.execute(delete(BirthDate).where(BirthDate.patient_id == patient_id))
    return leave_families(conn, patient_id=patient_id)
