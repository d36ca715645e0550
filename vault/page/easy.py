"""Mijn plan, eenvoudig (issue 17 item 4): the same plan in words easier than B1.

The view changes words, not access: it is made from the ``Plan`` that ``plan_data.read_plan``
read with the visitor's own access decision, the same read as the normal view. Nothing here
reads or writes the vault.

Each item becomes one short sentence with its life domain as a pictogram and a plain word
(``EASY_DOMAINS``); her goals and lines of the plan stay in her own words. The sentences
themselves are in ``templates/plan_easy.html`` (so the catalogue test finds them); this module
only picks which sentence fits.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from vault.page.plan_data import Plan, goal_domain, goal_text
from vault.reports.codes import PHASES

__all__ = [
    "EASY_DOMAINS",
    "VIEW_COOKIE",
    "EasyItem",
    "EasyPlan",
    "EasyScore",
    "easy_plan",
    "view_of",
]

# The chosen view, remembered like the language: a link sets it, no script needed.
VIEW_COOKIE = "rk_weergave"
VIEWS = ("eenvoudig", "gewoon")

# A life domain in a short, everyday word ("Financiën" and "Dagbesteding" are hard words).
EASY_DOMAINS = {
    "financien": "Geld",
    "wonen": "Je huis",
    "relaties": "Mensen om je heen",
    "dagbesteding": "Werk en school",
    "gezondheid": "Je gezondheid",
    "opvoeding": "Je kinderen",
}


def view_of(asked: str | None, remembered: str | None) -> str:
    """The view to show: the one the link asks for, else the remembered one, else normal."""
    if asked in VIEWS:
        return str(asked)
    return "eenvoudig" if remembered == "eenvoudig" else "gewoon"


@dataclass(frozen=True, slots=True)
class EasyItem:
    """One goal or one line of the plan: a pictogram (life domain, may be empty), and text."""

    domain: str
    text: str
    who: str = ""  # "" for a goal; "ik", or a name, for a line of the plan


@dataclass(frozen=True, slots=True)
class EasyScore:
    domain: str
    now: int
    before: int | None


@dataclass(frozen=True, slots=True)
class EasyPlan:
    goals: list[EasyItem]
    mine: list[EasyItem]
    others: list[EasyItem]
    scores: list[EasyScore]
    step: int | None  # 1..5, the plan's step, if known
    steps: int


def _goal_domains(goals: list[dict[str, Any]]) -> dict[str, str]:
    return {f"Goal/{g.get('id')}": goal_domain(g) for g in goals if g.get("id")}


def _line_domain(detail: dict[str, Any], domains: dict[str, str]) -> str:
    """A line of the plan shows the pictogram of the goal it works on, if there is one."""
    for goal in detail.get("goal") or []:
        domain = domains.get(str((goal or {}).get("reference", "")), "")
        if domain:
            return domain
    return ""


def easy_plan(plan: Plan, *, patient_id: str, phase: str | None) -> EasyPlan:
    """The plan, item by item, as the eenvoudig view shows it."""
    domains = _goal_domains(plan.goals)
    goals = [EasyItem(goal_domain(g), goal_text(g)) for g in plan.goals if goal_text(g)]
    me = f"Patient/{patient_id}"
    mine: list[EasyItem] = []
    others: list[EasyItem] = []
    for _index, detail, who in [*plan.own, *plan.needed]:
        text = str(detail.get("description") or "")
        if not text:
            continue
        performer = ((detail.get("performer") or [{}])[0]).get("reference", "")
        if performer == me:
            mine.append(EasyItem(_line_domain(detail, domains), text, "ik"))
        else:
            others.append(EasyItem(_line_domain(detail, domains), text, who))
    scores = [
        EasyScore(domain, series[-1][1], series[-2][1] if len(series) > 1 else None)
        for domain, series in sorted(
            plan.scores.items(), key=lambda item: list(EASY_DOMAINS).index(item[0])
        )
        if series and domain in EASY_DOMAINS
    ]
    order = list(PHASES)
    step = order.index(phase) + 1 if phase in PHASES else None
    return EasyPlan(goals, mine, others, scores, step, len(order))
