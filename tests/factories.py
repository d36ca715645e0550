"""Factories for FHIR resources in tests: keyword options, sensible Dutch defaults."""

from __future__ import annotations

import uuid
from typing import Any

BSN_SYSTEM = "http://fhir.nl/fhir/NamingSystem/bsn"
DOMAIN_SYSTEM = "https://regiekluis.nl/fhir/CodeSystem/levensdomein"


def new_id(prefix: str = "t") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def bsn(seed: int | None = None) -> str:
    """A fictional BSN from the 99999xxxx test range that passes the 11-proef."""
    base = seed if seed is not None else uuid.uuid4().int
    for offset in range(1000):
        digits = f"99999{(base + offset) % 10000:04d}"
        total = sum(int(d) * w for d, w in zip(digits[:8], range(9, 1, -1), strict=True))
        if (total - int(digits[8])) % 11 == 0:
            return digits
    raise AssertionError("no BSN found")


def patient(
    *,
    id: str | None = None,
    family: str = "Jansen",
    given: str = "Sanne",
    bsn_value: str | None = None,
    **extra: Any,
) -> dict[str, Any]:
    resource: dict[str, Any] = {
        "resourceType": "Patient",
        "identifier": [{"system": BSN_SYSTEM, "value": bsn_value or bsn()}],
        "name": [{"family": family, "given": [given]}],
        **extra,
    }
    if id is not None:
        resource["id"] = id
    return resource


def goal(
    *,
    patient_id: str,
    text: str = "Ik wil mijn schulden op een rij hebben",
    domain: str = "financien",
    status: str = "active",
    **extra: Any,
) -> dict[str, Any]:
    return {
        "resourceType": "Goal",
        "lifecycleStatus": status,
        "description": {"text": text},
        "subject": {"reference": f"Patient/{patient_id}"},
        "expressedBy": {"reference": f"Patient/{patient_id}"},
        "category": [{"coding": [{"system": DOMAIN_SYSTEM, "code": domain}]}],
        **extra,
    }


def careteam(*, patient_id: str, members: list[str] | None = None, **extra: Any) -> dict[str, Any]:
    return {
        "resourceType": "CareTeam",
        "status": "active",
        "subject": {"reference": f"Patient/{patient_id}"},
        "participant": [{"member": {"reference": ref}} for ref in members or []],
        **extra,
    }


def careplan(
    *,
    patient_id: str,
    goals: list[str] | None = None,
    careteams: list[str] | None = None,
    start: str = "2026-11-01",
    end: str | None = None,
    status: str = "active",
    **extra: Any,
) -> dict[str, Any]:
    period: dict[str, str] = {"start": start}
    if end is not None:
        period["end"] = end
    return {
        "resourceType": "CarePlan",
        "status": status,
        "intent": "plan",
        "subject": {"reference": f"Patient/{patient_id}"},
        "period": period,
        "goal": [{"reference": f"Goal/{g}"} for g in goals or []],
        "careTeam": [{"reference": f"CareTeam/{c}"} for c in careteams or []],
        **extra,
    }


def organization(*, name: str = "MEE", **extra: Any) -> dict[str, Any]:
    return {"resourceType": "Organization", "active": True, "name": name, **extra}


def related_person(*, patient_id: str, name: str = "Buurvrouw Ans", **extra: Any) -> dict[str, Any]:
    return {
        "resourceType": "RelatedPerson",
        "patient": {"reference": f"Patient/{patient_id}"},
        "name": [{"text": name}],
        **extra,
    }


def observation(
    *,
    patient_id: str,
    domain: str = "financien",
    score: int = 6,
    when: str = "2026-11-01T10:00:00+01:00",
    **extra: Any,
) -> dict[str, Any]:
    return {
        "resourceType": "Observation",
        "status": "final",
        "category": [
            {
                "coding": [
                    {
                        "system": "http://terminology.hl7.org/CodeSystem/observation-category",
                        "code": "survey",
                    }
                ]
            }
        ],
        "code": {"coding": [{"system": DOMAIN_SYSTEM, "code": domain}]},
        "subject": {"reference": f"Patient/{patient_id}"},
        "effectiveDateTime": when,
        "valueInteger": score,
        **extra,
    }


def practitioner(*, family: str = "de Vries", **extra: Any) -> dict[str, Any]:
    return {"resourceType": "Practitioner", "name": [{"family": family}], **extra}


def consent(
    *,
    patient_id: str,
    actors: list[str] | None = None,
    status: str = "active",
    actions: tuple[str, ...] = ("access",),
    classes: tuple[str, ...] = (),
    end: str | None = None,
    **extra: Any,
) -> dict[str, Any]:
    provision: dict[str, Any] = {"type": "permit"}
    if actors:
        provision["actor"] = [
            {"role": {"coding": [{"code": "IRCP"}]}, "reference": {"reference": ref}}
            for ref in actors
        ]
    if actions:
        provision["action"] = [
            {
                "coding": [
                    {
                        "system": "http://terminology.hl7.org/CodeSystem/consentaction",
                        "code": action,
                    }
                ]
            }
            for action in actions
        ]
    if classes:
        provision["class"] = [
            {"system": "http://hl7.org/fhir/resource-types", "code": cls} for cls in classes
        ]
    if end is not None:
        provision["period"] = {"end": end}
    return {
        "resourceType": "Consent",
        "status": status,
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
        "provision": provision,
        **extra,
    }


def provenance(
    *,
    targets: list[str],
    agent: str | None = None,
    recorded: str = "2026-11-01T10:00:00Z",
    **extra: Any,
) -> dict[str, Any]:
    resource: dict[str, Any] = {
        "resourceType": "Provenance",
        "target": [{"reference": ref} for ref in targets],
        "recorded": recorded,
        "agent": [{"who": {"reference": agent}}] if agent else [{"who": {"display": "Vault"}}],
        **extra,
    }
    return resource


def subscription(
    *,
    endpoint: str,
    secret: str = "s3cret-of-the-partner",
    types: tuple[str, ...] = (),
    payload_content: str = "id-only",
    channel_type: str = "rest-hook",
    criteria: str = "https://regiekluis.nl/fhir/SubscriptionTopic/granted-data",
    **extra: Any,
) -> dict[str, Any]:
    """A Subscription to the vault's topic, Subscriptions Backport style (R4)."""
    backport = "http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition"
    resource: dict[str, Any] = {
        "resourceType": "Subscription",
        "status": "requested",
        "reason": "Wijzigingen in wat de inwoner met ons deelt",
        "criteria": criteria,
        "channel": {
            "type": channel_type,
            "endpoint": endpoint,
            "payload": "application/fhir+json",
            "_payload": {
                "extension": [
                    {"url": f"{backport}/backport-payload-content", "valueCode": payload_content}
                ]
            },
            "header": [f"Authorization: Bearer {secret}"],
        },
        **extra,
    }
    if types:
        resource["_criteria"] = {
            "extension": [
                {"url": f"{backport}/backport-filter-criteria", "valueString": f"{t}?"}
                for t in types
            ]
        }
    return resource


def family(*, members: list[str], name: str = "Gezin Bakker", **extra: Any) -> dict[str, Any]:
    """A family (1 Gezin 1 Plan): a Group of the members' Patients (docs/family.md)."""
    return {
        "resourceType": "Group",
        "type": "person",
        "actual": True,
        "name": name,
        "member": [{"entity": {"reference": f"Patient/{m}"}} for m in members],
        **extra,
    }


def of_family(resource: dict[str, Any], family_id: str) -> dict[str, Any]:
    """``resource`` (a CarePlan, Goal or CareTeam) as part of the family plan: its subject
    is the family's Group, so it lives in the family compartment."""
    body = {**resource, "subject": {"reference": f"Group/{family_id}"}}
    if "expressedBy" in body:
        body.pop("expressedBy")
    return body
