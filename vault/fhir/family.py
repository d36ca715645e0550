"""The family plan as one caller may see it (issue 17, docs/family.md section 6).

"1 Gezin 1 Plan 1 Regisseur": a family is a ``Group``; its family compartment holds the
family ``CarePlan`` (``subject`` = the Group), shared ``Goal``\\s and a ``CareTeam`` with a
regisseur. Each member's own goals stay in that member's compartment; the family plan
points at them (``CarePlan.goal``).

Everything here reads through the caller's :class:`Repository`, so what comes back is what
the one access decision (``consent/decision.py``) lets that caller see: a member sees the
family compartment, a partner what a member's Consent granted it, and of the members' own
goals only those it may see. Nothing is filtered here. ``consent/family.py``
``families_of`` says which families an inwoner belongs to.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import orjson
from sqlalchemy import Connection

from vault.fhir.repository import Repository
from vault.kernel.fhirdata import split_reference

__all__ = ["FamilyPlan", "family_plan", "regisseurs"]

REGISSEUR = "regisseur"


@dataclass(frozen=True, slots=True)
class FamilyPlan:
    """What the caller may see of one family's plan; empty lists where it may see nothing."""

    family_id: str
    group: dict[str, Any] | None
    plans: list[dict[str, Any]] = field(default_factory=list)
    shared_goals: list[dict[str, Any]] = field(default_factory=list)
    teams: list[dict[str, Any]] = field(default_factory=list)
    # Members' own goals the family plan points at, those the caller may see.
    member_goals: list[dict[str, Any]] = field(default_factory=list)

    @property
    def visible(self) -> bool:
        return bool(self.group or self.plans or self.shared_goals or self.teams)


def _all(
    repo: Repository, conn: Connection, resource_type: str, params: list[tuple[str, str]]
) -> Iterator[Any]:
    query = repo.parse(resource_type, [*params, ("_count", "100")], lenient=False)
    while True:
        page = repo.search(conn, query)
        yield page
        if page.next_cursor is None:
            return
        query.cursor = page.next_cursor


def _bodies(stored: list[Any]) -> list[dict[str, Any]]:
    return [orjson.loads(s.body) for s in stored if s.body is not None]


def family_plan(repo: Repository, conn: Connection, family_id: str) -> FamilyPlan:
    """The family ``family_id``'s plan, as the caller of ``repo`` may see it."""
    in_family = [("subject", f"Group/{family_id}")]
    groups = [
        b for p in _all(repo, conn, "Group", [("_id", family_id)]) for b in _bodies(p.matches)
    ]
    plans: list[dict[str, Any]] = []
    member_goals: dict[str, dict[str, Any]] = {}
    for page in _all(repo, conn, "CarePlan", [*in_family, ("_include", "CarePlan:goal")]):
        plans.extend(_bodies(page.matches))
        for goal in _bodies(page.includes):
            if (goal.get("subject") or {}).get("reference") != f"Group/{family_id}":
                member_goals[goal["id"]] = goal
    shared = [b for p in _all(repo, conn, "Goal", in_family) for b in _bodies(p.matches)]
    teams = [b for p in _all(repo, conn, "CareTeam", in_family) for b in _bodies(p.matches)]
    return FamilyPlan(
        family_id,
        groups[0] if groups else None,
        plans,
        shared,
        teams,
        [member_goals[k] for k in sorted(member_goals)],
    )


def regisseurs(team: dict[str, Any]) -> list[str]:
    """The references of a CareTeam's participants whose role is regisseur."""
    found = []
    for participant in team.get("participant") or []:
        words = {
            str(value).casefold()
            for role in participant.get("role") or []
            for value in [role.get("text"), *(c.get("code") for c in role.get("coding") or [])]
            if value
        }
        member = split_reference((participant.get("member") or {}).get("reference"))
        if REGISSEUR in words and member is not None:
            found.append(f"{member[0]}/{member[1]}")
    return found
