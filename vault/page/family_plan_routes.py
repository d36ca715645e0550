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
from starlette.datastructures import FormData
from starlette.responses import Response

from vault.consent.family import families_of, family_named
from vault.fhir.family import FamilyPlan, family_plan, regisseurs
from vault.fhir.repository import Repository
from vault.kernel.runtime import now_micros
from vault.oauth.sessions import Visitor
from vault.page import data, family_data, sharing_data
from vault.page.sharing_routes import deciding_stage
from vault.page.web import (
    FormDep,
    ManagerDep,
    Refused,
    grantee_of,
    read_in,
    render,
    repo_for,
    see_other,
    text_of,
    write_through,
)

router = APIRouter(tags=["consent page"], include_in_schema=False)


@dataclass(slots=True)
class Agreement:
    text: str
    who: str | None


@dataclass(slots=True)
class FamilyView:
    family_id: str
    name: str
    others: int  # members besides the inwoner
    regisseurs: list[str] = field(default_factory=list)
    shared: list[str] = field(default_factory=list)
    agreements: list[Agreement] = field(default_factory=list)
    own_goals: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    # Who may see the family plan because of her own Consents (grantee, name), who waits
    # for a "ja" (a child of 12 to 15 and a parent), and whom she could let see it.
    shares: list[tuple[str, str]] = field(default_factory=list)
    waiting: int = 0
    choices: list[tuple[str, str]] = field(default_factory=list)


def family_views(repo: Repository, conn: Connection, patient_id: str) -> list[FamilyView]:
    """The family plans ``patient_id`` is a member of, as the caller of ``repo`` sees them,
    with whom her own Consents let see each one."""
    views = []
    consents = data.compartment_search(repo, conn, "Consent", patient_id)
    for family_id in families_of(conn, patient_id):
        plan = family_plan(repo, conn, family_id)
        if not plan.visible:
            continue
        view = _view(repo, conn, plan, patient_id, family_id)
        rules = _rules_of(conn, consents, patient_id, family_id)
        granted = sorted(
            {grantee for c in rules if c.get("status") == "active" for grantee in _actors(c)}
        )
        view.shares = sorted(
            ((g, data.name_of(repo, conn, g)) for g in granted), key=lambda s: s[1].casefold()
        )
        view.waiting = sum(c.get("status") == "proposed" for c in rules)
        view.choices = sharing_data.other_organizations(repo, conn, granted)
        views.append(view)
    return views


def _rules_of(
    conn: Connection, consents: list[dict[str, Any]], patient_id: str, family_id: str
) -> list[dict[str, Any]]:
    """Her Consents about this family's plan (in any status)."""
    return [c for c in consents if family_named(conn, patient_id, c) == family_id]


def _her_rules(
    repo: Repository, conn: Connection, visitor: Visitor, family_id: str
) -> list[dict[str, Any]]:
    consents = data.compartment_search(repo, conn, "Consent", visitor.patient_id)
    return _rules_of(conn, consents, visitor.patient_id, family_id)


def _actors(consent: dict[str, Any]) -> list[str]:
    return [
        str(((a or {}).get("reference") or {}).get("reference"))
        for a in (consent.get("provision") or {}).get("actor") or []
        if ((a or {}).get("reference") or {}).get("reference")
    ]


def _view(
    repo: Repository, conn: Connection, plan: FamilyPlan, patient_id: str, family_id: str
) -> FamilyView:
    group = plan.group or {}
    members = {
        (m.get("entity") or {}).get("reference")
        for m in group.get("member") or []
        if isinstance(m, dict) and not m.get("inactive")
    }
    me = f"Patient/{patient_id}"
    view = FamilyView(
        family_id=family_id,
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

    def load(conn: Connection) -> tuple[list[FamilyView], str]:
        return (
            family_views(repo, conn, visitor.patient_id),
            family_data.stage_of(conn, visitor.patient_id, now_micros()),
        )

    views, stage = read_in(request, load)
    # A child under 12 reads the plan; her parents decide who else may see it.
    may_share = stage != "parents" or visitor.related_person is not None
    return render(
        request,
        "family_plan.html",
        {"families": views, "may_share": may_share},
        visitor=visitor,
    )


# -- who may see the family plan (docs/family.md section 6) ---------------------------------


@dataclass(frozen=True, slots=True)
class _Choice:
    family_id: str
    family_name: str
    plan: str  # the family CarePlan's reference
    grantee: str
    name: str


def _choice(request: Request, visitor: Visitor, family_id: str, form: FormData) -> _Choice:
    """The family and the party of a form, each checked: a family she belongs to with a
    plan she sees, and a party of the vault's directory."""
    kind, _, ident = text_of(form, "grantee", limit=200).partition("/")
    grantee = grantee_of(kind, ident)
    repo = repo_for(request, visitor)

    def load(conn: Connection) -> _Choice:
        if family_id not in families_of(conn, visitor.patient_id):
            raise Refused(404, "Niet gevonden", "Dit gezinsplan kennen we niet.")
        plan = family_plan(repo, conn, family_id)
        if not plan.plans:
            raise Refused(404, "Niet gevonden", "Dit gezinsplan kennen we niet.")
        name = data.name_of(repo, conn, grantee)
        if name == "Onbekend":
            raise Refused(404, "Niet gevonden", "Deze organisatie of persoon kennen we niet.")
        family_name = str((plan.group or {}).get("name") or "Jullie gezin")
        return _Choice(family_id, family_name, f"CarePlan/{plan.plans[0]['id']}", grantee, name)

    return read_in(request, load)


@router.post("/gezin/{family_id}/delen/controleer")
def family_share_check(
    request: Request, family_id: str, visitor: ManagerDep, form: FormDep
) -> Response:
    """Read back, before it is saved, what the party will see of the family plan."""
    choice = _choice(request, visitor, family_id, form)
    together = deciding_stage(request, visitor) == "together"
    return render(
        request,
        "family_share.html",
        # The Consent's last day, as build_consent writes it (period.end, inclusive).
        {"choice": choice, "until": data.default_until(), "proposal": together},
        visitor=visitor,
    )


@router.post("/gezin/{family_id}/delen/opslaan")
def family_share_save(
    request: Request, family_id: str, visitor: ManagerDep, form: FormDep
) -> Response:
    """Her Consent that lets the party see the family plan (from 12 to 15 a proposal)."""
    choice = _choice(request, visitor, family_id, form)
    together = deciding_stage(request, visitor) == "together"
    repo = repo_for(request, visitor)
    consent = sharing_data.build_consent(
        patient_id=visitor.patient_id,
        grantee=choice.grantee,
        parts=(),
        may_change=(),
        until=data.default_until(),
        performer=family_data.signer(visitor),
        proposed=together,
        family_plan=choice.plan,
    )
    # Read first, write after: a search is logged, and the access log waits for no write.
    rules = read_in(request, lambda conn: _her_rules(repo, conn, visitor, family_id))
    updates: list[sharing_data.Update] = (
        [(str(consent["id"]), consent, None)]
        if together
        else sharing_data.sharing_updates(rules, choice.grantee, consent)
    )
    write_through(request, repo, lambda conn: sharing_data.apply_updates(repo, conn, updates))
    return see_other("/?voorgesteld=1" if together else "/gezin?opgeslagen=1")


@router.post("/gezin/{family_id}/delen/stoppen")
def family_share_stop(
    request: Request, family_id: str, visitor: ManagerDep, form: FormDep
) -> Response:
    """The party may no longer see the family plan because of her Consents."""
    choice = _choice(request, visitor, family_id, form)
    deciding_stage(request, visitor)
    repo = repo_for(request, visitor)
    rules = read_in(request, lambda conn: _her_rules(repo, conn, visitor, family_id))
    updates = sharing_data.revoke_updates(rules, choice.grantee)
    write_through(request, repo, lambda conn: sharing_data.apply_updates(repo, conn, updates))
    return see_other("/gezin?gestopt=1")
