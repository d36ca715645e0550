"""Write a parsed samenwerkplan into the inwoner's vault: Goals, CareTeam, CarePlan.

The client must act for the inwoner (``AppLaunchAuth``: a ``patient/`` token from the
inwoner's own login and approval); the vault then keeps every write inside that inwoner's
compartment, and no Provenance of an outside author is needed, because the inwoner wrote it.

**Order instead of one transaction.** The vault has no transaction Bundle yet, so the
resources are written one by one, in an order that never leaves a reference to something
that does not exist: RelatedPersons, then Goals, then the CareTeam (which names the
RelatedPersons), and the CarePlan last (which names the Goals and the CareTeam). If a run
stops half-way, what was written is complete on its own and nothing points at it yet; the
next run finds it by identifier and finishes the plan.

**Importing twice changes nothing.** Every resource carries an identifier
(``IDENTIFIER_SYSTEM``): the plan's ``id`` for the CarePlan, ``<id>/netwerk`` for the
CareTeam, a hash of the words for a Goal (so the same wish in next month's plan is the same
Goal), and the name for a new RelatedPerson. A resource that exists is updated (a new
version, guarded by ``If-Match``) only when the file says something else; a new one is
created with ``If-None-Exist``, so two runs at once cannot make two.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from adapters.samenwerkplan.codes import LEVENSDOMEIN, LEVENSDOMEINEN
from adapters.samenwerkplan.plan import Activity, Participant, Plan, Wish
from adapters.sdk.client import VaultClient
from adapters.sdk.errors import VaultClientError

__all__ = [
    "GOAL_PRIORITY",
    "IDENTIFIER_SYSTEM",
    "IMPORT_SCOPES",
    "ImportResult",
    "PlanImporter",
    "goal_priority",
]

IDENTIFIER_SYSTEM = "https://regiekluis.nl/fhir/NamingSystem/samenwerkplan"
GOAL_PRIORITY = "http://terminology.hl7.org/CodeSystem/goal-priority"
# What the import asks the inwoner to approve: no delete, and nothing beyond the own plan.
IMPORT_SCOPES = (
    "launch/patient",
    "offline_access",
    "patient/Patient.r",
    "patient/Goal.crus",
    "patient/CarePlan.crus",
    "patient/CareTeam.crus",
    "patient/RelatedPerson.crus",
    "patient/Organization.rs",
    "patient/Practitioner.rs",
)
_SECTION_TEXT = {"kan": "Wat kan ik", "nodig": "Wat heb ik nodig", "afspraken": "Afspraken"}
_SERVER_ELEMENTS = frozenset({"id", "meta", "text"})


def goal_priority(rank: int) -> dict[str, Any]:
    """Goal.priority for the inwoner's ranking: the coded priority the consent page sorts by,
    and the exact place in the inwoner's list as its text ("1" is listed first)."""
    code = {1: "high-priority", 2: "medium-priority"}.get(rank, "low-priority")
    return {"coding": [{"system": GOAL_PRIORITY, "code": code}], "text": str(rank)}


@dataclass(slots=True)
class ImportResult:
    """What one import did, as ``"Type/id"`` references."""

    created: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    plan: str = ""  # the CarePlan's reference


def _fold(text: str) -> str:
    plain = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return " ".join(plain.casefold().split())


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", _fold(text)).strip("-")


def _names_of(resource: Mapping[str, Any]) -> set[str]:
    """Every way a resource's name can be written: ``name`` as text, or given + family."""
    found: set[str] = set()
    names = resource.get("name")
    if isinstance(names, str):
        return {_fold(names)}
    for name in names or []:
        if name.get("text"):
            found.add(_fold(name["text"]))
        parts = [*name.get("given", []), name.get("family", "")]
        joined = " ".join(p for p in parts if p)
        if joined:
            found.add(_fold(joined))
    return found


class PlanImporter:
    """Imports ``Plan`` objects for the inwoner ``patient_id`` through ``client``."""

    def __init__(self, client: VaultClient, patient_id: str) -> None:
        self._client = client
        self._patient = {"reference": f"Patient/{patient_id}"}
        self._result = ImportResult()

    def run(self, plan: Plan) -> ImportResult:
        """Write ``plan``; returns what was created, updated and left as it was."""
        self._result = ImportResult()
        members = self._members(plan.participants)
        goals = [self._goal(plan, wish) for wish in plan.wishes]
        team = self._care_team(plan, members)
        self._result.plan = self._care_plan(plan, goals, team, members)
        return self._result

    # -- who -------------------------------------------------------------------------------

    def _directory(self, resource_type: str, wanted: bool) -> dict[str, dict[str, Any]]:
        """Name -> reference of the vault's shared directory of ``resource_type``."""
        if not wanted:
            return {}
        found: dict[str, dict[str, Any]] = {}
        for resource in self._client.search_json(resource_type):
            reference = {"reference": f"{resource_type}/{resource['id']}"}
            for name in _names_of(resource):
                found.setdefault(name, reference)
        return found

    def _members(self, participants: Iterable[Participant]) -> dict[str, dict[str, Any]]:
        """Each participant's Reference: a match in the vault, a new RelatedPerson for the
        network, or (an organisation or professional the vault does not know) its name."""
        people = list(participants)
        organizations = self._directory("Organization", any(p.kind != "netwerk" for p in people))
        practitioners = self._directory(
            "Practitioner", any(p.kind == "professional" for p in people)
        )
        network: dict[str, dict[str, Any]] = {}
        if any(p.kind == "netwerk" for p in people):
            params = [("patient", self._patient["reference"])]
            for resource in self._client.search_json("RelatedPerson", params):
                for name in _names_of(resource):
                    network.setdefault(name, {"reference": f"RelatedPerson/{resource['id']}"})
        members: dict[str, dict[str, Any]] = {}
        for person in people:
            folded = _fold(person.name)
            if person.kind == "organisatie":
                found = organizations.get(folded)
            elif person.kind == "professional":
                found = practitioners.get(folded)
            else:
                found = network.get(folded) or self._related_person(person)
            members[person.name] = {**(found or {}), "display": person.name}
        return members

    def _related_person(self, person: Participant) -> dict[str, Any]:
        given, _, family = person.name.partition(" ")
        name: dict[str, Any] = {"text": person.name, "given": [given]}
        if family:
            name["family"] = family
        body: dict[str, Any] = {
            "resourceType": "RelatedPerson",
            "identifier": [{"system": IDENTIFIER_SYSTEM, "value": f"netwerk/{_slug(person.name)}"}],
            "active": True,
            "patient": self._patient,
            "name": [name],
        }
        if person.relation:
            body["relationship"] = [{"text": person.relation}]
        return self._put(body)

    # -- what ------------------------------------------------------------------------------

    def _goal(self, plan: Plan, wish: Wish) -> dict[str, Any]:
        body: dict[str, Any] = {
            "resourceType": "Goal",
            "identifier": [{"system": IDENTIFIER_SYSTEM, "value": f"wil/{wish.key}"}],
            "lifecycleStatus": "active",
            "priority": goal_priority(wish.rank),
            "description": {"text": wish.text},
            "subject": self._patient,
            "expressedBy": self._patient,
        }
        if wish.domain is not None:
            coding = {
                "system": LEVENSDOMEIN,
                "code": wish.domain,
                "display": LEVENSDOMEINEN[wish.domain],
            }
            body["category"] = [{"coding": [coding]}]
        if plan.date is not None:
            body["startDate"] = plan.date
        return self._put(body)

    def _care_team(self, plan: Plan, members: Mapping[str, dict[str, Any]]) -> dict[str, Any]:
        participants: list[dict[str, Any]] = []
        for person in plan.participants:
            entry: dict[str, Any] = {"member": members[person.name]}
            role = person.role or person.relation
            if role:
                entry["role"] = [{"text": role}]
            employer = members.get(person.on_behalf_of or "")
            if employer is not None and "reference" in employer:
                entry["onBehalfOf"] = employer  # FHIR: onBehalfOf is an Organization only
            participants.append(entry)
        body: dict[str, Any] = {
            "resourceType": "CareTeam",
            "identifier": [{"system": IDENTIFIER_SYSTEM, "value": f"{plan.key}/netwerk"}],
            "status": "active",
            "name": f"Wie doen er mee: {plan.title}",
            "subject": self._patient,
            "participant": participants,
        }
        if plan.start is not None:
            body["period"] = {"start": plan.start, "end": plan.end}
        return self._put(body)

    def _activity(self, activity: Activity, members: Mapping[str, Any]) -> dict[str, Any]:
        performer = self._patient if activity.who is None else members[activity.who]
        detail: dict[str, Any] = {
            "code": {"text": _SECTION_TEXT[activity.section]},
            "status": activity.status,
            "description": activity.text,
            "performer": [performer],
        }
        if activity.start is not None:
            detail["scheduledPeriod"] = {"start": activity.start, "end": activity.end}
        return {"detail": detail}

    def _care_plan(
        self,
        plan: Plan,
        goals: list[dict[str, Any]],
        team: dict[str, Any],
        members: Mapping[str, Any],
    ) -> str:
        body: dict[str, Any] = {
            "resourceType": "CarePlan",
            "identifier": [{"system": IDENTIFIER_SYSTEM, "value": plan.key}],
            "status": "active",
            "intent": "plan",
            "category": [{"text": "Samenwerkplan"}],
            "title": plan.title,
            "subject": self._patient,
            "author": self._patient,
            "careTeam": [team],
            "goal": goals,  # in the inwoner's order
            "activity": [self._activity(a, members) for a in plan.activities],
        }
        if plan.date is not None:
            body["created"] = plan.date
        if plan.start is not None:
            body["period"] = {"start": plan.start, "end": plan.end}
        return str(self._put(body)["reference"])

    # -- writing ---------------------------------------------------------------------------

    def _put(self, body: dict[str, Any]) -> dict[str, Any]:
        """Create ``body``, or bring the resource with its identifier up to date; returns
        its Reference."""
        resource_type = str(body["resourceType"])
        identifier = body["identifier"][0]
        criteria = f"{identifier['system']}|{identifier['value']}"
        existing = list(self._client.search_json(resource_type, [("identifier", criteria)]))
        if len(existing) > 1:
            raise VaultClientError(
                f"{len(existing)} {resource_type} resources carry the identifier {criteria}; "
                "merge them on the consent page first"
            )
        if not existing:
            created = self._client.create(body, if_none_exist=f"identifier={criteria}")
            reference = f"{resource_type}/{created.id}"
            self._result.created.append(reference)
            return {"reference": reference}
        current = existing[0]
        reference = f"{resource_type}/{current['id']}"
        kept = {k: v for k, v in current.items() if k not in _SERVER_ELEMENTS}
        if kept == body:
            self._result.unchanged.append(reference)
        else:
            version = current.get("meta", {}).get("versionId")
            self._client.update(
                {**body, "id": current["id"]},
                if_match=f'W/"{version}"' if version is not None else None,
            )
            self._result.updated.append(reference)
        return {"reference": reference}
