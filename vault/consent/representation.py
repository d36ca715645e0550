"""Who may act for the inwoner: the one place that right comes from.

Design section 2: someone of the network may act for the inwoner as a representative
(wettelijk vertegenwoordiger or machtiging, design section 7). That right is a row of
``web_representation`` with no end; the consent page reads it on every request
(``oauth/sessions.load_visitor``), so ending it ends live sessions at once. Someone of the
network counts only while their RelatedPerson exists: a DELETE over the FHIR API (by the
inwoner's app) or removal on the page ends their access on their very next request.

Roles the inwoner can end herself (a machtiging) end with "Stop met alles delen"; roles
she cannot (a mentor or curator appointed by a court, a parent with gezag of a minor)
stay, and the page says why. Rows are never rewritten, so the access log can tell what
someone's role was when something happened (issue 18, "Truth").
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from sqlalchemy import Connection, insert, select, update

from vault.consent.models import NetworkLink, Representation
from vault.store.models import ResourceRow

__all__ = [
    "COURT_ROLES",
    "Role",
    "Standing",
    "current_roles",
    "end_roles",
    "person_is_current",
    "role_at",
    "role_history",
    "set_role",
    "standing",
]

# Roles the inwoner cannot end herself: a court decided, or the law (gezag over a minor).
COURT_ROLES = frozenset({"mentor", "curator", "ouder"})


@dataclass(frozen=True, slots=True)
class Standing:
    """A network account's place right now: whose network, which person, which role."""

    patient_id: str
    related_person_id: str
    legal_basis: str | None


@dataclass(frozen=True, slots=True)
class Role:
    related_person: str  # "RelatedPerson/<id>"
    legal_basis: str
    started_at: int
    ended_at: int | None


def person_is_current(conn: Connection, *, patient_id: str, related_person_id: str) -> bool:
    """The RelatedPerson exists, in this inwoner's compartment, and is not deleted."""
    row = conn.execute(
        select(ResourceRow.deleted).where(
            ResourceRow.resource_type == "RelatedPerson",
            ResourceRow.resource_id == related_person_id,
            ResourceRow.patient_id == patient_id,
        )
    ).first()
    return row is not None and not row.deleted


def _open_role(conn: Connection, *, patient_id: str, related_person_id: str) -> str | None:
    return conn.execute(
        select(Representation.legal_basis)
        .where(
            Representation.patient_id == patient_id,
            Representation.related_person_id == related_person_id,
            Representation.ended_at.is_(None),
        )
        .order_by(Representation.started_at.desc())
    ).scalar()


def standing(conn: Connection, *, account_id: str) -> Standing | None:
    """The account's link to an inwoner, or None when there is none any more.

    Checked on every request: no link, or a RelatedPerson that was deleted, means no access
    at all (not even to what a Consent still grants that person).
    """
    link = conn.execute(select(NetworkLink).where(NetworkLink.account_id == account_id)).first()
    if link is None or not person_is_current(
        conn, patient_id=link.patient_id, related_person_id=link.related_person_id
    ):
        return None
    basis = _open_role(conn, patient_id=link.patient_id, related_person_id=link.related_person_id)
    return Standing(link.patient_id, link.related_person_id, basis)


def set_role(
    conn: Connection, *, patient_id: str, related_person_id: str, legal_basis: str | None, now: int
) -> None:
    """Start (or change, or end with None) someone's role from ``now`` on."""
    if _open_role(conn, patient_id=patient_id, related_person_id=related_person_id) == (
        legal_basis
    ):
        return
    end_roles(conn, patient_id=patient_id, related_person_id=related_person_id, now=now)
    if legal_basis is not None:
        conn.execute(
            insert(Representation).values(
                patient_id=patient_id,
                related_person_id=related_person_id,
                legal_basis=legal_basis,
                started_at=now,
                ended_at=None,
            )
        )


def end_roles(
    conn: Connection,
    *,
    patient_id: str,
    now: int,
    related_person_id: str | None = None,
    voluntary_only: bool = False,
) -> None:
    """End roles at ``now``: one person's, or all (only those the inwoner may end)."""
    query = update(Representation).where(
        Representation.patient_id == patient_id, Representation.ended_at.is_(None)
    )
    if related_person_id is not None:
        query = query.where(Representation.related_person_id == related_person_id)
    if voluntary_only:
        query = query.where(Representation.legal_basis.not_in(sorted(COURT_ROLES)))
    conn.execute(query.values(ended_at=now))


def current_roles(conn: Connection, *, patient_id: str) -> dict[str, str]:
    """``RelatedPerson/<id>`` -> legal basis, for every role that holds now."""
    rows = conn.execute(
        select(Representation.related_person_id, Representation.legal_basis).where(
            Representation.patient_id == patient_id, Representation.ended_at.is_(None)
        )
    )
    return {f"RelatedPerson/{row.related_person_id}": row.legal_basis for row in rows}


def role_history(conn: Connection, *, patient_id: str) -> dict[str, list[Role]]:
    """Every role the inwoner's network ever had, per person."""
    found: dict[str, list[Role]] = {}
    for row in conn.execute(select(Representation).where(Representation.patient_id == patient_id)):
        ref = f"RelatedPerson/{row.related_person_id}"
        found.setdefault(ref, []).append(Role(ref, row.legal_basis, row.started_at, row.ended_at))
    return found


def role_at(history: Mapping[str, Sequence[Role]], person: str, when: int) -> str | None:
    """The role ``person`` had at the instant ``when`` (microseconds), if any."""
    # Log instants are kept to the millisecond (format_instant): compare at that grain.
    moment = when // 1000
    for role in history.get(person, ()):
        ended = role.ended_at
        if role.started_at // 1000 <= moment and (ended is None or moment < ended // 1000):
            return role.legal_basis
    return None
