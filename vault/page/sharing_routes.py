"""Wie mag wat zien: the parties and apps with access, choosing what a party may see (read
back before it is saved), "Stop met alles delen", and looking as a party."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, date, datetime
from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Request
from sqlalchemy import Connection
from starlette.datastructures import FormData
from starlette.responses import Response

from vault.audit.log import AuditRecord
from vault.consent.family import family_consent_ids
from vault.fhir.repository import Repository
from vault.kernel.errors import FhirError
from vault.kernel.runtime import now_micros
from vault.oauth.apps import apps_with_access, stop_apps
from vault.oauth.models import OAuthClient
from vault.oauth.sessions import (
    Visitor,
)
from vault.page import data, family_data, network_data, sharing_data
from vault.page.web import (
    BAD_DAY,
    FormDep,
    ManagerDep,
    Refused,
    current_visitor,
    fhir_refused,
    grantee_of,
    read_in,
    render,
    repo_for,
    runtime_of,
    see_other,
    text_of,
    write_in,
    write_through,
)
from vault.page.words import (
    STOP_APP_QUERY,
    app_may,
    summarize,
)

router = APIRouter(tags=["consent page"], include_in_schema=False)


# -- wie mag wat zien ------------------------------------------------------------------------


@router.get("/")
def home(request: Request) -> Response:
    """Who may see what (for the inwoner), or what was shared with you (for the network)."""
    visitor = current_visitor(request)
    if visitor is None:
        return see_other("/inloggen")
    repo = repo_for(request, visitor)
    # The child's name in the age notice is the page's heading, not a look at her data:
    # read without an access-log entry, as the header's name is (web.render).
    quiet = Repository(runtime_of(request), visitor.context(), logged=False)
    if not visitor.may_manage:
        assert visitor.related_person is not None
        shown = read_in(
            request,
            lambda conn: sharing_data.preview(
                runtime_of(request),
                conn,
                grantee=visitor.related_person or "",
                patient_id=visitor.patient_id,
                account_id=visitor.account_id,
            ),
        )
        notice = read_in(
            request, lambda conn: family_data.age_notice(quiet, conn, visitor, now_micros())
        )
        return render(
            request,
            "shared_with_me.html",
            {"preview": shown, "age": notice},
            visitor=visitor,
        )

    stopped = request.query_params.get("gestopt") == "1"

    def load(conn: Connection) -> dict[str, Any]:
        around = sharing_data.parties(repo, conn, visitor.patient_id)
        return {
            # A child's vault: who decides, from when, and what waits for whose "ja".
            **family_data.home_parts(repo, quiet, conn, visitor, now_micros()),
            "parties": around,
            "others": sharing_data.other_organizations(repo, conn, (p.reference for p in around)),
            "apps": apps_with_access(conn, patient_id=visitor.patient_id, now=now_micros()),
            # After "stop": exactly who still may act for her, and why.
            "remaining": (
                network_data.remaining_roles(repo, conn, patient_id=visitor.patient_id)
                if stopped
                else []
            ),
            "stopped_app": _app_name(conn, request.query_params.get("app_gestopt", "")),
        }

    context = read_in(request, load)
    return render(
        request, "home.html", {**context, "app_may": app_may, "stopped": stopped}, visitor=visitor
    )


def _app_name(conn: Connection, client_id: str) -> str | None:
    if not client_id or len(client_id) > 64:
        return None
    from sqlalchemy import select

    return conn.execute(select(OAuthClient.name).where(OAuthClient.client_id == client_id)).scalar()


def _log_app_stop(request: Request, visitor: Visitor, client_ids: Iterable[str]) -> None:
    """ "Stop" is in the access log: who stopped which app, and when."""
    now = now_micros()
    records = [
        AuditRecord(
            patient_id=visitor.patient_id,
            interaction="delete",
            permitted=True,
            client_id=None,
            organization=None,
            account_id=visitor.account_id,
            query=STOP_APP_QUERY + client_id,
            representative=visitor.related_person,
            recorded=now,
        )
        for client_id in client_ids
    ]
    if records:
        runtime_of(request).audit.record(records)


@router.post("/apps/{client_id}/stoppen")
def app_stop(request: Request, client_id: str, visitor: ManagerDep, _form: FormDep) -> Response:
    """End every token of one app for the inwoner: its next request is refused."""

    def work(conn: Connection) -> bool:
        live = apps_with_access(conn, patient_id=visitor.patient_id, now=now_micros())
        if not any(app.client_id == client_id for app in live):
            return False
        stop_apps(conn, patient_id=visitor.patient_id, client_id=client_id)
        return True

    if not write_in(request, work):
        raise Refused(404, "Niet gevonden", "Deze app kennen we niet.")
    _log_app_stop(request, visitor, [client_id])
    return see_other(f"/?app_gestopt={quote(client_id)}")


@router.post("/delen/nieuw")
def choose_new(request: Request, visitor: ManagerDep, form: FormDep) -> Response:
    """Pick an organisation from the vault's directory to share with."""
    grantee = text_of(form, "grantee", limit=200)
    kind, _, ident = grantee.partition("/")
    grantee_of(kind, ident)
    return see_other(f"/delen/{kind}/{quote(ident)}")


def _party(request: Request, visitor: Visitor, grantee: str) -> sharing_data.Party:
    repo = repo_for(request, visitor)

    def load(conn: Connection) -> sharing_data.Party:
        for party in sharing_data.parties(repo, conn, visitor.patient_id):
            if party.reference == grantee:
                return party
        name = data.name_of(repo, conn, grantee)
        if name == "Onbekend":
            raise Refused(404, "Niet gevonden", "Deze organisatie of persoon kennen we niet.")

        return sharing_data.Party(
            grantee, name, "organisatie", "", summarize(name, [], now=now_micros())
        )

    return read_in(request, load)


@router.get("/delen/{kind}/{ident}")
def sharing_form(request: Request, kind: str, ident: str, visitor: ManagerDep) -> Response:
    """Choose what one organisation or person may see, and until when."""
    party = _party(request, visitor, grantee_of(kind, ident))
    until = party.summary.until
    return _sharing_page(
        request,
        visitor,
        party,
        seen=party.summary.seen,
        changed=party.summary.changed,
        until=data.dutch_day(day_of(until - 1) if until else data.default_until()),
    )


def _sharing_page(
    request: Request,
    visitor: Visitor,
    party: sharing_data.Party,
    *,
    seen: Iterable[str],
    changed: Iterable[str],
    until: str,
    error: str | None = None,
) -> Response:
    """The choices of one party: as saved, or as just ticked when the date was wrong."""
    return render(
        request,
        "share.html",
        {
            "party": party,
            "seen": set(seen),
            "changed": set(changed),
            "until": until,
            "error": error,
        },
        visitor=visitor,
        status=400 if error else 200,
    )


def day_of(micros: int) -> date:
    # Consent periods are whole days in UTC, as compile.py reads them.
    return datetime.fromtimestamp(micros / 1_000_000, UTC).date()


class BadDay(ValueError):
    """The end date could not be read as a day."""


def _proposed(
    visitor: Visitor,
    grantee: str,
    form: FormData,
    consent_id: str | None,
    *,
    proposal: bool = False,
) -> Any:
    parts = [p for p in form.getlist("part") if isinstance(p, str)]
    change = [p for p in form.getlist("change") if isinstance(p, str)]
    if text_of(form, "what") == "niets":
        parts, change = [], []
    try:
        until = data.parse_day(text_of(form, "until", limit=20))
    except ValueError:
        raise BadDay from None
    return (
        sharing_data.build_consent(
            patient_id=visitor.patient_id,
            grantee=grantee,
            parts=parts,
            may_change=change,
            until=until,
            performer=family_data.signer(visitor),
            proposed=proposal,
            consent_id=consent_id,
        ),
        parts,
        change,
    )


def deciding_stage(request: Request, visitor: Visitor) -> str:
    """Who decides for this vault now (consent/representation.py): for the page's writes."""
    when = read_in(
        request, lambda conn: family_data.stage_of(conn, visitor.patient_id, now_micros())
    )
    if when == "parents" and visitor.related_person is None:
        raise Refused(
            403,
            "Je ouders beslissen",
            "Je bent nog geen 12. Je ouders met gezag beslissen wie je plan mag zien.",
        )
    return when


@router.post("/delen/{kind}/{ident}/controleer")
def sharing_check(
    request: Request, kind: str, ident: str, visitor: ManagerDep, form: FormDep
) -> Response:
    """Read the change back in one sentence, made from the grants it compiles to."""
    grantee = grantee_of(kind, ident)
    party = _party(request, visitor, grantee)
    together = deciding_stage(request, visitor) == "together"
    try:
        consent, parts, change = _proposed(visitor, grantee, form, None)
    except BadDay:
        # The same page again, with every tick kept and the mistake at the field.
        return _sharing_page(
            request,
            visitor,
            party,
            seen=(p for p in form.getlist("part") if isinstance(p, str)),
            changed=(p for p in form.getlist("change") if isinstance(p, str)),
            until=text_of(form, "until", limit=20),
            error=BAD_DAY,
        )
    try:
        summary = sharing_data.proposal(consent, patient_id=visitor.patient_id, name=party.name)
    except FhirError as exc:
        raise fhir_refused(exc) from None
    return render(
        request,
        "confirm.html",
        {
            "party": party,
            "summary": summary,
            "parts": parts,
            "change": change,
            "until": text_of(form, "until", limit=20),
            "what": text_of(form, "what", limit=20),
            "action": f"/delen/{kind}/{quote(ident)}/opslaan",
            # 12 to 15: sharing is a proposal the other must say "ja" to; stopping is not.
            "proposal": together and bool(parts),
        },
        visitor=visitor,
    )


@router.post("/delen/{kind}/{ident}/opslaan")
def sharing_save(
    request: Request, kind: str, ident: str, visitor: ManagerDep, form: FormDep
) -> Response:
    """Write the Consent (a new version of this grantee's own Consent, or a new one)."""
    grantee = grantee_of(kind, ident)
    repo = repo_for(request, visitor)

    consents, family_rules = read_in(
        request,
        lambda conn: (
            data.compartment_search(repo, conn, "Consent", visitor.patient_id),
            family_consent_ids(conn, visitor.patient_id),
        ),
    )
    # What she lets the party see of a family plan is a rule of its own (docs/family.md):
    # changing what it sees of her own plan leaves it; stopping the party ends it too.
    own_rules = [c for c in consents if str(c["id"]) not in family_rules]
    together = deciding_stage(request, visitor) == "together"
    reuse = None if together else sharing_data.reusable_consent_id(own_rules, grantee)
    try:
        consent, parts, _ = _proposed(visitor, grantee, form, reuse, proposal=together)
    except BadDay:
        raise Refused(400, "Datum klopt niet", BAD_DAY) from None
    if parts and together:
        # A proposal: nothing changes until the other says "ja" (family_data.agree_updates).
        updates: list[sharing_data.Update] = [(str(consent["id"]), consent, None)]
    elif parts:
        updates = sharing_data.sharing_updates(own_rules, grantee, consent)
    else:
        updates = sharing_data.revoke_updates(consents, grantee)
    write_through(request, repo, lambda conn: sharing_data.apply_updates(repo, conn, updates))
    return see_other("/?voorgesteld=1" if parts and together else "/?opgeslagen=1")


@router.post("/voorstel/{consent_id}/{answer}")
def proposal_answer(
    request: Request, consent_id: str, answer: str, visitor: ManagerDep, _form: FormDep
) -> Response:
    """A child of 12 to 15 and a parent: "ja" signs a proposal (it becomes active), "nee"
    rejects it (or withdraws one's own)."""
    if answer not in ("ja", "nee") or len(consent_id) > 64:
        raise Refused(404, "Niet gevonden", "Dit voorstel kennen we niet.")
    repo = repo_for(request, visitor)
    deciding_stage(request, visitor)

    def decide(conn: Connection) -> list[sharing_data.Update]:
        consents = data.compartment_search(repo, conn, "Consent", visitor.patient_id)
        if answer == "ja":
            return family_data.agree_updates(conn, consents, consent_id, visitor)
        return family_data.refuse_update(consents, consent_id)

    updates = read_in(request, decide)
    if not updates:
        raise Refused(404, "Niet gevonden", "Dit voorstel kennen we niet.")
    write_through(request, repo, lambda conn: sharing_data.apply_updates(repo, conn, updates))
    return see_other("/?opgeslagen=1" if answer == "ja" else "/?geweigerd=1")


@router.post("/stoppen")
def stop_check(request: Request, visitor: ManagerDep, _form: FormDep) -> Response:
    """Ask once more before all sharing stops."""
    return render(request, "stop.html", {}, visitor=visitor)


@router.post("/stoppen/zeker")
def stop_all(request: Request, visitor: ManagerDep, _form: FormDep) -> Response:
    """Every Consent becomes inactive, every app stops, every machtiging ends."""
    repo = repo_for(request, visitor)
    consents = read_in(
        request, lambda conn: data.compartment_search(repo, conn, "Consent", visitor.patient_id)
    )
    apps = read_in(
        request,
        lambda conn: apps_with_access(conn, patient_id=visitor.patient_id, now=now_micros()),
    )
    write_through(
        request,
        repo,
        lambda conn: network_data.stop_everything(
            repo, conn, patient_id=visitor.patient_id, consents=consents
        ),
    )
    _log_app_stop(request, visitor, [app.client_id for app in apps])
    return see_other("/?gestopt=1")


@router.get("/bekijk/{kind}/{ident}")
def look_as(request: Request, kind: str, ident: str, visitor: ManagerDep) -> Response:
    """What this partner gets right now, from its own access decision."""
    grantee = grantee_of(kind, ident)
    party = _party(request, visitor, grantee)
    shown = read_in(
        request,
        lambda conn: sharing_data.preview(
            runtime_of(request),
            conn,
            grantee=grantee,
            patient_id=visitor.patient_id,
            account_id=visitor.account_id,
            previewer=visitor.context(),
        ),
    )
    return render(request, "look_as.html", {"party": party, "preview": shown}, visitor=visitor)
