"""Mijn plan: the inwoner's CarePlan, goals and scores, read and written through the Repository.

Every change is checked with If-Match against the version the page read, so a change made
meanwhile (by a partner, or in another tab) fails instead of vanishing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

from sqlalchemy import Connection

from vault.fhir.codesystems import LEVENSDOMEIN
from vault.fhir.repository import Repository
from vault.kernel.errors import NotFound
from vault.page.data import (
    DOMAINS,
    GOAL_PRIORITY,
    GOAL_RANK,
    OBSERVATION_CATEGORY,
    PRIORITIES,
    PRIORITY_ORDER,
    compartment_search,
    name_of,
    version_of,
    without_meta,
)


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
        body = without_meta(goal)
        body["extension"] = [
            *(e for e in body.get("extension") or [] if e.get("url") != GOAL_RANK),
            {"url": GOAL_RANK, "valueInteger": place},
        ]
        repo.update(conn, "Goal", str(goal["id"]), body, if_match=version_of(goal))


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
        goal = without_meta(existing)
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
        repo.update(conn, "Goal", str(existing["id"]), goal, if_match=version_of(existing))


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
    version = version_of(plan)
    plan = without_meta(plan)
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
