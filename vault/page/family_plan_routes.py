"""Ons gezinsplan: the family plan a member belongs to, as that member may see it.

"1 Gezin 1 Plan 1 Regisseur" (issue 17 item 3, docs/family.md): the family's shared goals,
what was agreed at the samenwerkoverleg, who the regisseur is, and which of the member's
own goals the family plan points at. Everything is read through the visitor's own
Repository (``fhir/family.py``), so the page shows what the one access decision lets this
inwoner (or whoever acts for her) see: the family compartment she is a member of, and of
the other members' own parts nothing but what they let her see.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from fastapi import APIRouter, Request
from sqlalchemy import Connection
from starlette.responses import Response

from vault.consent.family import families_of
from vault.fhir.family import FamilyPlan, family_plan, regisseurs
from vault.fhir.repository import Repository
from vault.page import data
from vault.page.web import ManagerDep, read_in, render, repo_for

router = APIRouter(tags=["consent page"], include_in_schema=False)


@dataclass(slots=True)
class Agreement:
    text: str
    who: str | None


@dataclass(slots=True)
class FamilyView:
    name: str
    others: int  # members besides the inwoner
    regisseurs: list[str] = field(default_factory=list)
    shared: list[str] = field(default_factory=list)
    agreements: list[Agreement] = field(default_factory=list)
    own_goals: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def family_views(repo: Repository, conn: Connection, patient_id: str) -> list[FamilyView]:
    """The family plans ``patient_id`` is a member of, as the caller of ``repo`` sees them."""
    views = []
    for family_id in families_of(conn, patient_id):
        plan = family_plan(repo, conn, family_id)
        if plan.visible:
            views.append(_view(repo, conn, plan, patient_id))
    return views


def _view(repo: Repository, conn: Connection, plan: FamilyPlan, patient_id: str) -> FamilyView:
    group = plan.group or {}
    members = {
        (m.get("entity") or {}).get("reference")
        for m in group.get("member") or []
        if isinstance(m, dict) and not m.get("inactive")
    }
    me = f"Patient/{patient_id}"
    view = FamilyView(
        name=str(group.get("name") or "Jullie gezin"),
        others=len(members - {me, None}),
    )
    for team in plan.teams:
        view.regisseurs += [data.name_of(repo, conn, ref) for ref in regisseurs(team)]
    view.shared = [_text(goal) for goal in plan.shared_goals]
    for care_plan in plan.plans:
        for activity in care_plan.get("activity") or []:
            detail = activity.get("detail") or {}
            if not detail.get("description"):
                continue
            performers = [(p or {}).get("reference") for p in detail.get("performer") or [] if p]
            who = None
            if performers and performers[0] == me:
                who = "Jij"
            elif performers and performers[0]:
                name = data.name_of(repo, conn, performers[0])
                who = None if name == "Onbekend" else name
            view.agreements.append(Agreement(str(detail["description"]), who))
        view.notes += [str(n["text"]) for n in care_plan.get("note") or [] if n.get("text")]
    view.own_goals = [
        _text(goal)
        for goal in plan.member_goals
        if (goal.get("subject") or {}).get("reference") == me
    ]
    return view


def _text(goal: dict[str, Any]) -> str:
    return str((goal.get("description") or {}).get("text") or "Een doel zonder woorden")


@router.get("/gezin")
def family(request: Request, visitor: ManagerDep) -> Response:
    """Ons gezinsplan: one section per family plan the inwoner is a member of."""
    repo = repo_for(request, visitor)
    views = read_in(request, lambda conn: family_views(repo, conn, visitor.patient_id))
    return render(request, "family_plan.html", {"families": views}, visitor=visitor)
