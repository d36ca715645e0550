"""A clearly fictional cohort of inwoners, so that a report shows real figures.

``vault demo`` loads it next to the demo family; the tests build their own inwoners with
``member``. Every name is "Fictief inwoner nnn", without BSN or address; the figures are
drawn from a seeded random generator, so a run gives the same cohort each time. Most
inwoners allow the statistics purpose; some do not, and one life domain is rare, so the
report has suppressed cells.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

from vault.consent.access import AccessContext
from vault.fhir.codesystems import LEVENSDOMEIN, LEVENSDOMEINEN
from vault.fhir.repository import Repository
from vault.kernel.runtime import Runtime
from vault.reports.codes import (
    AGREED_FROM,
    EVALUATIE,
    PHASES,
    PLAN_AGREED,
    PLAN_FASE,
    PLAN_PHASE,
    RATING_CODE,
    STATISTICS_PURPOSE,
    STATISTICS_PURPOSE_SYSTEM,
)

__all__ = ["Member", "load_cohort", "member", "statistics_consent"]

Resource = dict[str, Any]
FICTIEF = "https://regiekluis.nl/fhir/NamingSystem/fictief-inwoner"
STATISTICS_CLASSES = ("CarePlan", "Goal", "Observation", "CareTeam")


def statistics_consent(*, patient_id: str, organization: str) -> Resource:
    """The inwoner's yes to being counted, without her name, in ``organization``'s figures."""
    return {
        "resourceType": "Consent",
        "status": "active",
        "scope": {
            "coding": [
                {
                    "system": "http://terminology.hl7.org/CodeSystem/consentscope",
                    "code": "patient-privacy",
                }
            ]
        },
        "category": [{"coding": [{"system": "http://loinc.org", "code": "59284-0"}]}],
        "patient": {"reference": f"Patient/{patient_id}"},
        "dateTime": date.today().isoformat(),
        "policyRule": {
            "coding": [
                {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "OPTIN"}
            ]
        },
        "provision": {
            "type": "permit",
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
                    "reference": {"reference": organization},
                }
            ],
            "action": [
                {
                    "coding": [
                        {
                            "system": "http://terminology.hl7.org/CodeSystem/consentaction",
                            "code": "access",
                        }
                    ]
                }
            ],
            "class": [
                {"system": "http://hl7.org/fhir/resource-types", "code": t}
                for t in STATISTICS_CLASSES
            ],
            "purpose": [{"system": STATISTICS_PURPOSE_SYSTEM, "code": STATISTICS_PURPOSE}],
        },
    }


@dataclass
class Member:
    """One fictional inwoner's plan, in plain values."""

    created: date
    phase: str = "samen-op-weg"
    agreed: date | None = None
    goals: list[tuple[str, date, str | None, date | None]] = field(default_factory=list)
    # (domain, start, outcome "achieved" | "stopped" | None, outcome date)
    scores: list[tuple[str, date, int]] = field(default_factory=list)
    rating: tuple[date, int] | None = None
    organisations: tuple[str, ...] = ()
    network: int = 0


def _ref(kind: str, ident: str) -> dict[str, str]:
    return {"reference": f"{kind}/{ident}"}


def member(
    repo: Repository,
    conn: Any,
    plan: Member,
    *,
    name: str,
    consent_for: str | None,
    number: str | None = None,
) -> str:
    """Write one inwoner with ``plan``; with ``consent_for``, her statistics Consent.

    With ``number`` the inwoner is written once: a second run finds her and writes nothing.
    """
    # Long on purpose: the fictional cohort member's plan written resource by resource.
    patient: Resource = {"resourceType": "Patient", "active": True, "name": [{"text": name}]}
    if number is not None:
        patient["identifier"] = [{"system": FICTIEF, "value": number}]
    stored, created = repo.create(
        conn,
        "Patient",
        patient,
        if_none_exist=f"identifier={FICTIEF}|{number}" if number is not None else None,
    )
    pid = stored.resource_id
    if not created:
        return pid
    subject = _ref("Patient", pid)
    people = []
    for index in range(plan.network):
        person, _ = repo.create(
            conn,
            "RelatedPerson",
            {
                "resourceType": "RelatedPerson",
                "patient": subject,
                "name": [{"text": f"Netwerk {index + 1} van {name}"}],
            },
        )
        people.append(person.resource_id)
    repo.create(
        conn,
        "CareTeam",
        {
            "resourceType": "CareTeam",
            "status": "active",
            "subject": subject,
            "participant": [{"member": {"reference": o}} for o in plan.organisations]
            + [{"member": _ref("RelatedPerson", p)} for p in people],
        },
    )
    extension: list[Resource] = [
        {"url": PLAN_PHASE, "valueCoding": {"system": PLAN_FASE, "code": plan.phase}}
    ]
    if plan.agreed is not None and plan.phase in AGREED_FROM:
        extension.append({"url": PLAN_AGREED, "valueDateTime": plan.agreed.isoformat()})
    repo.create(
        conn,
        "CarePlan",
        {
            "resourceType": "CarePlan",
            "extension": extension,
            "status": "active",
            "intent": "plan",
            "title": "Mijn plan",
            "subject": subject,
            "created": plan.created.isoformat(),
        },
    )
    for domain, start, outcome, when in plan.goals:
        goal: Resource = {
            "resourceType": "Goal",
            "lifecycleStatus": "cancelled" if outcome == "stopped" else "active",
            "description": {"text": f"Een fictief doel over {LEVENSDOMEINEN[domain].lower()}"},
            "subject": subject,
            "startDate": start.isoformat(),
            "category": [{"coding": [{"system": LEVENSDOMEIN, "code": domain}]}],
        }
        if outcome == "achieved":
            goal["lifecycleStatus"] = "completed"
            goal["achievementStatus"] = {
                "coding": [
                    {
                        "system": "http://terminology.hl7.org/CodeSystem/goal-achievement",
                        "code": "achieved",
                    }
                ]
            }
        if when is not None:
            goal["statusDate"] = when.isoformat()
        repo.create(conn, "Goal", goal)
    observations = [(LEVENSDOMEIN, d, day, v) for d, day, v in plan.scores]
    if plan.rating is not None:
        observations.append((EVALUATIE, RATING_CODE, plan.rating[0], plan.rating[1]))
    for system, code, day, value in observations:
        repo.create(
            conn,
            "Observation",
            {
                "resourceType": "Observation",
                "status": "final",
                "code": {"coding": [{"system": system, "code": code}]},
                "subject": subject,
                "effectiveDateTime": day.isoformat(),
                "valueInteger": value,
            },
        )
    if consent_for is not None:
        repo.create(conn, "Consent", statistics_consent(patient_id=pid, organization=consent_for))
    return pid


# Weights of the life domains in the cohort: "opvoeding" is rare, so its cells are small.
_WEIGHTS = {
    "financien": 5,
    "wonen": 5,
    "relaties": 3,
    "dagbesteding": 3,
    "gezondheid": 4,
    "opvoeding": 1,
}


def _random_member(rng: random.Random, year: int, organisations: list[str]) -> Member:
    created = date(year, 1, 1) + timedelta(days=rng.randrange(0, 300))
    phase = rng.choices(list(PHASES), weights=[1, 2, 2, 4, 3])[0]
    agreed = created + timedelta(days=rng.randrange(14, 60)) if phase in AGREED_FROM else None
    end = date(year, 12, 31)
    domains = rng.sample(list(_WEIGHTS), k=rng.randint(1, 3), counts=list(_WEIGHTS.values()))
    plan = Member(created=created, phase=phase, agreed=agreed if agreed and agreed <= end else None)
    for domain in dict.fromkeys(domains):
        start = created + timedelta(days=rng.randrange(0, 30))
        outcome = rng.choices([None, "achieved", "stopped"], weights=[5, 4, 1])[0]
        when = start + timedelta(days=rng.randrange(30, 200)) if outcome else None
        if when is not None and when > end:
            outcome, when = None, None
        plan.goals.append((domain, start, outcome, when))
        first = rng.randint(2, 6)
        plan.scores.append((domain, start, first))
        plan.scores.append(
            (domain, min(end, start + timedelta(days=90)), min(10, first + rng.randint(-1, 4)))
        )
    if phase in AGREED_FROM:
        plan.rating = (min(end, created + timedelta(days=120)), rng.randint(5, 10))
    plan.organisations = tuple(rng.sample(organisations, k=rng.randint(1, len(organisations))))
    plan.network = rng.randint(0, 4)
    return plan


def load_cohort(
    runtime: Runtime,
    *,
    organization: str,
    partners: list[str],
    size: int = 60,
    seed: int = 14,
    year: int = 2025,
    first: int = 1,
) -> list[str]:
    """Write ``size`` fictional inwoners; about four in five allow the statistics purpose."""
    rng = random.Random(seed)  # noqa: S311 - a repeatable fictional cohort, not a secret
    repo = Repository(runtime, AccessContext.full("demo"))
    made = []
    with runtime.db.write() as conn:
        for number in range(first, first + size):
            plan = _random_member(rng, year, [organization, *partners])
            consenting = rng.random() < 0.8
            made.append(
                member(
                    repo,
                    conn,
                    plan,
                    name=f"Fictief inwoner {number:03d}",
                    consent_for=organization if consenting else None,
                    number=f"{number:03d}",
                )
            )
    return made
