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

A child's consent by age (issue 17, docs/family.md) is decided here too, from the child's
``Patient.birthDate`` at the instant of the request, in Europe/Amsterdam:

    under 12   a parent with gezag signs the child's Consents; either parent revokes
    12 to 15   a Consent is active only with the child's and a parent's signature; either
               revokes; one signature alone is ``proposed`` and gives nothing
    from 16    the child alone; a parent's "ouder" role no longer lets them act for the
               child: they see what the child grants their RelatedPerson, like anyone

A Consent's signatures are its ``performer`` (none: the inwoner herself). A Consent that
only a parent signed before the child turned 12 holds until the 12th birthday: its grant
rows end there (``valid_until``), compared with the request's instant like any period.
"""

from __future__ import annotations

import calendar
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Literal
from zoneinfo import ZoneInfo

from sqlalchemy import Connection, delete, insert, select, update

from vault.consent.models import BirthDate, NetworkLink, Representation
from vault.kernel.errors import Unprocessable
from vault.kernel.fhirdata import split_reference
from vault.store.models import ResourceRow

__all__ = [
    "AMSTERDAM",
    "COURT_ROLES",
    "PARENT",
    "Role",
    "Stage",
    "Standing",
    "birth_date_of",
    "birthday",
    "child_consent_window",
    "current_roles",
    "end_roles",
    "person_is_current",
    "record_birth_date",
    "role_at",
    "role_history",
    "set_role",
    "stage",
    "standing",
]

# Roles the inwoner cannot end herself: a court decided, or the law (gezag over a minor).
COURT_ROLES = frozenset({"mentor", "curator", "ouder"})
PARENT = "ouder"  # a parent with gezag (ouder met gezag)
AMSTERDAM = ZoneInfo("Europe/Amsterdam")
_FULL_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")

# parents: under 12; together: 12 to 15; own: 16 and 17; adult: 18, or no birth date known.
Stage = Literal["parents", "together", "own", "adult"]


def birthday(birth: date, years: int) -> int:
    """The instant (microseconds) the inwoner turns ``years``: 00:00 in Europe/Amsterdam on
    the anniversary. Born on 29 February: 1 March in a year without one (docs/family.md)."""
    year = birth.year + years
    if (birth.month, birth.day) == (2, 29) and not calendar.isleap(year):
        day = date(year, 3, 1)
    else:
        day = birth.replace(year=year)
    local = datetime(day.year, day.month, day.day, tzinfo=AMSTERDAM)
    return calendar.timegm(local.utctimetuple()) * 1_000_000


def stage(birth: date | None, now: int) -> Stage:
    """Who decides about the inwoner's Consents at the instant ``now``."""
    if birth is None:
        return "adult"
    if now < birthday(birth, 12):
        return "parents"
    if now < birthday(birth, 16):
        return "together"
    if now < birthday(birth, 18):
        return "own"
    return "adult"


def birth_date_of(conn: Connection, patient_id: str) -> date | None:
    text = conn.execute(
        select(BirthDate.birth_date).where(BirthDate.patient_id == patient_id)
    ).scalar()
    return date.fromisoformat(text) if text else None


def record_birth_date(
    conn: Connection, *, patient_id: str, patient: Mapping[str, Any], may_change: bool
) -> None:
    """Keep ``consent_birth_date`` in step with a Patient write, in its transaction.

    The birth date decides who may act for a child, so once known only the operator may
    change or remove it (``may_change``): not the child's app (turning 16 early), not a
    parent, not a partner correcting the Patient.
    """
    given = patient.get("birthDate")
    new = given if isinstance(given, str) and _FULL_DATE.match(given) else None
    old = conn.execute(
        select(BirthDate.birth_date).where(BirthDate.patient_id == patient_id)
    ).scalar()
    if old == new:
        return
    if old is not None and not may_change:
        raise Unprocessable(
            "Patient.birthDate decides who may decide for a child; only the vault's "
            "operator can change it",
            expression=["Patient.birthDate"],
            code="business-rule",
        )
    conn.execute(delete(BirthDate).where(BirthDate.patient_id == patient_id))
    if new is not None:
        conn.execute(insert(BirthDate).values(patient_id=patient_id, birth_date=new))


def _signers(consent: Mapping[str, Any], patient_id: str) -> frozenset[str]:
    performers = consent.get("performer") or []
    if not performers:
        return frozenset({f"Patient/{patient_id}"})  # the inwoner herself
    found = set()
    for index, item in enumerate(performers):
        ref = split_reference((item or {}).get("reference"))
        if ref is None:
            raise _refuse("Consent.performer must be references", f"Consent.performer[{index}]")
        found.add(f"{ref[0]}/{ref[1]}")
    return frozenset(found)


def _refuse(message: str, where: str) -> Unprocessable:
    return Unprocessable(message, expression=[where], code="business-rule")


# What may differ between two versions a signature carries over: who signed, the status,
# and what the server or a narrative writes.
_NOT_AGREED_TO = frozenset({"performer", "status", "meta", "text", "id"})


def _same_agreement(a: Mapping[str, Any], b: Mapping[str, Any]) -> bool:
    return {k: v for k, v in a.items() if k not in _NOT_AGREED_TO} == {
        k: v for k, v in b.items() if k not in _NOT_AGREED_TO
    }


def _check_signatures(
    consent: Mapping[str, Any],
    *,
    child: str,
    parents: set[str],
    when: Stage,
    writer: str | None,
    previous: Mapping[str, Any] | None,
) -> frozenset[str]:
    """Who signed ``consent``, once it is clear they may have: raises Unprocessable."""
    patient_id = child.split("/", 1)[1]
    signed = _signers(consent, patient_id)
    if signed - parents - {child}:
        raise _refuse(
            "A child's Consent is signed only by the child and a parent with gezag",
            "Consent.performer",
        )
    if writer is not None:
        before = _signers(previous, patient_id) if previous is not None else frozenset()
        carried = (
            previous is not None
            and previous.get("status") in ("proposed", "active")
            and _same_agreement(previous, consent)
        )
        others = signed - {writer}
        if others and not (carried and others <= before):
            raise _refuse(
                "Only the one who writes a child's Consent can add their own agreement; "
                "a changed Consent needs everyone's agreement again",
                "Consent.performer",
            )
    if when == "parents" and child in signed and consent.get("performer"):
        raise _refuse(
            "Under 12 a child's parents with gezag decide; the child signs from 12",
            "Consent.performer",
        )
    return signed


def child_consent_window(
    conn: Connection,
    consent: Mapping[str, Any],
    *,
    patient_id: str,
    now: int,
    writer: str | None,
    previous: Mapping[str, Any] | None,
) -> int | None:
    """Check a Consent of a child before it is written; return the instant its grants end.

    ``writer`` is who writes it: ``Patient/<id>`` (the child, her app), ``RelatedPerson/<id>``
    (a parent on the page), None for the operator's tools, whose signatures are taken as
    given. Raises Unprocessable when the signatures do not fit the child's age now.
    """
    birth = birth_date_of(conn, patient_id)
    when = stage(birth, now)
    if birth is None or when == "adult":
        return None
    child = f"Patient/{patient_id}"
    roles = current_roles(conn, patient_id=patient_id)
    parents = {ref for ref, basis in roles.items() if basis == PARENT}
    signed = _check_signatures(
        consent, child=child, parents=parents, when=when, writer=writer, previous=previous
    )
    if consent.get("status") != "active":
        return None
    has_parent, has_child = bool(signed & parents), child in signed
    if when == "parents" and not has_parent:
        raise _refuse(
            "Under 12 a parent with gezag must agree: write the Consent as proposed",
            "Consent.status",
        )
    if when == "together" and not (has_parent and has_child):
        raise _refuse(
            "From 12 to 15 the child and a parent with gezag both agree: write the Consent "
            "as proposed until both have",
            "Consent.status",
        )
    if when == "own" and not has_child:
        raise _refuse("From 16 the child decides alone: the child must agree", "Consent.status")
    # Signed by a parent alone: only possible under 12, and it holds until the 12th birthday.
    return birthday(birth, 12) if has_parent and not has_child else None


@dataclass(frozen=True, slots=True)
class Standing:
    """A network account's place right now: whose network, which person, which role."""

    patient_id: str
    related_person_id: str
    legal_basis: str | None
    # A parent's "ouder" role that no longer lets them act: the child is 16 or older.
    lapsed_basis: str | None = None


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


def standing(conn: Connection, *, account_id: str, now: int) -> Standing | None:
    """The account's link to an inwoner at ``now``, or None when there is none any more.

    Checked on every request: no link, or a RelatedPerson that was deleted, means no access
    at all (not even to what a Consent still grants that person). A parent with gezag acts
    for the child until the child's 16th birthday (00:00 Europe/Amsterdam); from then on
    the parent is someone of the child's network like anyone else.
    """
    link = conn.execute(select(NetworkLink).where(NetworkLink.account_id == account_id)).first()
    if link is None or not person_is_current(
        conn, patient_id=link.patient_id, related_person_id=link.related_person_id
    ):
        return None
    basis = _open_role(conn, patient_id=link.patient_id, related_person_id=link.related_person_id)
    if basis == PARENT:
        birth = birth_date_of(conn, link.patient_id)
        if birth is not None and stage(birth, now) in ("own", "adult"):
            return Standing(link.patient_id, link.related_person_id, None, lapsed_basis=basis)
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
