"""The family plan's members: who belongs to which family compartment (docs/family.md §6).

"1 Gezin 1 Plan": a family is a FHIR ``Group`` (type ``person``, ``actual`` true) whose
``member.entity`` are the members' Patients. The Group's id names the **family
compartment**: the Group itself, the family ``CarePlan`` (``subject`` = the Group), its
shared ``Goal``\\s and its ``CareTeam`` carry it as their ``patient_id`` and are sealed under
the family's own data key (``DataKey.owner`` = the Group id).

``consent_family_member`` mirrors ``Group.member`` in the transaction of every Group write,
so the one access decision (``consent/decision.py``, ``consent/enforce.py``) reads an indexed
row, not the sealed Group:

- a member (her app, her page, someone acting for her) sees the family compartment;
- a member's Consent whose ``provision.data`` names a resource of the family compartment
  reaches that compartment (its grant rows carry the Group id as ``family_id``), while she
  is a member.

Only the operator's tools change who is a member: a partner correcting the Group (under a
member's ``correct`` grant) cannot add a Patient, which would open the family plan to that
Patient's apps. Erasing a member takes her out; the last member's erasure leaves a family
nobody can see, whose key the caller destroys (``families_left_empty``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import ColumnElement, Connection, delete, exists, insert, select

from vault.consent.models import ConsentGrant, FamilyMember
from vault.kernel.db import pairs_in
from vault.kernel.errors import Unprocessable
from vault.kernel.fhirdata import split_reference
from vault.store.models import DataKey, ResourceRow

__all__ = [
    "drop_family",
    "families_of",
    "family_consent_ids",
    "family_named",
    "is_member",
    "leave_families",
    "members_of",
    "record_family",
]

FM = FamilyMember.__table__.c
_DK = DataKey.__table__.c


def _named_members(group: Mapping[str, Any]) -> set[str]:
    """The Patients ``Group.member.entity`` names, leaving out members marked inactive."""
    found: set[str] = set()
    for member in group.get("member") or []:
        if not isinstance(member, dict) or member.get("inactive") is True:
            continue
        ref = split_reference((member.get("entity") or {}).get("reference"))
        if ref is not None and ref[0] == "Patient":
            found.add(ref[1])
    return found


def members_of(conn: Connection, family_id: str) -> set[str]:
    """The Patients that are members of ``family_id`` now."""
    return set(conn.execute(select(FM.patient_id).where(FM.family_id == family_id)).scalars())


def families_of(conn: Connection, patient_id: str) -> list[str]:
    """The families (Group ids) ``patient_id`` is a member of, in id order."""
    return sorted(
        conn.execute(select(FM.family_id).where(FM.patient_id == patient_id)).scalars().all()
    )


def family_consent_ids(conn: Connection, patient_id: str) -> set[str]:
    """The ids of ``patient_id``'s Consents that grant something of a family plan."""
    rows = conn.execute(
        select(ResourceRow.resource_id)
        .join(ConsentGrant, ConsentGrant.consent_pk == ResourceRow.pk)
        .where(ConsentGrant.patient_id == patient_id, ConsentGrant.family_id.is_not(None))
        .distinct()
    )
    return set(rows.scalars())


def _data_references(provision: Any) -> set[tuple[str, str]]:
    """Every ``data.reference`` of a provision and its nested ones."""
    found: set[tuple[str, str]] = set()
    if not isinstance(provision, dict):
        return found
    for item in provision.get("data") or []:
        reference = item.get("reference") if isinstance(item, dict) else None
        ref = split_reference(reference.get("reference") if isinstance(reference, dict) else None)
        if ref is not None:
            found.add(ref)
    for nested in provision.get("provision") or []:
        found |= _data_references(nested)
    return found


def family_named(conn: Connection, patient_id: str, consent: Mapping[str, Any]) -> str | None:
    """The family whose plan ``consent`` (one of ``patient_id``'s, in any status) grants
    something of: the first of her families that holds a resource its ``data`` names.

    Read from the Consent itself, so a proposal (which has no grant rows yet) is told apart
    from a rule about her own plan as an active one is (``family_consent_ids``)."""
    refs = _data_references(consent.get("provision"))
    if not refs:  # a rule by class: about her own plan, no query needed
        return None
    families = families_of(conn, patient_id)
    if not families:
        return None
    R = ResourceRow
    found = conn.execute(
        select(R.patient_id)
        .where(
            R.patient_id.in_(families),
            pairs_in(R.resource_type, R.resource_id, refs),
        )
        .order_by(R.patient_id)
    ).all()
    named = [row.patient_id for row in found]
    return named[0] if named else None


def record_family(
    conn: Connection, *, family_id: str, group: Mapping[str, Any], may_change: bool
) -> None:
    """Keep ``consent_family_member`` in step with a Group write, in its transaction.

    An erased Patient (her key destroyed) is never made a member again, and a Patient the
    vault holds no key for is not one either. ``may_change`` False (anyone but the
    operator's tools): the members must stay as they are.
    """
    named = _named_members(group)
    live = (
        set(
            conn.execute(
                select(_DK.owner).where(_DK.owner.in_(sorted(named)), _DK.wrapped.is_not(None))
            ).scalars()
        )
        if named
        else set()
    )
    new = named & live
    old = members_of(conn, family_id)
    if new == old:
        return
    if not may_change:
        raise Unprocessable(
            "Group.member says who sees the family plan; only the vault's operator can change it",
            expression=["Group.member"],
            code="business-rule",
        )
    conn.execute(delete(FamilyMember).where(FamilyMember.family_id == family_id))
    if new:
        conn.execute(
            insert(FamilyMember), [{"family_id": family_id, "patient_id": p} for p in sorted(new)]
        )


def drop_family(conn: Connection, *, family_id: str) -> None:
    """The Group is deleted: nobody is a member any more, so no grant reaches it."""
    conn.execute(delete(FamilyMember).where(FamilyMember.family_id == family_id))


def leave_families(conn: Connection, *, patient_id: str) -> list[str]:
    """An erased member leaves every family; returns the families left without members,
    whose data key the caller destroys (the family plan is then gone for everyone)."""
    families = families_of(conn, patient_id)
    conn.execute(delete(FamilyMember).where(FamilyMember.patient_id == patient_id))
    return [f for f in families if not members_of(conn, f)]


def is_member(family: Any, patient: Any) -> ColumnElement[bool]:
    """SQL: ``patient`` is a member of ``family`` (columns or bind parameters)."""
    return exists(
        select(FM.family_id)
        .where(FM.family_id == family, FM.patient_id == patient)
        .correlate_except(FamilyMember.__table__)
    )
