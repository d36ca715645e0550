"""A child's vault on the page: who signs, what waits for whose "ja", and what changes when.

The rules themselves are the consent engine's (``consent/representation.py``,
docs/family.md); the page asks them at every request and writes what they allow:

    under 12   a parent with gezag shares for the child: the Consent is active at once,
               signed by that parent (``performer``)
    12 to 15   whoever shares (the child or a parent) writes a proposal (status
               ``proposed``) with their own signature; the other says "ja" (their signature
               is added, the Consent becomes active) or "nee" (``rejected``); either stops
    from 16    the child alone, as any inwoner

Nothing here commits: the route's transaction holds it all.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import Connection

from vault.consent.compile import compile_consent
from vault.consent.family import family_named
from vault.consent.representation import AMSTERDAM, Stage, birth_date_of, birthday, stage
from vault.fhir.repository import Repository
from vault.kernel.errors import FhirError
from vault.oauth.sessions import Visitor
from vault.page.data import compartment_search, name_of, version_of, without_meta
from vault.page.sharing_data import revoke_updates
from vault.page.words import Summary, summarize

__all__ = [
    "AgeNotice",
    "Proposal",
    "age_notice",
    "agree_updates",
    "home_parts",
    "proposals",
    "refuse_update",
    "signer",
    "stage_of",
]

Update = tuple[str, dict[str, Any], str | None]


def signer(visitor: Visitor) -> str:
    """Whose signature a Consent the visitor writes carries (``Consent.performer``)."""
    return visitor.related_person or f"Patient/{visitor.patient_id}"


def stage_of(conn: Connection, patient_id: str, now: int) -> Stage:
    return stage(birth_date_of(conn, patient_id), now)


def _local_day(micros: int) -> date:
    return datetime.fromtimestamp(micros / 1_000_000, AMSTERDAM).date()


@dataclass(frozen=True, slots=True)
class AgeNotice:
    """What the page tells a child and their parents about who decides, and from when."""

    stage: Stage
    is_child: bool  # the visitor is the child; otherwise a parent
    child_name: str
    twelve: date  # the birthdays, as days of the calendar in Amsterdam
    sixteen: date


def age_notice(repo: Repository, conn: Connection, visitor: Visitor, now: int) -> AgeNotice | None:
    """For the child, for a parent with gezag, and for a parent whose role lapsed at 16;
    None for anyone else and for a vault without a birth date or of an adult. ``repo`` is
    the visitor's own, without access-log entries (the name is the page's heading)."""
    birth = birth_date_of(conn, visitor.patient_id)
    if birth is None:
        return None
    when = stage(birth, now)
    is_child = visitor.related_person is None
    parent = visitor.legal_basis == "ouder" or visitor.lapsed_basis == "ouder"
    if when == "adult" or not (is_child or parent):
        return None
    # The first name, as a family speaks of its child ("Vanaf de 16e verjaardag van Daan"),
    # read with the visitor's own access: a parent whose role lapsed at 16 sees the child's
    # name only if she shares it, and reads "je kind" otherwise.
    name = ""
    if not is_child:
        ref = f"Patient/{visitor.patient_id}"
        name = name_of(repo, conn, ref).split()[0] if repo_sees(repo, conn, ref) else ""
    return AgeNotice(
        when,
        is_child,
        name,
        _local_day(birthday(birth, 12)),
        _local_day(birthday(birth, 16)),
    )


def repo_sees(repo: Repository, conn: Connection, reference: str) -> bool:
    kind, _, ident = reference.partition("/")
    try:
        repo.read(conn, kind, ident)
    except FhirError:
        return False
    return True


@dataclass(frozen=True, slots=True)
class Proposal:
    """A Consent of a child of 12 to 15 that waits for a second signature."""

    consent_id: str
    grantee_name: str
    by_name: str  # who proposed it
    summary: Summary
    mine: bool  # the visitor signed it (it waits for the other)
    family: bool = False  # it is about the family plan, not about her own plan


def _grantee(consent: dict[str, Any]) -> str:
    actors = (consent.get("provision") or {}).get("actor") or [{}]
    return str(((actors[0] or {}).get("reference") or {}).get("reference") or "")


def _signers(consent: dict[str, Any]) -> list[str]:
    return [
        str((p or {}).get("reference"))
        for p in consent.get("performer") or []
        if (p or {}).get("reference")
    ]


def proposals(
    repo: Repository,
    conn: Connection,
    consents: Iterable[dict[str, Any]],
    visitor: Visitor,
    now: int,
) -> list[Proposal]:
    """The proposals of a child of 12 to 15: those waiting for the visitor, then their own."""
    me = signer(visitor)
    found = []
    for consent in consents:
        if consent.get("status") != "proposed":
            continue
        by = _signers(consent)
        try:
            grants = compile_consent({**consent, "status": "active"}, patient_id=visitor.patient_id)
        except FhirError:
            continue
        grantee = _grantee(consent)
        name = name_of(repo, conn, grantee)
        found.append(
            Proposal(
                str(consent["id"]),
                name,
                name_of(repo, conn, by[0]) if by else "",
                summarize(name, grants, now=now),
                me in by,
                family_named(conn, visitor.patient_id, consent) is not None,
            )
        )
    found.sort(key=lambda p: (p.mine, p.grantee_name.casefold()))
    return found


def home_parts(
    repo: Repository, quiet: Repository, conn: Connection, visitor: Visitor, now: int
) -> dict[str, Any]:
    """What "Wie mag wat zien" shows of the age rules: the notice, and from 12 to 15 the
    proposals (``quiet``: the visitor's own access without access-log entries)."""
    notice = age_notice(quiet, conn, visitor, now)
    waiting = (
        proposals(
            repo,
            conn,
            compartment_search(repo, conn, "Consent", visitor.patient_id),
            visitor,
            now,
        )
        if notice is not None and notice.stage == "together"
        else []
    )
    return {"age": notice, "proposals": waiting}


def agree_updates(
    conn: Connection, consents: Iterable[dict[str, Any]], consent_id: str, visitor: Visitor
) -> list[Update]:
    """ "Ja": the visitor signs the proposal, which becomes active, and the grantee's other
    active Consents of the same kind stop naming them (the agreed one is now the one rule
    for them): about her own plan, or about the same family plan (docs/family.md)."""
    current = list(consents)
    found = next((c for c in current if str(c.get("id")) == consent_id), None)
    if found is None or found.get("status") != "proposed":
        return []
    family = family_named(conn, visitor.patient_id, found)
    current = [
        c for c in current if c is found or family_named(conn, visitor.patient_id, c) == family
    ]
    me = signer(visitor)
    performers = [*(found.get("performer") or [])]
    if me not in _signers(found):
        performers.append({"reference": me})
    agreed = without_meta({**found, "status": "active", "performer": performers})
    others = [c for c in current if str(c.get("id")) != consent_id]
    return [
        *revoke_updates(others, _grantee(found)),
        (consent_id, agreed, version_of(found)),
    ]


def refuse_update(consents: Iterable[dict[str, Any]], consent_id: str) -> list[Update]:
    """ "Nee" (or withdrawing one's own proposal): the proposal is rejected; it never gave
    anything, and it stays in the history of who proposed what."""
    for consent in consents:
        if str(consent.get("id")) == consent_id and consent.get("status") == "proposed":
            body = without_meta({**consent, "status": "rejected"})
            return [(consent_id, body, version_of(consent))]
    return []
