"""The access decision, stated once in plain Python: the reference the SQL must agree with.

``allowed = token scopes ∩ grants from active Consents ∩ the Patient compartment``
(design section 3). The repository applies the same rule inside its queries
(``consent/enforce.py``); the property-based tests check, for random Consents and
requests, that both give the same answer. This module is slow and obvious on purpose, and
imports neither the web framework nor the database.

A child's Consent (issue 17, docs/family.md) is restated here from its facts, not from
``consent/representation.py``: who signed it, when it was written and the child's birth
date. Signed by a parent alone while the child was a minor, it holds only while the child
is under 12 (00:00 Europe/Amsterdam on the 12th birthday; born on 29 February, 1 March in
a year without one). The vault refuses every other signature that does not fit the age,
so the reference, which only sees accepted Consents, needs no more than that.

Like HAPI FHIR's consent service, the contract is small: a request (who, for what
purpose, which action, when) and a resource's facts (type, id, compartment, labels, what
it references) go in, a yes or no comes out. Unlike a filter after the fact, the SQL form
hides existence before counting and paging.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Literal
from zoneinfo import ZoneInfo

from vault.consent.compile import GRANTABLE_TYPES, Grant
from vault.store.registry import SHARED_TYPES

__all__ = ["Facts", "Request", "Signed", "permits"]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_DUTCH = ZoneInfo("Europe/Amsterdam")


@dataclass(frozen=True, slots=True)
class Request:
    grantees: frozenset[str]  # "Organization/x", "Practitioner/y", "RelatedPerson/z"
    action: str  # "access" | "correct"
    purposes: frozenset[str]
    now: int  # microseconds since the epoch
    # Who asks (``AccessContext.kind``): the operator, the inwoner herself (and whoever acts
    # for her), or a party that sees what Consents grant it.
    kind: Literal["full", "patient", "system"] = "system"
    patient_id: str | None = None  # the inwoner of a "patient" request


@dataclass(frozen=True, slots=True)
class Facts:
    resource_type: str
    resource_id: str
    patient_id: str | None
    labels: frozenset[tuple[str | None, str]] = frozenset()  # meta.security (system, code)
    referenced_by: frozenset[tuple[str, str]] = frozenset()  # (type, id) of those pointing at it
    # Per Consent key: (type, id) of those that pointed at it when that Consent was written.
    # None: nothing changed since every Consent was written, so the same as referenced_by.
    referenced_by_then: Mapping[str, frozenset[tuple[str, str]]] | None = None
    actors: frozenset[str] = frozenset()  # a Consent's provision actors ("Organization/x")
    erased: bool = False  # its inwoner's vault was erased (the data key destroyed)


@dataclass(frozen=True, slots=True)
class Signed:
    """Who agreed to one Consent, and whose: the facts a child's Consent is decided by."""

    birth_date: date | None  # the inwoner's Patient.birthDate; None: not known
    signers: frozenset[str]  # Consent.performer ("Patient/x", "RelatedPerson/y")
    written_at: int  # microseconds: when its current version was written


def _years_old(born: date, instant: int) -> int:
    """Age on the calendar of Amsterdam: a year older once the local date reaches the
    anniversary's (month, day); (3, 1) is past (2, 29), so 1 March in a common year."""
    today = (_EPOCH + timedelta(microseconds=instant)).astimezone(_DUTCH).date()
    return today.year - born.year - ((today.month, today.day) < (born.month, born.day))


def _in_force(signed: Signed, now: int) -> bool:
    born = signed.birth_date
    if born is None or _years_old(born, signed.written_at) >= 18:
        return True
    by_parent = any(s.startswith("RelatedPerson/") for s in signed.signers)
    by_child = any(s.startswith("Patient/") for s in signed.signers)
    return not (by_parent and not by_child) or _years_old(born, now) < 12


def _matches(
    grant: Grant, facts: Facts, request: Request, then: frozenset[tuple[str, str]]
) -> bool:
    if grant.grantee is not None and grant.grantee not in request.grantees:
        return False
    if grant.action is not None and grant.action != request.action:
        return False
    if grant.resource_type == "*":
        if facts.resource_type not in GRANTABLE_TYPES:
            return False
    elif grant.resource_type != facts.resource_type:
        return False
    if grant.data_type is not None:
        target = (grant.data_type, grant.data_id)
        direct = (facts.resource_type, facts.resource_id) == target
        # "related" (FHIR consent-data-meaning): the named resource and what it refers to,
        # read both now and when the Consent was written: a permit needs both (a later
        # write never widens it), a deny takes either (a later write never narrows it).
        now, before = target in facts.referenced_by, target in then
        refers = (now and before) if grant.effect == "permit" else (now or before)
        related = grant.data_meaning == "related" and refers
        if not (direct or related):
            return False
    if grant.label_code is not None and not any(
        code == grant.label_code and (grant.label_system is None or system == grant.label_system)
        for system, code in facts.labels
    ):
        return False
    if grant.purpose is not None and grant.purpose not in request.purposes:
        return False
    if grant.valid_from is not None and request.now < grant.valid_from:
        return False
    return not (grant.valid_until is not None and request.now >= grant.valid_until)


def permits(
    consents: Mapping[str, tuple[str, Iterable[Grant]]],
    facts: Facts,
    request: Request,
    signed: Mapping[str, Signed] | None = None,
) -> bool:
    """``consents`` maps a Consent's key to (its inwoner's patient id, its compiled rows);
    ``signed``, by the same key, who signed it (a Consent missing from it: no age rule).

    The operator sees everything; the inwoner her own compartment. Anyone else: the shared
    directory, a Consent that names them as actor (they may see their own grant; not once
    the inwoner's vault was erased), and what some permit of some active Consent of this
    resource's inwoner matches while no deny of that same Consent does.
    """
    if request.kind == "full":
        return True
    if facts.patient_id is None:
        # The shared directory belongs to no inwoner. Any other row without an inwoner (the
        # vault's own access log) is nobody's to grant.
        return facts.resource_type in SHARED_TYPES
    if request.kind == "patient":
        return facts.patient_id == request.patient_id
    if (
        request.action == "access"
        and facts.resource_type == "Consent"
        and not facts.erased
        and facts.actors & request.grantees
    ):
        return True
    for key, (patient_id, grants) in consents.items():
        if patient_id != facts.patient_id:
            continue
        if signed is not None and key in signed and not _in_force(signed[key], request.now):
            continue
        rows = list(grants)
        then = (
            facts.referenced_by
            if facts.referenced_by_then is None
            else facts.referenced_by_then.get(key, frozenset())
        )
        denied = any(g.effect == "deny" and _matches(g, facts, request, then) for g in rows)
        if denied:
            continue
        if any(g.effect == "permit" and _matches(g, facts, request, then) for g in rows):
            return True
    return False
