"""What the consent page reads and writes, always through the Repository.

Every function takes the caller's ``Repository`` (built with their own ``AccessContext``)
and a connection inside a transaction the route opened; nothing here commits. Sharing is
changed only by writing Consent resources, so the FHIR API, the grants table and the page
can never disagree.

Over 500 lines: the reads and writes behind every part of the page, which share the plan's
and the grants' helpers; the next file to split by part, as the routes now are.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import uuid
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

import orjson
from sqlalchemy import Connection, delete, insert, select, update

from vault.audit.log import AuditRecord
from vault.consent.access import AccessContext, Permissions, registered_purposes
from vault.consent.compile import Grant, compile_consent
from vault.consent.models import ConsentGrant, NetworkLink, Representation
from vault.consent.representation import current_roles, end_roles, set_role
from vault.consent.service import record_erasure
from vault.fhir.codesystems import LEVENSDOMEIN, LEVENSDOMEINEN
from vault.fhir.repository import Repository
from vault.kernel.errors import FhirError, KeyUnavailable, NotFound
from vault.kernel.fhirdata import format_instant, split_reference
from vault.kernel.runtime import Runtime, now_micros
from vault.oauth.apps import revoke_account_tokens, stop_apps
from vault.oauth.models import Account, OAuthClient, Token, WebSession
from vault.oauth.scopes import permissions_from
from vault.page.models import Invitation
from vault.page.words import PART_BY_KEY, PARTS, PREVIEW_QUERY, Summary, summarize
from vault.reports.page import is_statistics
from vault.store.models import DataKey, ResourceRow
from vault.store.registry import SCOPE_TYPES
from vault.store.writes import Stored

__all__ = [
    "Party",
    "build_consent",
    "erase_vault",
    "export_bundle",
    "parties",
    "preview",
    "sharing_updates",
    "stop_updates",
]

CONSENT_SCOPE = "http://terminology.hl7.org/CodeSystem/consentscope"
CONSENT_ACTION = "http://terminology.hl7.org/CodeSystem/consentaction"
RESOURCE_TYPE_SYSTEM = "http://hl7.org/fhir/resource-types"
ACT_CODE = "http://terminology.hl7.org/CodeSystem/v3-ActCode"
GOAL_PRIORITY = "http://terminology.hl7.org/CodeSystem/goal-priority"
OBSERVATION_CATEGORY = "http://terminology.hl7.org/CodeSystem/observation-category"
ROLE_CODE = "http://terminology.hl7.org/CodeSystem/v3-RoleCode"
DOMAINS = LEVENSDOMEINEN
PRIORITIES = {
    "high-priority": "Heel belangrijk",
    "medium-priority": "Belangrijk",
    "low-priority": "Minder belangrijk",
}
PRIORITY_ORDER = {"high-priority": 0, "medium-priority": 1, "low-priority": 2}
# The inwoner's own order of goals. Goal.priority has three codes, so it cannot say "this
# one first, then that one"; the exact place is this extension (1 = at the top). Goals
# without it (new ones, or written by a partner) follow the ranked ones, by priority.
# A representative's legal basis (design section 7), as a RelatedPerson.relationship coding.
LEGAL_BASIS = "https://regiekluis.nl/fhir/CodeSystem/wettelijke-grondslag"
LEGAL_BASIS_WORDS = {
    "machtiging": "machtiging",
    "mentor": "mentor",
    "curator": "curator",
    "ouder": "ouder met gezag",
}
GOAL_RANK = "https://regiekluis.nl/fhir/StructureDefinition/goal-rank"
# The types of an inwoner's compartment, in the order the page shows and exports them.
COMPARTMENT_TYPES = (
    "Patient",
    "CarePlan",
    "Goal",
    "Observation",
    "CareTeam",
    "RelatedPerson",
    "Consent",
    "Provenance",
    "AuditEvent",
)
INVITATION_SECONDS = 7 * 24 * 3600
MICROS = 1_000_000


def load(stored: Stored) -> dict[str, Any]:
    data: dict[str, Any] = orjson.loads(stored.body or b"{}")
    return data


def search_all(
    repo: Repository, conn: Connection, resource_type: str, params: Sequence[tuple[str, str]]
) -> list[dict[str, Any]]:
    """Every match of a search, page by page, as the caller's access decision allows."""
    query = repo.parse(resource_type, [*params, ("_count", "200")], lenient=False)
    found: list[dict[str, Any]] = []
    while True:
        page = repo.search(conn, query)
        found.extend(load(s) for s in page.matches)
        if page.next_cursor is None or len(found) >= 5000:
            return found
        query.cursor = page.next_cursor


def audit_events(
    repo: Repository, conn: Connection, params: Sequence[tuple[str, str]]
) -> Iterator[dict[str, Any]]:
    """AuditEvents of a search, newest first, read page by page only as far as needed."""
    query = repo.parse("AuditEvent", [*params, ("_count", "500")], lenient=False)
    while True:
        page = repo.search(conn, query)
        yield from (load(s) for s in page.matches)
        if page.next_cursor is None:
            return
        query.cursor = page.next_cursor


def compartment_search(
    repo: Repository, conn: Connection, resource_type: str, patient_id: str
) -> list[dict[str, Any]]:
    if resource_type == "Patient":
        return search_all(repo, conn, "Patient", [("_id", patient_id)])
    return search_all(repo, conn, resource_type, [("patient", f"Patient/{patient_id}")])


def display_name(resource: dict[str, Any]) -> str:
    name = resource.get("name")
    if isinstance(name, str):
        return name
    if isinstance(name, list) and name:
        first = name[0]
        if first.get("text"):
            return str(first["text"])
        return " ".join([*first.get("given", []), first.get("family", "")]).strip() or "Iemand"
    return "Iemand"


def name_of(repo: Repository, conn: Connection, reference: str) -> str:
    parsed = split_reference(reference)
    if parsed is None:
        return reference
    try:
        return display_name(load(repo.read(conn, parsed[0], parsed[1])))
    except (FhirError, KeyUnavailable):
        return "Onbekend"


def name_then(repo: Repository, conn: Connection, reference: str) -> str:
    """The name, also of someone since removed: the log tells who it was (the last version
    before the delete), never "Onbekend" for a person the inwoner knew."""
    name = name_of(repo, conn, reference)
    parsed = split_reference(reference)
    if name != "Onbekend" or parsed is None:
        return name
    row = conn.execute(
        select(ResourceRow.version_id, ResourceRow.deleted).where(
            ResourceRow.resource_type == parsed[0], ResourceRow.resource_id == parsed[1]
        )
    ).first()
    if row is None or not row.deleted or row.version_id < 2:
        return name
    try:
        return display_name(load(repo.vread(conn, parsed[0], parsed[1], str(row.version_id - 1))))
    except (FhirError, KeyUnavailable):
        return name


# -- who may see what ------------------------------------------------------------------------


@dataclass
class Party:
    """An organisation or person around the inwoner, and what they may do now."""

    reference: str
    name: str
    kind: str  # "organisatie", "hulpverlener", "netwerk"
    role: str
    summary: Summary
    consent_ids: list[str] = field(default_factory=list)

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
    per = consent_grants(consents, patient_id)
    for actor in per:
        roles.setdefault(actor, "")
    result = []
    for ref, role in roles.items():
        name = name_of(repo, conn, ref)
        grants, ids = per.get(ref, ([], []))
        kind = {"Organization": "organisatie", "Practitioner": "hulpverlener"}.get(
            ref.split("/", 1)[0], "netwerk"
        )
        result.append(Party(ref, name, kind, role, summarize(name, grants, now=now), ids))
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
    consent_id: str | None = None,
) -> dict[str, Any]:
    """A Consent that lets ``grantee`` see ``parts`` (and change ``may_change``) until a day."""
    # Long on purpose: one Consent resource built from the page's choices, element by element.
    seen = [k for k in dict.fromkeys(parts) if k in PART_BY_KEY]
    changed = [k for k in dict.fromkeys(may_change) if k in PART_BY_KEY and k in seen]

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
        "status": "active" if seen else "inactive",
        "scope": {"coding": [{"system": CONSENT_SCOPE, "code": "patient-privacy"}]},
        "category": [{"coding": [{"system": "http://loinc.org", "code": "59284-0"}]}],
        "patient": {"reference": f"Patient/{patient_id}"},
        "dateTime": format_instant(now_micros()),
        "performer": [{"reference": f"Patient/{patient_id}"}],
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


def _version(resource: dict[str, Any]) -> str | None:
    version = (resource.get("meta") or {}).get("versionId")
    return f'W/"{version}"' if version else None


def _names(consent: dict[str, Any], grantee: str) -> bool:
    return consent.get("status") == "active" and grantee in _actors(consent.get("provision") or {})


def revoke_updates(consents: Iterable[dict[str, Any]], grantee: str) -> list[Update]:
    """Every active Consent stops naming ``grantee`` (inactive, or the actor taken out)."""
    updates: list[Update] = []
    for old in consents:
        if not _names(old, grantee):
            continue
        narrowed = _without(old, grantee)
        body = narrowed if narrowed is not None else {**old, "status": "inactive"}
        updates.append((str(old["id"]), _strip_meta(body), _version(old)))
    return updates


def sharing_updates(
    consents: Iterable[dict[str, Any]], grantee: str, consent: dict[str, Any]
) -> list[Update]:
    """Make ``consent`` the one rule for ``grantee``: its other Consents stop naming them."""
    current = list(consents)
    versions = {str(c["id"]): _version(c) for c in current}
    others = [c for c in current if c["id"] != consent["id"]]
    return [
        *revoke_updates(others, grantee),
        (str(consent["id"]), consent, versions.get(str(consent["id"]))),
    ]


def stop_updates(consents: Iterable[dict[str, Any]]) -> list[Update]:
    """Every active Consent of the inwoner becomes inactive."""
    return [
        (str(c["id"]), _strip_meta({**c, "status": "inactive"}), _version(c))
        for c in consents
        if c.get("status") == "active"
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


def _strip_meta(resource: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in resource.items() if k != "meta"}


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


# -- mijn gegevens ------------------------------------------------------------------------------


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

    The wrapped data key is destroyed, so every stored version (and every backup of it)
    can no longer be opened. Grants, tokens, accounts, sessions and invitations go in the
    same transaction, so every partner and app loses access at once.
    """
    now = now_micros()
    conn.execute(
        update(DataKey).where(DataKey.owner == patient_id).values(wrapped=None, destroyed_at=now)
    )
    record_erasure(conn, patient_id=patient_id)  # partners hear their access ended
    conn.execute(delete(ConsentGrant).where(ConsentGrant.patient_id == patient_id))
    conn.execute(update(Token).where(Token.patient_id == patient_id).values(revoked=True))
    accounts = [
        *conn.scalars(select(Account.account_id).where(Account.patient_id == patient_id)),
        *conn.scalars(select(NetworkLink.account_id).where(NetworkLink.patient_id == patient_id)),
    ]
    if accounts:
        conn.execute(delete(WebSession).where(WebSession.account_id.in_(accounts)))
        conn.execute(delete(NetworkLink).where(NetworkLink.account_id.in_(accounts)))
        conn.execute(delete(Account).where(Account.account_id.in_(accounts)))
    conn.execute(delete(Invitation).where(Invitation.patient_id == patient_id))
    conn.execute(delete(Representation).where(Representation.patient_id == patient_id))


# -- mijn plan ----------------------------------------------------------------------------------


@dataclass
class Plan:
    care_plan: dict[str, Any] | None
    goals: list[dict[str, Any]]
    own: list[tuple[int, dict[str, Any], str]]  # (index, activity detail, who)
    needed: list[tuple[int, dict[str, Any], str]]
    scores: dict[str, list[tuple[str, int]]]  # domain -> [(date, score)]


def read_plan(repo: Repository, conn: Connection, *, patient_id: str) -> Plan:
    plans = compartment_search(repo, conn, "CarePlan", patient_id)
    care_plan = next((p for p in plans if p.get("status") == "active"), plans[0] if plans else None)
    goals = [
        g
        for g in compartment_search(repo, conn, "Goal", patient_id)
        if g.get("lifecycleStatus") not in ("cancelled", "entered-in-error")
    ]
    goals.sort(key=_goal_order)
    names: dict[str, str] = {f"Patient/{patient_id}": "Ik"}
    own: list[tuple[int, dict[str, Any], str]] = []
    needed: list[tuple[int, dict[str, Any], str]] = []
    for index, activity in enumerate((care_plan or {}).get("activity") or []):
        detail = activity.get("detail") or {}
        performer = ((detail.get("performer") or [{}])[0]).get("reference", "")
        if performer and performer not in names:
            names[performer] = name_of(repo, conn, performer)
        who = names.get(performer, "")
        mine = performer == f"Patient/{patient_id}" or performer.startswith("RelatedPerson/")
        (own if mine else needed).append((index, detail, who))
    scores: dict[str, list[tuple[str, int]]] = {}
    for obs in compartment_search(repo, conn, "Observation", patient_id):
        codes = [
            c
            for c in (obs.get("code") or {}).get("coding") or []
            if c.get("system") == LEVENSDOMEIN
        ]
        value = obs.get("valueInteger")
        when = str(obs.get("effectiveDateTime", ""))[:10]
        if codes and isinstance(value, int) and when:
            scores.setdefault(str(codes[0]["code"]), []).append((when, value))
    for series in scores.values():
        series.sort()
    return Plan(care_plan, goals, own, needed, scores)


def goal_rank(goal: dict[str, Any]) -> int | None:
    for extension in goal.get("extension") or []:
        value = extension.get("valueInteger")
        if extension.get("url") == GOAL_RANK and isinstance(value, int) and value > 0:
            return value
    return None


def _goal_order(goal: dict[str, Any]) -> tuple[int, int, str]:
    rank = goal_rank(goal)
    return (
        rank if rank is not None else 1_000_000,
        PRIORITY_ORDER.get(goal_priority(goal), 3),
        goal_text(goal).casefold(),
    )


def move_goal(
    repo: Repository, conn: Connection, *, goals: Sequence[dict[str, Any]], goal_id: str, up: bool
) -> None:
    """Swap a goal with its neighbour in the shown order; every goal gets its place 1..n.

    ``goals`` were read, in the shown order, before the write began: If-Match makes a
    change made meanwhile fail instead of vanish.
    """
    order = list(goals)
    index = next((i for i, g in enumerate(order) if g.get("id") == goal_id), None)
    if index is None:
        raise NotFound(f"Goal/{goal_id} is not known")
    other = index - 1 if up else index + 1
    if not 0 <= other < len(order):
        return  # already at the top or the bottom
    order[index], order[other] = order[other], order[index]
    for place, goal in enumerate(order, start=1):
        if goal_rank(goal) == place:
            continue
        body = _strip_meta(goal)
        body["extension"] = [
            *(e for e in body.get("extension") or [] if e.get("url") != GOAL_RANK),
            {"url": GOAL_RANK, "valueInteger": place},
        ]
        repo.update(conn, "Goal", str(goal["id"]), body, if_match=_version(goal))


def goal_text(goal: dict[str, Any]) -> str:
    return str((goal.get("description") or {}).get("text", ""))


def goal_priority(goal: dict[str, Any]) -> str:
    for coding in (goal.get("priority") or {}).get("coding") or []:
        if coding.get("code") in PRIORITIES:
            return str(coding["code"])
    return "medium-priority"


def goal_domain(goal: dict[str, Any]) -> str:
    for concept in goal.get("category") or []:
        for coding in concept.get("coding") or []:
            if coding.get("system") == LEVENSDOMEIN:
                return str(coding.get("code"))
    return ""


def _priority(code: str) -> dict[str, Any]:
    code = code if code in PRIORITIES else "medium-priority"
    return {"coding": [{"system": GOAL_PRIORITY, "code": code}], "text": PRIORITIES[code]}


def save_goal(
    repo: Repository,
    conn: Connection,
    *,
    patient_id: str,
    existing: dict[str, Any] | None,
    text: str,
    priority: str,
    domain: str,
) -> None:
    """Add a goal, or change one read before the write began (If-Match guards it)."""
    if existing is None:
        goal: dict[str, Any] = {
            "resourceType": "Goal",
            "lifecycleStatus": "active",
            "subject": {"reference": f"Patient/{patient_id}"},
            "expressedBy": {"reference": f"Patient/{patient_id}"},
            "startDate": date.today().isoformat(),
        }
    else:
        goal = _strip_meta(existing)
        if (goal.get("subject") or {}).get("reference") != f"Patient/{patient_id}":
            raise NotFound(f"Goal/{existing.get('id')} is not known")
    goal["description"] = {"text": text}
    goal["priority"] = _priority(priority)
    if domain in DOMAINS:
        goal["category"] = [
            {"coding": [{"system": LEVENSDOMEIN, "code": domain, "display": DOMAINS[domain]}]}
        ]
    if existing is None:
        repo.create(conn, "Goal", goal)
    else:
        repo.update(conn, "Goal", str(existing["id"]), goal, if_match=_version(existing))


def save_activity(
    repo: Repository,
    conn: Connection,
    *,
    care_plan: dict[str, Any] | None,
    patient_id: str,
    index: int | None,
    text: str,
    performer: str,
) -> None:
    """Add or change a line of the plan read before the write began (If-Match guards it)."""
    plan = care_plan
    if plan is None:
        plan = {
            "resourceType": "CarePlan",
            "status": "active",
            "intent": "plan",
            "title": "Mijn plan",
            "subject": {"reference": f"Patient/{patient_id}"},
            "activity": [],
        }
    version = _version(plan)
    plan = _strip_meta(plan)
    activities = list(plan.get("activity") or [])
    if index is None:
        activities.append(
            {
                "detail": {
                    "status": "not-started",
                    "description": text,
                    "performer": [{"reference": performer}],
                }
            }
        )
    else:
        if not 0 <= index < len(activities):
            raise NotFound("This line of the plan is not known")
        detail = dict(activities[index].get("detail") or {})
        detail["description"] = text
        activities[index] = {**activities[index], "detail": detail}
    plan["activity"] = activities
    if plan.get("id"):
        repo.update(conn, "CarePlan", str(plan["id"]), plan, if_match=version)
    else:
        repo.create(conn, "CarePlan", plan)


def add_score(
    repo: Repository, conn: Connection, *, patient_id: str, domain: str, score: int
) -> None:
    repo.create(
        conn,
        "Observation",
        {
            "resourceType": "Observation",
            "status": "final",
            "category": [{"coding": [{"system": OBSERVATION_CATEGORY, "code": "survey"}]}],
            "code": {
                "coding": [{"system": LEVENSDOMEIN, "code": domain, "display": DOMAINS[domain]}],
                "text": f"Mijn cijfer voor {DOMAINS[domain].lower()} (1 tot 10)",
            },
            "subject": {"reference": f"Patient/{patient_id}"},
            "effectiveDateTime": date.today().isoformat(),
            "performer": [{"reference": f"Patient/{patient_id}"}],
            "valueInteger": score,
        },
    )


# -- mijn netwerk -------------------------------------------------------------------------------


@dataclass
class Member:
    reference: str
    name: str
    relation: str
    account: bool
    legal_basis: str | None


def network(repo: Repository, conn: Connection, *, patient_id: str) -> list[Member]:
    links = {
        f"RelatedPerson/{link.related_person_id}": link
        for link in conn.execute(select(NetworkLink).where(NetworkLink.patient_id == patient_id))
    }
    roles = current_roles(conn, patient_id=patient_id)
    members = []
    for person in compartment_search(repo, conn, "RelatedPerson", patient_id):
        ref = f"RelatedPerson/{person['id']}"
        relation = ((person.get("relationship") or [{}])[0]).get("text", "")
        link = links.get(ref)
        members.append(
            Member(
                ref,
                display_name(person),
                relation,
                link is not None,
                roles.get(ref) if link is not None else None,
            )
        )
    members.sort(key=lambda m: m.name.casefold())
    return members


def add_person(
    repo: Repository, conn: Connection, *, patient_id: str, name: str, relation: str
) -> str:
    stored, _ = repo.create(
        conn,
        "RelatedPerson",
        {
            "resourceType": "RelatedPerson",
            "active": True,
            "patient": {"reference": f"Patient/{patient_id}"},
            "relationship": [{"text": relation}] if relation else [],
            "name": [{"text": name}],
        },
    )
    return stored.resource_id


def invite(conn: Connection, *, patient_id: str, related_person_id: str) -> str:
    """A one-time link secret; only its hash is kept."""
    token = secrets.token_urlsafe(32)
    now = now_micros()
    conn.execute(
        insert(Invitation).values(
            token_hash=hashlib.sha256(token.encode()).hexdigest(),
            patient_id=patient_id,
            related_person_id=related_person_id,
            created_at=now,
            expires_at=now + INVITATION_SECONDS * MICROS,
            used_at=None,
        )
    )
    return token


def open_invitation(conn: Connection, token: str, *, now: int) -> Any:
    """The open invitation row for this link secret, or None."""
    return conn.execute(
        select(Invitation).where(
            Invitation.token_hash == hashlib.sha256(token.encode()).hexdigest(),
            Invitation.used_at.is_(None),
            Invitation.expires_at > now,
        )
    ).first()


def redeem_invitation(conn: Connection, invitation: Any, *, account_id: str) -> bool:
    """Use the link; False if another request used it first."""
    now = now_micros()
    result = conn.execute(
        update(Invitation)
        .where(Invitation.token_hash == invitation.token_hash, Invitation.used_at.is_(None))
        .values(used_at=now)
    )
    if result.rowcount != 1:
        return False
    conn.execute(
        insert(NetworkLink).values(
            account_id=account_id,
            patient_id=invitation.patient_id,
            related_person_id=invitation.related_person_id,
            legal_basis=None,
            created_at=now,
        )
    )
    return True


def set_representative(
    repo: Repository,
    conn: Connection,
    *,
    patient_id: str,
    person: dict[str, Any],
    legal_basis: str | None,
) -> bool:
    """Name a representative (or undo it), in FHIR and in the role table, in one go.

    The RelatedPerson carries the legal basis as a relationship coding, so partners and the
    inwoner's download see it; the right itself comes only from ``web_representation``
    (``consent/representation.py``), which a partner's write cannot touch. False when the
    person has no account yet.
    """
    linked = conn.execute(
        select(NetworkLink.account_id).where(
            NetworkLink.patient_id == patient_id,
            NetworkLink.related_person_id == str(person["id"]),
        )
    ).first()
    if linked is None:
        return False
    set_role(
        conn,
        patient_id=patient_id,
        related_person_id=str(person["id"]),
        legal_basis=legal_basis,
        now=now_micros(),
    )
    body = _strip_meta(person)
    relationships = [
        concept
        for concept in body.get("relationship") or []
        if not any(c.get("system") == LEGAL_BASIS for c in concept.get("coding") or [])
    ]
    if legal_basis is not None:
        relationships.append(
            {
                "coding": [
                    {
                        "system": LEGAL_BASIS,
                        "code": legal_basis,
                        "display": LEGAL_BASIS_WORDS[legal_basis],
                    }
                ],
                "text": f"vertegenwoordiger ({LEGAL_BASIS_WORDS[legal_basis]})",
            }
        )
    body["relationship"] = relationships
    repo.update(conn, "RelatedPerson", str(person["id"]), body, if_match=_version(person))
    return True


def representatives(conn: Connection, *, patient_id: str) -> dict[str, str]:
    return current_roles(conn, patient_id=patient_id)


def remove_person(
    repo: Repository,
    conn: Connection,
    *,
    patient_id: str,
    person: dict[str, Any],
    consents: Iterable[dict[str, Any]],
) -> None:
    """Take someone out of the network: every way in ends in this one transaction.

    Their Consents stop naming them, their role ends, their RelatedPerson is deleted (its
    history stays), and their account's sessions, link, invitations and tokens go.
    ``consents`` were read before the write began (If-Match guards them).
    """
    ident = str(person["id"])
    reference = f"RelatedPerson/{ident}"
    apply_updates(repo, conn, revoke_updates(consents, reference))
    end_roles(conn, patient_id=patient_id, related_person_id=ident, now=now_micros())
    accounts = list(
        conn.scalars(
            select(NetworkLink.account_id).where(
                NetworkLink.patient_id == patient_id, NetworkLink.related_person_id == ident
            )
        )
    )
    for account_id in accounts:
        conn.execute(delete(WebSession).where(WebSession.account_id == account_id))
        revoke_account_tokens(conn, account_id=account_id)
    conn.execute(
        delete(NetworkLink).where(
            NetworkLink.patient_id == patient_id, NetworkLink.related_person_id == ident
        )
    )
    conn.execute(
        delete(Invitation).where(
            Invitation.patient_id == patient_id, Invitation.related_person_id == ident
        )
    )
    repo.delete(conn, "RelatedPerson", ident)


def stop_everything(
    repo: Repository, conn: Connection, *, patient_id: str, consents: Iterable[dict[str, Any]]
) -> None:
    """ "Stop met alles delen": every Consent, every app, every role the inwoner may end."""
    apply_updates(repo, conn, stop_updates(consents))
    stop_apps(conn, patient_id=patient_id)
    end_roles(conn, patient_id=patient_id, now=now_micros(), voluntary_only=True)


@dataclass
class Remaining:
    """Someone who still may act for the inwoner after she stopped everything."""

    name: str
    legal_basis: str


def remaining_roles(repo: Repository, conn: Connection, *, patient_id: str) -> list[Remaining]:
    """The roles that hold now, by name: after "stop", only those she cannot end herself."""
    found = [
        Remaining(name_of(repo, conn, ref), basis)
        for ref, basis in current_roles(conn, patient_id=patient_id).items()
    ]
    return sorted(found, key=lambda r: r.name.casefold())


_DUTCH_DAY = re.compile(r"(\d{1,2})[-/. ]+(\d{1,2})[-/. ]+(\d{4})")


def parse_day(text: str) -> date | None:
    """A day as people in the Netherlands write it: day, month, year ("31-12-2026",
    "31/12/2026", "31.12.2026", "1-3-2027", or the eight digits "31122026"); also the
    ISO form "2026-12-31". None when empty. Raises ValueError for anything else."""
    text = text.strip()
    if not text:
        return None
    if re.fullmatch(r"\d{4}-\d{2}-\d{2}", text):
        return date.fromisoformat(text)
    if re.fullmatch(r"\d{8}", text):
        return date(int(text[4:]), int(text[2:4]), int(text[:2]))
    found = _DUTCH_DAY.fullmatch(text)
    if found is None:
        raise ValueError(text)
    day, month, year = (int(g) for g in found.groups())
    return date(year, month, day)


def dutch_day(day: date) -> str:
    """The form the date field shows and reads back: "31-12-2026"."""
    return f"{day.day:02d}-{day.month:02d}-{day.year}"


def default_until() -> date:
    return date.today() + timedelta(days=365)


PART_KEYS = tuple(p.key for p in PARTS)
