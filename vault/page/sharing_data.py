"""Who may see what: the page's reads and writes of Consents, and what a partner sees.

Sharing is changed only by writing Consent resources, so the FHIR API, the grants table and
the page can never disagree. Nothing here commits: the route's transaction holds it all.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from sqlalchemy import Connection, select

from vault.audit.log import AuditRecord
from vault.consent.access import AccessContext, Permissions, registered_purposes
from vault.consent.compile import Grant, compile_consent
from vault.consent.family import family_consent_ids
from vault.fhir.repository import Repository
from vault.kernel.errors import FhirError
from vault.kernel.fhirdata import format_instant
from vault.kernel.runtime import Runtime, now_micros
from vault.oauth.models import OAuthClient
from vault.oauth.scopes import permissions_from
from vault.page.data import (
    ACT_CODE,
    COMPARTMENT_TYPES,
    CONSENT_ACTION,
    CONSENT_SCOPE,
    RESOURCE_TYPE_SYSTEM,
    compartment_search,
    display_name,
    name_of,
    search_all,
    version_of,
    without_meta,
)
from vault.page.words import PART_BY_KEY, PREVIEW_QUERY, Summary, summarize
from vault.reports.page import is_statistics
from vault.store.registry import SCOPE_TYPES


@dataclass
class Party:
    """An organisation or person around the inwoner, and what they may do now."""

    reference: str
    name: str
    kind: str  # "organisatie", "hulpverlener", "netwerk"
    role: str
    summary: Summary
    consent_ids: list[str] = field(default_factory=list)
    # A Consent of hers lets them see (part of) a family plan: a rule of its own.
    family_plan: bool = False

    @property
    def key(self) -> str:
        return self.reference.replace("/", "~")


def _actors(provision: dict[str, Any]) -> set[str]:
    found = set()
    for actor in provision.get("actor") or []:
        ref = ((actor or {}).get("reference") or {}).get("reference")
        if ref:
            found.add(str(ref))
    for child in provision.get("provision") or []:
        found |= _actors(child)
    return found


def consent_grants(
    consents: Iterable[dict[str, Any]], patient_id: str
) -> dict[str, tuple[list[Grant], list[str]]]:
    """Per grantee: the rows its active Consents compile to, and those Consents' ids."""
    per: dict[str, tuple[list[Grant], list[str]]] = {}
    for consent in consents:
        if is_statistics(consent):
            continue  # being counted opens no plan: it is asked and shown on "Mijn plan"
        try:
            grants = compile_consent(consent, patient_id=patient_id)
        except FhirError:
            continue
        for actor in _actors(consent.get("provision") or {}):
            rows, ids = per.setdefault(actor, ([], []))
            rows.extend(g for g in grants if g.grantee in (actor, None))
            if consent.get("status") == "active":
                ids.append(str(consent["id"]))
    return per


def parties(repo: Repository, conn: Connection, patient_id: str) -> list[Party]:
    now = now_micros()
    roles: dict[str, str] = {}
    for team in compartment_search(repo, conn, "CareTeam", patient_id):
        for member in team.get("participant") or []:
            ref = (member.get("member") or {}).get("reference")
            if ref and ref.split("/", 1)[0] in ("Organization", "RelatedPerson", "Practitioner"):
                role = ", ".join(r.get("text", "") for r in member.get("role") or [] if r)
                roles.setdefault(str(ref), role)
    for person in compartment_search(repo, conn, "RelatedPerson", patient_id):
        ref = f"RelatedPerson/{person['id']}"
        relation = ((person.get("relationship") or [{}])[0]).get("text", "")
        roles.setdefault(ref, relation)
    consents = compartment_search(repo, conn, "Consent", patient_id)
    # What she shares of a family plan is its own rule, not a part of her own plan.
    family_rules = family_consent_ids(conn, patient_id)
    per = consent_grants([c for c in consents if str(c["id"]) not in family_rules], patient_id)
    family_parties = {
        actor
        for c in consents
        if str(c["id"]) in family_rules and c.get("status") == "active"
        for actor in _actors(c.get("provision") or {})
    }
    for actor in [*per, *sorted(family_parties)]:
        roles.setdefault(actor, "")
    result = []
    for ref, role in roles.items():
        name = name_of(repo, conn, ref)
        grants, ids = per.get(ref, ([], []))
        kind = {"Organization": "organisatie", "Practitioner": "hulpverlener"}.get(
            ref.split("/", 1)[0], "netwerk"
        )
        summary = summarize(name, grants, now=now)
        result.append(Party(ref, name, kind, role, summary, ids, ref in family_parties))
    order = {"organisatie": 0, "hulpverlener": 1, "netwerk": 2}
    result.sort(key=lambda p: (order[p.kind], p.name.casefold()))
    return result


def other_organizations(
    repo: Repository, conn: Connection, known: Iterable[str]
) -> list[tuple[str, str]]:
    """Organisations in the vault's directory that are not around the inwoner yet."""
    taken = set(known)
    found = search_all(repo, conn, "Organization", [])
    return sorted(
        (
            (f"Organization/{o['id']}", display_name(o))
            for o in found
            if f"Organization/{o['id']}" not in taken
        ),
        key=lambda item: item[1].casefold(),
    )


def build_consent(
    *,
    patient_id: str,
    grantee: str,
    parts: Iterable[str],
    may_change: Iterable[str],
    until: date | None,
    performer: str,
    proposed: bool = False,
    consent_id: str | None = None,
    family_plan: str | None = None,
) -> dict[str, Any]:
    """A Consent that lets ``grantee`` see ``parts`` (and change ``may_change``) until a day,
    signed by ``performer`` (the inwoner, or a parent for a child: family_data.py); a
    child's of 12 to 15 is ``proposed`` until the other signs. With ``family_plan`` (a
    family CarePlan's reference) it lets ``grantee`` see that plan and what it refers to
    that is hers or the family's (docs/family.md section 6), and ``parts`` are not used."""
    # Long on purpose: one Consent resource built from the page's choices, element by element.
    seen = [k for k in dict.fromkeys(parts) if k in PART_BY_KEY]
    changed = [k for k in dict.fromkeys(may_change) if k in PART_BY_KEY and k in seen]
    if family_plan is not None:
        seen, changed = [], []

    def classes(keys: Iterable[str]) -> list[dict[str, str]]:
        return [
            {"system": RESOURCE_TYPE_SYSTEM, "code": cls}
            for key in keys
            for cls in PART_BY_KEY[key].classes
        ]

    today = date.today()
    provision: dict[str, Any] = {
        "type": "permit",
        "period": {"start": today.isoformat()},
        "actor": [
            {
                "role": {
                    "coding": [
                        {
                            "system": "http://terminology.hl7.org/CodeSystem/v3-ParticipationType",
                            "code": "IRCP",
                        }
                    ]
                },
                "reference": {"reference": grantee},
            }
        ],
    }
    if until is not None:
        provision["period"]["end"] = until.isoformat()
    actions = ["access", "correct"] if changed else ["access"]
    provision["action"] = [
        {"coding": [{"system": CONSENT_ACTION, "code": code}]} for code in actions
    ]
    if family_plan is not None:
        provision["data"] = [{"meaning": "related", "reference": {"reference": family_plan}}]
    if seen:
        provision["class"] = classes(seen)
    unchanged = [k for k in seen if k not in changed]
    if changed and unchanged:
        # A nested deny cuts "change" out of the parts that may only be seen.
        provision["provision"] = [
            {
                "type": "deny",
                "action": [{"coding": [{"system": CONSENT_ACTION, "code": "correct"}]}],
                "class": classes(unchanged),
            }
        ]
    return {
        "resourceType": "Consent",
        "id": consent_id or f"toestemming-{uuid.uuid4().hex[:20]}",
        "status": (
            ("proposed" if proposed else "active")
            if seen or family_plan is not None
            else "inactive"
        ),
        "scope": {"coding": [{"system": CONSENT_SCOPE, "code": "patient-privacy"}]},
        "category": [{"coding": [{"system": "http://loinc.org", "code": "59284-0"}]}],
        "patient": {"reference": f"Patient/{patient_id}"},
        "dateTime": format_instant(now_micros()),
        "performer": [{"reference": performer}],
        "policyRule": {"coding": [{"system": ACT_CODE, "code": "OPTIN"}]},
        "provision": provision,
    }


def proposal(consent: dict[str, Any], *, patient_id: str, name: str) -> Summary:
    """The sentence the inwoner confirms, from the grants the Consent compiles to."""
    return summarize(name, compile_consent(consent, patient_id=patient_id), now=now_micros())


def _without(consent: dict[str, Any], grantee: str) -> dict[str, Any] | None:
    """The Consent with ``grantee`` taken out of its root actors; None if it named only them."""
    provision = consent.get("provision") or {}
    actors = [
        a
        for a in provision.get("actor") or []
        if ((a or {}).get("reference") or {}).get("reference") != grantee
    ]
    if not actors or grantee in _actors({"provision": provision.get("provision") or []}):
        return None
    return {**consent, "provision": {**provision, "actor": actors}}


Update = tuple[str, dict[str, Any], str | None]  # (Consent id, new body, If-Match)


def _names(consent: dict[str, Any], grantee: str) -> bool:
    return consent.get("status") == "active" and grantee in _actors(consent.get("provision") or {})


def revoke_updates(consents: Iterable[dict[str, Any]], grantee: str) -> list[Update]:
    """Every active Consent stops naming ``grantee`` (inactive, or the actor taken out), and
    a proposal naming them is rejected, so no later "ja" opens what was stopped."""
    updates: list[Update] = []
    for old in consents:
        if old.get("status") == "proposed" and grantee in _actors(old.get("provision") or {}):
            body = without_meta({**old, "status": "rejected"})
            updates.append((str(old["id"]), body, version_of(old)))
            continue
        if not _names(old, grantee):
            continue
        # Signed by a parent, or by a child and a parent (family_data.py): taking an actor
        # out would change what they agreed to, so the whole Consent stops instead.
        by_parent = any(
            str((p or {}).get("reference", "")).startswith("RelatedPerson/")
            for p in old.get("performer") or []
        )
        narrowed = None if by_parent else _without(old, grantee)
        body = narrowed if narrowed is not None else {**old, "status": "inactive"}
        updates.append((str(old["id"]), without_meta(body), version_of(old)))
    return updates


def sharing_updates(
    consents: Iterable[dict[str, Any]], grantee: str, consent: dict[str, Any]
) -> list[Update]:
    """Make ``consent`` the one rule for ``grantee``: its other Consents stop naming them."""
    current = list(consents)
    versions = {str(c["id"]): version_of(c) for c in current}
    others = [c for c in current if c["id"] != consent["id"]]
    return [
        *revoke_updates(others, grantee),
        (str(consent["id"]), consent, versions.get(str(consent["id"]))),
    ]


_STOPPED = {"active": "inactive", "proposed": "rejected"}


def stop_updates(consents: Iterable[dict[str, Any]]) -> list[Update]:
    """Every active Consent of the inwoner becomes inactive, and every proposal that waits
    for a "ja" is rejected: after "stop" nobody can say "ja" to an earlier proposal."""
    return [
        (str(c["id"]), without_meta({**c, "status": _STOPPED[str(c["status"])]}), version_of(c))
        for c in consents
        if c.get("status") in _STOPPED
    ]


def reusable_consent_id(consents: Iterable[dict[str, Any]], grantee: str) -> str | None:
    """An active Consent for only this grantee: a change becomes a new version of it."""
    for c in consents:
        if c.get("status") == "active" and _actors(c.get("provision") or {}) == {grantee}:
            return str(c["id"])
    return None


def apply_updates(repo: Repository, conn: Connection, updates: Iterable[Update]) -> None:
    """Write Consents; If-Match makes a change made meanwhile fail instead of vanish."""
    for consent_id, body, if_match in updates:
        if if_match is None:
            # A new Consent gets the server's id: nobody but the operator creates by PUT.
            repo.create(conn, "Consent", body)
        else:
            repo.update(conn, "Consent", consent_id, body, if_match=if_match)


# -- what a partner sees -----------------------------------------------------------------------


def partner_context(conn: Connection, grantee: str, *, account_id: str) -> AccessContext:
    """The access decision ``grantee`` gets from the vault right now.

    An organisation: the union of the scopes of its registered, not removed clients, and
    their purposes (as ``oauth/protector.py`` builds it for each client). Someone of the
    network: what their RelatedPerson is granted.
    """
    kind, ident = grantee.split("/", 1)
    if kind == "Organization":
        rows = conn.execute(
            select(OAuthClient.scope, OAuthClient.purpose).where(
                OAuthClient.organization_id == ident,
                OAuthClient.kind == "backend",
                OAuthClient.removed_at.is_(None),
            )
        ).all()
        scopes = [s for row in rows for s in row.scope.split()]
        purposes = frozenset().union(*(registered_purposes(row.purpose) for row in rows))
        return AccessContext(
            subject=f"voorbeeld:{account_id}",
            kind="system",
            organization=grantee,
            account_id=account_id,
            permissions=permissions_from(scopes, context="system", known_types=SCOPE_TYPES),
            purposes=purposes,
            patient_id=None,
            client_id=None,
            practitioner=None,
            representative=None,
        )
    if kind == "Practitioner":
        return AccessContext(
            subject=f"voorbeeld:{account_id}",
            kind="system",
            practitioner=grantee,
            account_id=account_id,
            permissions=permissions_from([], context="system", known_types=SCOPE_TYPES),
            patient_id=None,
            organization=None,
            client_id=None,
            purposes=frozenset(),
            representative=None,
        )
    return AccessContext(
        subject=f"voorbeeld:{account_id}",
        kind="system",
        account_id=account_id,
        representative=grantee,
        patient_id=None,
        organization=None,
        client_id=None,
        permissions=Permissions.everything(),
        purposes=frozenset(),
        practitioner=None,
    )


@dataclass
class Preview:
    has_systems: bool
    sections: list[tuple[str, list[dict[str, Any]]]]


def preview(
    runtime: Runtime,
    conn: Connection,
    *,
    grantee: str,
    patient_id: str,
    account_id: str,
    previewer: AccessContext | None = None,
) -> Preview:
    """Exactly what ``grantee`` gets now: its own access decision runs the searches.

    Without ``previewer`` the grantee itself is looking (someone of the network on their
    own page) and its reads are logged as its own. With it, the inwoner or a
    representative is looking on the grantee's behalf: the log says that, not that the
    grantee read anything.
    """
    ctx = partner_context(conn, grantee, account_id=account_id)
    # A preview's reads are not the partner's: ``preview`` logs one truthful record instead,
    # that the inwoner (or their representative) looked at what the partner would get.
    repo = Repository(runtime, ctx, logged=previewer is None)
    sections = []
    for resource_type in COMPARTMENT_TYPES:
        if resource_type in ("AuditEvent", "Provenance") or not ctx.allows("s", resource_type):
            continue
        found = compartment_search(repo, conn, resource_type, patient_id)
        if found:
            sections.append((resource_type, found))
    has_systems = bool(ctx.permissions.letters)
    if previewer is not None:
        runtime.audit.record(
            [
                AuditRecord(
                    patient_id=patient_id,
                    interaction="search-type",
                    permitted=True,
                    client_id=None,
                    organization=None,
                    account_id=previewer.account_id,
                    entities=[f"{kind}/{r['id']}" for kind, found in sections for r in found],
                    query=PREVIEW_QUERY + grantee,
                    representative=previewer.representative,
                    recorded=now_micros(),
                )
            ]
        )
    return Preview(has_systems, sections)
