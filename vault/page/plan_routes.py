"""Mijn plan: goals in own words and order, what I do, what I need, scores, the plan's step,
the rating of the way of working, and whether the inwoner is counted."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Request
from sqlalchemy import Connection
from starlette.responses import Response

from vault.consent.family import families_of
from vault.fhir.repository import Repository
from vault.fhir.resources import ID_PATTERN
from vault.kernel.errors import FhirError
from vault.oauth.sessions import (
    Visitor,
    cookie_is_secure,
)
from vault.page import data, easy, plan_data
from vault.page.web import (
    FormDep,
    ManagerDep,
    Refused,
    read_in,
    render,
    repo_for,
    runtime_of,
    see_other,
    text_of,
    write_through,
)
from vault.reports import page as outcome_page
from vault.reports.codes import PHASES
from vault.reports.collect import organization_named

router = APIRouter(tags=["consent page"], include_in_schema=False)


# -- mijn plan -------------------------------------------------------------------------------


@router.get("/plan")
def plan(request: Request, visitor: ManagerDep, weergave: str = "") -> Response:
    """Wat wil ik, wat kan ik, wat heb ik nodig, and how it is going.

    ``?weergave=eenvoudig`` shows the same plan in easier words (and ``gewoon`` the normal
    view); the choice is remembered in a cookie, so the menu's "Mijn plan" keeps it.
    """
    repo = repo_for(request, visitor)
    current = read_in(
        request, lambda conn: plan_data.read_plan(repo, conn, patient_id=visitor.patient_id)
    )
    view = easy.view_of(weergave, request.cookies.get(easy.VIEW_COOKIE))
    if view == "eenvoudig":
        response = _easy_page(request, visitor, current)
    else:
        response = _normal_page(request, visitor, repo, current)
    if weergave == view:
        response.set_cookie(
            easy.VIEW_COOKIE,
            view,
            max_age=365 * 24 * 3600,
            path="/",
            httponly=True,
            samesite="lax",
            secure=cookie_is_secure(request, runtime_of(request).settings),
        )
    return response


def _easy_page(request: Request, visitor: Visitor, current: plan_data.Plan) -> Response:
    """The eenvoudig view: one short sentence per item, a pictogram per life domain, and a
    "Lees voor" button; the one page that may run a script (a file of this site)."""
    shown = easy.easy_plan(
        current,
        patient_id=visitor.patient_id,
        phase=outcome_page.plan_phase(current.care_plan),
    )
    return render(
        request,
        "plan_easy.html",
        {"easy": shown, "easy_domains": easy.EASY_DOMAINS},
        visitor=visitor,
        scripts=True,
    )


def _normal_page(
    request: Request, visitor: Visitor, repo: Repository, current: plan_data.Plan
) -> Response:
    in_family = read_in(request, lambda conn: bool(families_of(conn, visitor.patient_id)))
    return render(
        request,
        "plan.html",
        {
            "in_family": in_family,
            **_outcome_context(request, repo, visitor, current.care_plan),
            "plan": current,
            "chart": chart(current.scores),
            "short_day": _short_day,
            "goal_text": plan_data.goal_text,
            "goal_priority": plan_data.goal_priority,
            "goal_domain": plan_data.goal_domain,
            "priorities": data.PRIORITIES,
        },
        visitor=visitor,
    )


def _plan_write(
    request: Request, visitor: Visitor, work: Callable[[Repository, Connection], None]
) -> Response:
    repo = repo_for(request, visitor)
    write_through(request, repo, lambda conn: work(repo, conn))
    return see_other("/plan?opgeslagen=1")


@router.post("/plan/doel")
def goal_save(request: Request, visitor: ManagerDep, form: FormDep) -> Response:
    """Add a goal, or change one (own words, own ranking)."""
    text = text_of(form, "text")
    if not text:
        raise Refused(400, "Vul iets in", "Schrijf in je eigen woorden wat je wilt.")
    goal_id = text_of(form, "goal_id", limit=64) or None
    if goal_id is not None and not ID_PATTERN.match(goal_id):
        raise Refused(404, "Niet gevonden", "Dit doel kennen we niet.")
    existing = None
    if goal_id is not None:
        reader = repo_for(request, visitor)
        try:
            existing = read_in(request, lambda conn: data.load(reader.read(conn, "Goal", goal_id)))
        except FhirError:
            raise Refused(404, "Niet gevonden", "Dit doel kennen we niet.") from None
    return _plan_write(
        request,
        visitor,
        lambda repo, conn: plan_data.save_goal(
            repo,
            conn,
            patient_id=visitor.patient_id,
            existing=existing,
            text=text,
            priority=text_of(form, "priority", limit=40),
            domain=text_of(form, "domain", limit=40),
        ),
    )


def _plan_now(request: Request, visitor: Visitor) -> plan_data.Plan:
    """The plan as it is, read before a write changes it (the write checks its version)."""
    reader = repo_for(request, visitor)
    return read_in(
        request, lambda conn: plan_data.read_plan(reader, conn, patient_id=visitor.patient_id)
    )


@router.post("/plan/doel/volgorde")
def goal_move(request: Request, visitor: ManagerDep, form: FormDep) -> Response:
    """Move a goal one place up or down in the inwoner's own order."""
    goal_id = text_of(form, "goal_id", limit=64)
    direction = text_of(form, "richting", limit=10)
    if direction not in ("omhoog", "omlaag") or not ID_PATTERN.match(goal_id):
        raise Refused(400, "Dat klopt niet", "Kies een doel en omhoog of omlaag.")
    goals = _plan_now(request, visitor).goals
    if not any(g.get("id") == goal_id for g in goals):
        raise Refused(404, "Niet gevonden", "Dit doel kennen we niet.")
    repo = repo_for(request, visitor)
    write_through(
        request,
        repo,
        lambda conn: plan_data.move_goal(
            repo, conn, goals=goals, goal_id=goal_id, up=direction == "omhoog"
        ),
    )
    # Back to the goal that moved, with focus on its button: the next press moves it again.
    return see_other(f"/plan?verplaatst={quote(goal_id)}&richting={direction}")


@router.post("/plan/activiteit")
def activity_save(request: Request, visitor: ManagerDep, form: FormDep) -> Response:
    """Add or change a line of 'wat kan ik' / 'wat heb ik nodig'."""
    text = text_of(form, "text")
    if not text:
        raise Refused(400, "Vul iets in", "Schrijf op wat je doet of wat je nodig hebt.")
    raw_index = text_of(form, "index", limit=6)
    index = int(raw_index) if raw_index.isdigit() else None
    performer = f"Patient/{visitor.patient_id}"
    care_plan = _plan_now(request, visitor).care_plan
    return _plan_write(
        request,
        visitor,
        lambda repo, conn: plan_data.save_activity(
            repo,
            conn,
            care_plan=care_plan,
            patient_id=visitor.patient_id,
            index=index,
            text=text,
            performer=performer,
        ),
    )


@router.post("/plan/cijfer")
def score_add(request: Request, visitor: ManagerDep, form: FormDep) -> Response:
    """A new 1-10 score for one life domain, dated today."""
    domain = text_of(form, "domain", limit=40)
    raw = text_of(form, "score", limit=3)
    if domain not in data.DOMAINS or not raw.isdigit() or not 1 <= int(raw) <= 10:
        raise Refused(400, "Cijfer klopt niet", "Kies een onderwerp en een cijfer van 1 tot 10.")
    return _plan_write(
        request,
        visitor,
        lambda repo, conn: plan_data.add_score(
            repo, conn, patient_id=visitor.patient_id, domain=domain, score=int(raw)
        ),
    )


# -- outcome reports: being counted, the plan's phase, the own rating (issue 14) -----------


def _outcome_context(
    request: Request, repo: Repository, visitor: Visitor, care_plan: dict[str, Any] | None
) -> dict[str, Any]:
    pid = visitor.patient_id
    return {
        "phases": PHASES,
        "phase": outcome_page.plan_phase(care_plan),
        "counting": outcome_page.counting(
            read_in(request, lambda c: outcome_page.statistics_consents(repo, c, patient_id=pid))
        ),
        "rating": read_in(request, lambda c: outcome_page.latest_rating(repo, c, patient_id=pid)),
    }


@router.post("/plan/fase")
def phase_save(request: Request, visitor: ManagerDep, form: FormDep) -> Response:
    """The phase the plan is in: contact, verkennen, samenwerkoverleg, samen op weg, evaluatie."""
    phase = text_of(form, "fase", limit=40)
    if phase not in PHASES:
        raise Refused(400, "Dat klopt niet", "Kies een van de stappen.")
    care_plan = _plan_now(request, visitor).care_plan
    return _plan_write(
        request,
        visitor,
        lambda repo, conn: outcome_page.set_phase(
            repo, conn, care_plan=care_plan, patient_id=visitor.patient_id, phase=phase
        ),
    )


@router.post("/plan/werkwijze")
def rating_add(request: Request, visitor: ManagerDep, form: FormDep) -> Response:
    """The inwoner's own mark, 1-10, for the way of working together."""
    raw = text_of(form, "cijfer", limit=3)
    if not raw.isdigit() or not 1 <= int(raw) <= 10:
        raise Refused(400, "Cijfer klopt niet", "Kies een cijfer van 1 tot 10.")
    return _plan_write(
        request,
        visitor,
        lambda repo, conn: outcome_page.add_rating(
            repo, conn, patient_id=visitor.patient_id, score=int(raw)
        ),
    )


@router.post("/plan/meetellen")
def counting_save(request: Request, visitor: ManagerDep, form: FormDep) -> Response:
    """Yes or no to being counted, without a name, in the gemeente's figures."""
    answer = text_of(form, "meetellen", limit=4)
    if answer not in ("ja", "nee"):
        raise Refused(400, "Dat klopt niet", "Kies ja of nee.")
    runtime = runtime_of(request)
    organization = organization_named(runtime, runtime.settings.report_organization)
    reader = repo_for(request, visitor)
    consents = read_in(
        request,
        lambda conn: outcome_page.statistics_consents(reader, conn, patient_id=visitor.patient_id),
    )
    return _plan_write(
        request,
        visitor,
        lambda repo, conn: outcome_page.set_counting(
            repo,
            conn,
            consents=consents,
            patient_id=visitor.patient_id,
            organization=organization,
            allow=answer == "ja",
        ),
    )


def _short_day(day: str) -> str:
    """ "2026-10-03" as "3-10-2026"."""
    return f"{int(day[8:10])}-{int(day[5:7])}-{day[:4]}"


COLOURS = ("#1f5fa8", "#a33b00", "#1d6b35", "#6b2d8f", "#7a5c00", "#8a1c3c")


def chart(scores: Mapping[str, list[tuple[str, int]]]) -> dict[str, Any]:
    """Line chart geometry for an inline SVG: x = moment, y = score 1-10."""
    dates = sorted({d for series in scores.values() for d, _ in series})
    width, height, left, top, bottom, right = 320, 200, 28, 10, 24, 10
    inner_w, inner_h = width - left - right, height - top - bottom

    def x(day: str) -> float:
        if len(dates) < 2:
            return left + inner_w / 2
        return round(left + inner_w * dates.index(day) / (len(dates) - 1), 1)

    def y(score: int) -> float:
        return round(top + inner_h * (10 - score) / 9, 1)

    lines = []
    for number, (domain, series) in enumerate(sorted(scores.items())):
        points = [(x(d), y(s), d, s) for d, s in series]
        lines.append(
            {
                "domain": data.DOMAINS.get(domain, domain),
                "colour": COLOURS[number % len(COLOURS)],
                "dash": "" if number < len(COLOURS) else "4 2",
                "points": points,
                "path": " ".join(f"{px},{py}" for px, py, _, _ in points),
            }
        )
    return {
        "width": width,
        "height": height,
        "lines": lines,
        "grid": [(y(s), s) for s in (1, 4, 7, 10)],
        # The first and the last day, with the year, inside the picture (issue 18: "10-1"
        # was cut off and had no year); every day is in the legend, as text that grows.
        "xlabels": [
            (left, _short_day(dates[0]), "start"),
            *([(width - right, _short_day(dates[-1]), "end")] if len(dates) > 1 else []),
        ]
        if dates
        else [],
        "left": left,
        "right": width - right,
        "bottom": height - bottom,
    }
