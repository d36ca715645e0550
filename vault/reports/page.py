"""The consent page's part of outcome reports: being counted, the plan's phase, the rating.

Issue 14, sections 1 and 2. The inwoner says yes or no to "Mag de gemeente je plan
meetellen in een overzicht zonder namen?" (no until she says yes); a yes is a Consent of
her own (``cohort.statistics_consent``), a no makes every such Consent inactive, which
holds from the next report run like any revocation. She sets her plan's phase and gives
the way of working a mark from 1 to 10. Every write goes through her own repository.
"""

from __future__ import annotations

from datetime import date
from typing import Any

import orjson
from sqlalchemy import Connection

from vault.fhir.repository import Repository
from vault.reports.codes import (
    AGREED_FROM,
    EVALUATIE,
    PHASES,
    PLAN_AGREED,
    PLAN_FASE,
    PLAN_PHASE,
    RATING_CODE,
    STATISTICS_PURPOSE,
)
from vault.reports.cohort import statistics_consent

__all__ = [
    "add_rating",
    "counting",
    "is_statistics",
    "latest_rating",
    "plan_phase",
    "set_counting",
    "set_phase",
    "statistics_consents",
]


def _all(
    repo: Repository, conn: Connection, resource_type: str, patient_id: str
) -> list[dict[str, Any]]:
    query = repo.parse(
        resource_type, [("patient", f"Patient/{patient_id}"), ("_count", "200")], lenient=False
    )
    return [orjson.loads(s.body or b"{}") for s in repo.search(conn, query).matches]


def is_statistics(consent: dict[str, Any]) -> bool:
    """A Consent whose provision is for the statistics purpose (it opens no plan)."""
    provision = consent.get("provision") or {}
    return any(
        (p.get("code") if isinstance(p, dict) else None) == STATISTICS_PURPOSE
        for p in provision.get("purpose") or []
    )


def statistics_consents(
    repo: Repository, conn: Connection, *, patient_id: str
) -> list[dict[str, Any]]:
    """The inwoner's statistics Consents, active or not (read before a write begins)."""
    return [c for c in _all(repo, conn, "Consent", patient_id) if is_statistics(c)]


def counting(consents: list[dict[str, Any]]) -> bool:
    """Does the inwoner allow being counted now?"""
    return any(c.get("status") == "active" for c in consents)


def _version(resource: dict[str, Any]) -> str | None:
    version = (resource.get("meta") or {}).get("versionId")
    return str(version) if version is not None else None


def _strip(resource: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in resource.items() if k != "meta"}


def set_counting(
    repo: Repository,
    conn: Connection,
    *,
    consents: list[dict[str, Any]],
    patient_id: str,
    organization: str,
    allow: bool,
) -> None:
    """Yes: one active statistics Consent for ``organization``. No: none stays active.

    ``consents`` were read before the write began (If-Match guards them): a read inside
    the write would wait on the access log, which waits on this write.
    """
    active = [c for c in consents if c.get("status") == "active"]
    if allow and not active:
        repo.create(
            conn, "Consent", statistics_consent(patient_id=patient_id, organization=organization)
        )
    if not allow:
        for consent in active:
            body = {**_strip(consent), "status": "inactive"}
            repo.update(conn, "Consent", str(consent["id"]), body, if_match=_version(consent))


def plan_phase(care_plan: dict[str, Any] | None) -> str | None:
    for extension in (care_plan or {}).get("extension") or []:
        coding = extension.get("valueCoding") or {}
        if extension.get("url") == PLAN_PHASE and coding.get("system") == PLAN_FASE:
            code = coding.get("code")
            return str(code) if code in PHASES else None
    return None


def set_phase(
    repo: Repository,
    conn: Connection,
    *,
    care_plan: dict[str, Any] | None,
    patient_id: str,
    phase: str,
) -> None:
    """Set the phase on the plan read before the write began (If-Match guards it).

    The first time the plan reaches "samen op weg" or later, the day is kept as the day
    the plan was agreed: the time from first contact to an agreed plan is measured by it.
    """
    if phase not in PHASES:
        raise ValueError(phase)
    plan = care_plan or {
        "resourceType": "CarePlan",
        "status": "active",
        "intent": "plan",
        "title": "Mijn plan",
        "subject": {"reference": f"Patient/{patient_id}"},
        "created": date.today().isoformat(),
    }
    version = _version(plan)
    body = _strip(plan)
    kept = [e for e in body.get("extension") or [] if e.get("url") != PLAN_PHASE]
    kept.append(
        {
            "url": PLAN_PHASE,
            "valueCoding": {"system": PLAN_FASE, "code": phase, "display": PHASES[phase]},
        }
    )
    if phase in AGREED_FROM and not any(e.get("url") == PLAN_AGREED for e in kept):
        kept.append({"url": PLAN_AGREED, "valueDateTime": date.today().isoformat()})
    body["extension"] = kept
    if body.get("id"):
        repo.update(conn, "CarePlan", str(body["id"]), body, if_match=version)
    else:
        repo.create(conn, "CarePlan", body)


def add_rating(repo: Repository, conn: Connection, *, patient_id: str, score: int) -> None:
    """The inwoner's own mark for the way of working, dated today."""
    repo.create(
        conn,
        "Observation",
        {
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
            "code": {
                "coding": [{"system": EVALUATIE, "code": RATING_CODE}],
                "text": "Mijn cijfer voor de manier van werken (1 tot 10)",
            },
            "subject": {"reference": f"Patient/{patient_id}"},
            "effectiveDateTime": date.today().isoformat(),
            "performer": [{"reference": f"Patient/{patient_id}"}],
            "valueInteger": score,
        },
    )


def latest_rating(repo: Repository, conn: Connection, *, patient_id: str) -> int | None:
    given = [
        (str(o.get("effectiveDateTime", "")), o.get("valueInteger"))
        for o in _all(repo, conn, "Observation", patient_id)
        if any(
            c.get("system") == EVALUATIE and c.get("code") == RATING_CODE
            for c in (o.get("code") or {}).get("coding") or []
        )
    ]
    given = [g for g in given if isinstance(g[1], int)]
    return int(sorted(given)[-1][1]) if given else None  # type: ignore[arg-type]
