"""The consent page at ``/``: the inwoner runs their own plan and decides who sees it.

Thin: sessions and CSRF live in ``oauth/sessions.py``, what is read and written in
``data.py`` (always through the Repository, with the caller's own AccessContext),
the sentences in ``words.py``. Every page is server-rendered HTML that works without
JavaScript and carries a strict Content-Security-Policy; every POST needs the session's
CSRF token.

Over 500 lines: the page's routes share its visitor, CSRF and rendering dependencies; splitting
them by part of the page (plan, sharing, network, log) is the next step of issue 15.
"""

from __future__ import annotations

import logging
import re
import secrets
import time
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, date, datetime
from inspect import isawaitable
from pathlib import Path
from typing import Annotated, Any, TypeVar
from urllib.parse import quote

import httpx
import orjson
from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from sqlalchemy import Connection
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import RedirectResponse, Response

from vault.audit.log import AuditRecord
from vault.consent.access import AccessContext
from vault.consent.representation import role_at, role_history
from vault.fhir.repository import Repository
from vault.fhir.resources import ID_PATTERN
from vault.kernel.config import OidcSettings
from vault.kernel.errors import FhirError
from vault.kernel.fhirdata import format_instant
from vault.kernel.runtime import Runtime, now_micros
from vault.kernel.urls import origin
from vault.oauth.accounts import MIN_PASSWORD_LENGTH, create_account
from vault.oauth.apps import apps_with_access, stop_apps
from vault.oauth.models import Account, OAuthClient, Token
from vault.oauth.sessions import (
    LOGIN_CSRF_COOKIE,
    SESSION_COOKIE,
    Visitor,
    cookie_is_secure,
    csrf_matches,
    end_session,
    load_visitor,
    log_in,
    needs_touch,
    set_session_cookie,
    start_session,
    touch_session,
)
from vault.page import data
from vault.page import oidc as page_oidc
from vault.page.catalogue import LANGUAGE_COOKIE, language_of, translator
from vault.page.words import (
    PARTS,
    STOP_APP_QUERY,
    app_may,
    describe_event,
    format_day,
    format_moment,
    group_visits,
    preview_actor,
    summarize,
)
from vault.reports import page as outcome_page
from vault.reports.codes import PHASES
from vault.reports.collect import organization_named

__all__ = ["install_page", "router"]

HERE = Path(__file__).parent
router = APIRouter(tags=["consent page"], include_in_schema=False)
templates = Jinja2Templates(directory=str(HERE / "templates"))
templates.env.globals.update(
    format_day=format_day, format_moment=format_moment, parts=PARTS, domains=data.DOMAINS
)
T = TypeVar("T")

CSP = (
    "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; "
    "frame-ancestors 'none'; base-uri 'none'"
)
GRANTEE_KINDS = ("Organization", "Practitioner", "RelatedPerson")
LEGAL_BASES = data.LEGAL_BASIS_WORDS


class LoginNeeded(Exception):
    """No valid session: the visitor is sent to the login page."""


class Refused(Exception):
    """A request the page will not carry out; shown as a page in plain Dutch."""

    def __init__(self, status: int, title: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.title = title
        self.message = message


def secure_headers(response: Response) -> Response:
    response.headers["content-security-policy"] = CSP
    response.headers["x-content-type-options"] = "nosniff"
    response.headers["referrer-policy"] = "no-referrer"
    response.headers["x-frame-options"] = "DENY"
    response.headers["cache-control"] = "no-store"
    return response


def render(
    request: Request,
    name: str,
    context: Mapping[str, Any],
    *,
    visitor: Visitor | None = None,
    status: int = 200,
) -> Response:
    lang = language_of(request.cookies.get(LANGUAGE_COOKIE))
    acting_for = ""
    if visitor is not None and visitor.legal_basis is not None:
        # The header names whom a representative acts for: her Patient, read with the
        # representative's own access (their role lets them see her plan). Not an entry of
        # her access log: it is the page's heading on every page, not a look at her data,
        # and a refused request must leave nothing behind.
        repo = Repository(_runtime(request), visitor.context(), logged=False)
        acting_for = _read(
            request, lambda conn: data.name_of(repo, conn, f"Patient/{visitor.patient_id}")
        )
    page = {
        "visitor": visitor,
        "acting_for": acting_for,
        "csrf": visitor.csrf_token if visitor else "",
        "lang": lang,
        "_": translator(lang),
        **context,
    }
    return secure_headers(templates.TemplateResponse(request, name, page, status_code=status))


def see_other(url: str) -> Response:
    return secure_headers(RedirectResponse(url, status_code=303))


def _runtime(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


def _read(request: Request, work: Callable[[Connection], T]) -> T:
    with _runtime(request).db.read() as conn:
        return work(conn)


def _write(request: Request, work: Callable[[Connection], T]) -> T:
    with _runtime(request).db.write() as conn:
        return work(conn)


def _write_through(request: Request, repo: Repository, work: Callable[[Connection], T]) -> T:
    """A page write through the repository: a refusal becomes the page's error, and refused
    writes are logged after the transaction, as on the FHIR API."""
    try:
        return _write(request, work)
    except FhirError as exc:
        raise _fhir_refused(exc) from None
    finally:
        repo.flush_denials()


def current_visitor(request: Request) -> Visitor | None:
    """The visitor of the session cookie; each request counts as activity."""
    session_id = request.cookies.get(SESSION_COOKIE, "")
    if not session_id:
        return None
    settings = _runtime(request).settings
    now = now_micros()
    visitor = _read(
        request, lambda conn: load_visitor(conn, session_id, now=now, settings=settings)
    )
    if visitor is not None and needs_touch(visitor, now=now, settings=settings):
        _write(
            request,
            lambda conn: touch_session(conn, visitor.session_hash, now=now, settings=settings),
        )
    return visitor


def require_visitor(request: Request) -> Visitor:
    visitor = current_visitor(request)
    if visitor is None:
        raise LoginNeeded
    return visitor


def require_manager(visitor: Annotated[Visitor, Depends(require_visitor)]) -> Visitor:
    if not visitor.may_manage:
        raise Refused(403, "Dat mag niet", "Alleen de inwoner en een vertegenwoordiger kunnen dit.")
    return visitor


def require_inwoner(visitor: Annotated[Visitor, Depends(require_visitor)]) -> Visitor:
    if not visitor.is_inwoner:
        raise Refused(403, "Dat mag niet", "Alleen de inwoner zelf kan dit.")
    return visitor


async def checked_form(request: Request) -> FormData:
    """The posted form, once its CSRF token matches the session's (403 otherwise)."""
    form = await request.form()
    session_id = request.cookies.get(SESSION_COOKIE, "")
    visitor = None
    if session_id:
        visitor = await run_in_threadpool(current_visitor, request)
    if visitor is None or not csrf_matches(visitor.csrf_token, form.get("csrf_token")):
        raise Refused(
            403,
            "Dit formulier is niet geldig",
            "Het formulier kwam niet van deze pagina of is te oud. Ga terug, laad de pagina "
            "opnieuw en probeer het nog een keer.",
        )
    return form


VisitorDep = Annotated[Visitor, Depends(require_visitor)]
ManagerDep = Annotated[Visitor, Depends(require_manager)]
InwonerDep = Annotated[Visitor, Depends(require_inwoner)]
FormDep = Annotated[FormData, Depends(checked_form)]


def _text(form: FormData, name: str, *, limit: int = 2000) -> str:
    value = form.get(name, "")
    return value.strip()[:limit] if isinstance(value, str) else ""


def _grantee(kind: str, ident: str) -> str:
    if kind not in GRANTEE_KINDS or not ID_PATTERN.match(ident):
        raise Refused(404, "Niet gevonden", "Deze organisatie of persoon kennen we niet.")
    return f"{kind}/{ident}"


def _repo(request: Request, visitor: Visitor) -> Repository:
    return Repository(_runtime(request), visitor.context())


BAD_DAY = "Deze datum bestaat niet. Schrijf de dag zo: 31-12-2026 (dag, maand, jaar)."


def _fhir_refused(exc: FhirError) -> Refused:
    # The reason is for the operator; the page says what happened in plain words.
    log.info("a page write was refused: %s %s", exc.status, exc.code)
    return Refused(
        400,
        "Dat lukte niet",
        "Er is niets veranderd. Laad de pagina opnieuw en probeer het nog een keer.",
    )


# -- logging in ------------------------------------------------------------------------------


def _login_page(
    request: Request, *, error: str | None = None, username: str = "", status: int = 200
) -> Response:
    token = secrets.token_urlsafe(32)
    response = render(
        request,
        "login.html",
        {
            "error": error,
            "username": username,
            "login_csrf": token,
            "oidc": _runtime(request).settings.oidc,
        },
        status=status,
    )
    _set_login_csrf(response, request, token, path="/inloggen")
    return response


def _set_login_csrf(response: Response, request: Request, token: str, *, path: str) -> None:
    """The CSRF cookie of a form shown before there is a session (login, invitation)."""
    response.set_cookie(
        LOGIN_CSRF_COOKIE,
        token,
        httponly=True,
        samesite="strict",
        secure=cookie_is_secure(request, _runtime(request).settings),
        path=path,
    )


@router.get("/inloggen")
def login_page(request: Request) -> Response:
    """The login form."""
    return _login_page(request)


OIDC_COOKIE = "rk_oidc"
OIDC_PATH = "/inloggen/oidc"
log = logging.getLogger("vault.consent.page")


def _oidc_settings(request: Request) -> OidcSettings:
    settings = _runtime(request).settings.oidc
    if settings is None:
        raise Refused(404, "Niet gevonden", "Deze pagina bestaat niet.")
    return settings


def _oidc_refused(exc: page_oidc.OidcRefused) -> Refused:
    # The reason is for the operator; it never holds the BSN or other claims.
    log.warning("login through the identity provider refused: %s", exc.reason)
    if exc.unknown_person:
        return Refused(
            403,
            "We kennen je nog niet",
            "Je bent ingelogd bij DigiD, maar er is nog geen kluis voor jou. Vraag je "
            "sociaal team om een kluis voor je te maken.",
        )
    if exc.stopped:
        return Refused(
            403,
            "Je bent niet ingelogd",
            "Je bent gestopt met inloggen. Wil je toch inloggen? Ga terug naar de inlogpagina.",
        )
    return Refused(
        403,
        "Inloggen lukte niet",
        "We konden niet controleren wie je bent. Er is niets opgeslagen. Ga terug naar "
        "de inlogpagina en probeer het opnieuw.",
    )


@router.get(OIDC_PATH)
def oidc_start(request: Request) -> Response:
    """Send the browser to the identity provider (a link, so CSP form-action stays 'self')."""
    settings = _oidc_settings(request)
    runtime = _runtime(request)
    base = origin(request, runtime.settings)
    try:
        with httpx.Client(timeout=10) as http:
            url, sealed = page_oidc.begin(
                settings, runtime, http, redirect_uri=base + OIDC_PATH + "/terug"
            )
    except page_oidc.OidcRefused as exc:
        raise _oidc_refused(exc) from None
    response = see_other(url)
    response.set_cookie(
        OIDC_COOKIE,
        sealed,
        max_age=page_oidc.STATE_SECONDS,
        path=OIDC_PATH,
        httponly=True,
        # Lax: the provider sends the browser back with a top-level GET from its own site.
        samesite="lax",
        secure=cookie_is_secure(request, runtime.settings),
    )
    return response


@router.get(OIDC_PATH + "/terug")
def oidc_return(request: Request) -> Response:
    """The provider sends the browser back: check everything, then start a session."""
    settings = _oidc_settings(request)
    runtime = _runtime(request)
    try:
        flow = page_oidc.open_state(
            runtime, request.cookies.get(OIDC_COOKIE, "")[:2000], now=time.time()
        )
        with httpx.Client(timeout=10) as http:
            claims = page_oidc.finish(
                settings, http, flow, query=request.url.query, now=time.time()
            )
        bsn = claims.get(settings.person_claim)

        def enter(conn: Connection) -> str:
            now = now_micros()
            account = page_oidc.account_for_bsn(
                runtime, conn, bsn if isinstance(bsn, str) else "", now=now
            )
            session_id, _ = start_session(
                conn, account_id=account.account_id, now=now, settings=runtime.settings
            )
            return session_id

        session_id = _write(request, enter)
    except page_oidc.OidcRefused as exc:
        raise _oidc_refused(exc) from None
    response = see_other("/")
    set_session_cookie(response, session_id, request=request, settings=runtime.settings)
    response.delete_cookie(OIDC_COOKIE, path=OIDC_PATH)
    return response


@router.post("/inloggen")
async def login(request: Request) -> Response:
    """Check the password; a new session on success."""
    form = await request.form()
    cookie = request.cookies.get(LOGIN_CSRF_COOKIE, "")
    if not csrf_matches(cookie, form.get("csrf_token")):
        raise Refused(
            403,
            "Dit formulier is niet geldig",
            "Het inlogformulier is te oud of kwam niet van deze pagina. Laad de pagina "
            "opnieuw en probeer het nog een keer.",
        )
    username = _text(form, "username", limit=200)
    password = form.get("password", "")
    password = password if isinstance(password, str) else ""
    runtime = _runtime(request)

    def attempt(conn: Connection) -> tuple[str | None, bool]:
        now = now_micros()
        outcome = log_in(
            conn, username=username, password=password[:1000], blind=runtime.blind, now=now
        )
        if outcome.account is None:
            return None, outcome.throttled
        session_id, _ = start_session(
            conn, account_id=outcome.account.account_id, now=now, settings=runtime.settings
        )
        return session_id, False

    session_id, throttled = await run_in_threadpool(_write, request, attempt)
    if throttled:
        return _login_page(
            request,
            error="Je hebt te vaak een verkeerd wachtwoord ingevuld. Wacht een kwartier en "
            "probeer het dan opnieuw.",
            username=username,
            status=429,
        )
    if session_id is None:
        return _login_page(
            request,
            error="Je gebruikersnaam of wachtwoord klopt niet. Probeer het opnieuw.",
            username=username,
            status=400,
        )
    response = see_other("/")
    set_session_cookie(response, session_id, request=request, settings=runtime.settings)
    response.delete_cookie(LOGIN_CSRF_COOKIE, path="/inloggen")
    return response


@router.post("/uitloggen")
def logout(request: Request, visitor: VisitorDep, _form: FormDep) -> Response:
    """End the session."""
    _write(request, lambda conn: end_session(conn, visitor.session_hash))
    response = see_other("/inloggen")
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


@router.get("/taal/{lang}")
def switch_language(request: Request, lang: str, terug: str = "/") -> Response:
    """The language switch: a link, so it works without JavaScript; remembered in a cookie."""
    # Only a path on this site: never a way to send someone elsewhere.
    back = terug if terug.startswith("/") and not terug.startswith(("//", "/\\")) else "/"
    response = see_other(back)
    response.set_cookie(
        LANGUAGE_COOKIE,
        language_of(lang),
        max_age=365 * 24 * 3600,
        path="/",
        httponly=True,
        samesite="lax",
        secure=cookie_is_secure(request, _runtime(request).settings),
    )
    return response


# -- wie mag wat zien ------------------------------------------------------------------------


@router.get("/")
def home(request: Request) -> Response:
    """Who may see what (for the inwoner), or what was shared with you (for the network)."""
    visitor = current_visitor(request)
    if visitor is None:
        return see_other("/inloggen")
    repo = _repo(request, visitor)
    if not visitor.may_manage:
        assert visitor.related_person is not None
        shown = _read(
            request,
            lambda conn: data.preview(
                _runtime(request),
                conn,
                grantee=visitor.related_person or "",
                patient_id=visitor.patient_id,
                account_id=visitor.account_id,
            ),
        )
        return render(request, "shared_with_me.html", {"preview": shown}, visitor=visitor)

    stopped = request.query_params.get("gestopt") == "1"

    def load(conn: Connection) -> dict[str, Any]:
        around = data.parties(repo, conn, visitor.patient_id)
        return {
            "parties": around,
            "others": data.other_organizations(repo, conn, (p.reference for p in around)),
            "apps": apps_with_access(conn, patient_id=visitor.patient_id, now=now_micros()),
            # After "stop": exactly who still may act for her, and why.
            "remaining": (
                data.remaining_roles(repo, conn, patient_id=visitor.patient_id) if stopped else []
            ),
            "stopped_app": _app_name(conn, request.query_params.get("app_gestopt", "")),
        }

    context = _read(request, load)
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
        _runtime(request).audit.record(records)


@router.post("/apps/{client_id}/stoppen")
def app_stop(request: Request, client_id: str, visitor: ManagerDep, _form: FormDep) -> Response:
    """End every token of one app for the inwoner: its next request is refused."""

    def work(conn: Connection) -> bool:
        live = apps_with_access(conn, patient_id=visitor.patient_id, now=now_micros())
        if not any(app.client_id == client_id for app in live):
            return False
        stop_apps(conn, patient_id=visitor.patient_id, client_id=client_id)
        return True

    if not _write(request, work):
        raise Refused(404, "Niet gevonden", "Deze app kennen we niet.")
    _log_app_stop(request, visitor, [client_id])
    return see_other(f"/?app_gestopt={quote(client_id)}")


@router.post("/delen/nieuw")
def choose_new(request: Request, visitor: ManagerDep, form: FormDep) -> Response:
    """Pick an organisation from the vault's directory to share with."""
    grantee = _text(form, "grantee", limit=200)
    kind, _, ident = grantee.partition("/")
    _grantee(kind, ident)
    return see_other(f"/delen/{kind}/{quote(ident)}")


def _party(request: Request, visitor: Visitor, grantee: str) -> data.Party:
    repo = _repo(request, visitor)

    def load(conn: Connection) -> data.Party:
        for party in data.parties(repo, conn, visitor.patient_id):
            if party.reference == grantee:
                return party
        name = data.name_of(repo, conn, grantee)
        if name == "Onbekend":
            raise Refused(404, "Niet gevonden", "Deze organisatie of persoon kennen we niet.")

        return data.Party(grantee, name, "organisatie", "", summarize(name, [], now=now_micros()))

    return _read(request, load)


@router.get("/delen/{kind}/{ident}")
def sharing_form(request: Request, kind: str, ident: str, visitor: ManagerDep) -> Response:
    """Choose what one organisation or person may see, and until when."""
    party = _party(request, visitor, _grantee(kind, ident))
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
    party: data.Party,
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


def _proposed(visitor: Visitor, grantee: str, form: FormData, consent_id: str | None) -> Any:
    parts = [p for p in form.getlist("part") if isinstance(p, str)]
    change = [p for p in form.getlist("change") if isinstance(p, str)]
    if _text(form, "what") == "niets":
        parts, change = [], []
    try:
        until = data.parse_day(_text(form, "until", limit=20))
    except ValueError:
        raise BadDay from None
    return (
        data.build_consent(
            patient_id=visitor.patient_id,
            grantee=grantee,
            parts=parts,
            may_change=change,
            until=until,
            consent_id=consent_id,
        ),
        parts,
        change,
    )


@router.post("/delen/{kind}/{ident}/controleer")
def sharing_check(
    request: Request, kind: str, ident: str, visitor: ManagerDep, form: FormDep
) -> Response:
    """Read the change back in one sentence, made from the grants it compiles to."""
    grantee = _grantee(kind, ident)
    party = _party(request, visitor, grantee)
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
            until=_text(form, "until", limit=20),
            error=BAD_DAY,
        )
    try:
        summary = data.proposal(consent, patient_id=visitor.patient_id, name=party.name)
    except FhirError as exc:
        raise _fhir_refused(exc) from None
    return render(
        request,
        "confirm.html",
        {
            "party": party,
            "summary": summary,
            "parts": parts,
            "change": change,
            "until": _text(form, "until", limit=20),
            "what": _text(form, "what", limit=20),
            "action": f"/delen/{kind}/{quote(ident)}/opslaan",
        },
        visitor=visitor,
    )


@router.post("/delen/{kind}/{ident}/opslaan")
def sharing_save(
    request: Request, kind: str, ident: str, visitor: ManagerDep, form: FormDep
) -> Response:
    """Write the Consent (a new version of this grantee's own Consent, or a new one)."""
    grantee = _grantee(kind, ident)
    repo = _repo(request, visitor)

    consents = _read(
        request, lambda conn: data.compartment_search(repo, conn, "Consent", visitor.patient_id)
    )
    reuse = data.reusable_consent_id(consents, grantee)
    try:
        consent, parts, _ = _proposed(visitor, grantee, form, reuse)
    except BadDay:
        raise Refused(400, "Datum klopt niet", BAD_DAY) from None
    if parts:
        updates = data.sharing_updates(consents, grantee, consent)
    else:
        updates = data.revoke_updates(consents, grantee)
    _write_through(request, repo, lambda conn: data.apply_updates(repo, conn, updates))
    return see_other("/?opgeslagen=1")


@router.post("/stoppen")
def stop_check(request: Request, visitor: ManagerDep, _form: FormDep) -> Response:
    """Ask once more before all sharing stops."""
    return render(request, "stop.html", {}, visitor=visitor)


@router.post("/stoppen/zeker")
def stop_all(request: Request, visitor: ManagerDep, _form: FormDep) -> Response:
    """Every Consent becomes inactive, every app stops, every machtiging ends."""
    repo = _repo(request, visitor)
    consents = _read(
        request, lambda conn: data.compartment_search(repo, conn, "Consent", visitor.patient_id)
    )
    apps = _read(
        request,
        lambda conn: apps_with_access(conn, patient_id=visitor.patient_id, now=now_micros()),
    )
    _write_through(
        request,
        repo,
        lambda conn: data.stop_everything(
            repo, conn, patient_id=visitor.patient_id, consents=consents
        ),
    )
    _log_app_stop(request, visitor, [app.client_id for app in apps])
    return see_other("/?gestopt=1")


@router.get("/bekijk/{kind}/{ident}")
def look_as(request: Request, kind: str, ident: str, visitor: ManagerDep) -> Response:
    """What this partner gets right now, from its own access decision."""
    grantee = _grantee(kind, ident)
    party = _party(request, visitor, grantee)
    shown = _read(
        request,
        lambda conn: data.preview(
            _runtime(request),
            conn,
            grantee=grantee,
            patient_id=visitor.patient_id,
            account_id=visitor.account_id,
            previewer=visitor.context(),
        ),
    )
    return render(request, "look_as.html", {"party": party, "preview": shown}, visitor=visitor)


# -- wie heeft er gekeken --------------------------------------------------------------------


LOG_LINES = 50  # visits per page of the log
LOG_SCAN = 5000  # records read for one page at most; "Eerder" goes on from there
LOG_KINDS = {
    "bekeken": [("outcome", "0"), ("action", "R,E")],
    "veranderd": [("outcome", "0"), ("action", "C,U,D")],
    "geweigerd": [("outcome", "4")],
}


@router.get("/log")
def access_log(
    request: Request, visitor: ManagerDep, wie: str = "", soort: str = "", voor: str = ""
) -> Response:
    """The inwoner's AuditEvents in plain words, newest first: one line per visit.

    Every record can be reached: paging goes back in time (``voor``: the instant of the
    oldest record on the page), and the filters by party and kind run in the search, so
    a flood of one party never hides another.
    """
    # Long on purpose: the log page: its filters, grouping and paging read together.
    repo = _repo(request, visitor)
    now = now_micros()
    lang = language_of(request.cookies.get(LANGUAGE_COOKIE))
    wie, soort, voor = wie[:200], soort if soort in LOG_KINDS else "", voor[:40]
    params: list[tuple[str, str]] = [
        ("patient", f"Patient/{visitor.patient_id}"),
        ("_sort", "-date"),
        *LOG_KINDS.get(soort, []),
    ]
    kind, _, ident = wie.partition("/")
    if kind in GRANTEE_KINDS:
        if not ID_PATTERN.match(ident):
            raise Refused(404, "Niet gevonden", "Deze organisatie of persoon kennen we niet.")
        params.append(("agent", wie))
    if voor:
        if not _INSTANT.fullmatch(voor):
            raise Refused(400, "Dat klopt niet", "Deze pagina van het logboek bestaat niet.")
        params.append(("date", "lt" + voor))

    def keep(line: Any) -> bool:
        if wie == "iedereen":
            return True
        if wie == "jij":
            return bool(line.own)
        if wie.startswith("app "):
            return bool(line.party == wie)
        if wie:
            return True  # narrowed by the search itself
        return not line.own

    def load(conn: Connection) -> dict[str, Any]:
        history = role_history(conn, patient_id=visitor.patient_id)
        names: dict[str, str] = {}
        apps = _app_names(conn, visitor.patient_id)

        def name(ref: str) -> str:
            if ref not in names:
                names[ref] = data.name_then(repo, conn, ref)
            return names[ref]

        lines = []
        last_ms: int | None = None
        done = True
        groups_seen: set[str] = set()
        for scanned, event in enumerate(data.audit_events(repo, conn, params), start=1):
            refs = {preview_actor(event)} | {
                (a.get("who") or {}).get("reference") for a in event.get("agent") or []
            }
            for ref in refs:
                if ref and ref.split("/", 1)[0] in GRANTEE_KINDS:
                    name(ref)
            line = describe_event(
                event,
                names=names,
                own_account=visitor.account_id if visitor.is_inwoner else None,
                role_at=lambda person, when: role_at(history, person, when),
                patient_ref=f"Patient/{visitor.patient_id}",
                apps=apps,
                lang=lang,
            )
            moment = line.when // 1000
            if last_ms is not None and moment != last_ms:
                full = len(groups_seen) >= LOG_LINES and line.party not in groups_seen
                if full or scanned > LOG_SCAN:
                    done = False
                    break
            last_ms = moment
            if keep(line):
                lines.append(line)
                groups_seen.add(line.party)
        groups = group_visits(lines)
        options = [(p.reference, p.name) for p in data.parties(repo, conn, visitor.patient_id)]
        options += [(f"app {cid}", app_name) for cid, app_name in apps.items()]
        return {
            "groups": groups,
            "options": sorted(set(options), key=lambda item: item[1].casefold()),
            "wie": wie,
            "soort": soort,
            "older": None if done or last_ms is None else format_instant(last_ms * 1000),
            "newest_page": not voor,
            "now": now,
        }

    return render(request, "log.html", _read(request, load), visitor=visitor)


_INSTANT = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z")


def _app_names(conn: Connection, patient_id: str) -> dict[str, str]:
    """Every app that ever held a token for this inwoner, by client id."""
    from sqlalchemy import select

    rows = conn.execute(
        select(OAuthClient.client_id, OAuthClient.name).where(
            OAuthClient.kind == "public",
            OAuthClient.client_id.in_(
                select(Token.client_id).where(Token.patient_id == patient_id)
            ),
        )
    )
    return {row.client_id: row.name for row in rows}


# -- mijn gegevens ---------------------------------------------------------------------------


@router.get("/gegevens")
def my_data(request: Request, visitor: InwonerDep) -> Response:
    """Download everything, or erase the vault."""
    return render(request, "data.html", {}, visitor=visitor)


@router.get("/gegevens/download")
def download(request: Request, visitor: InwonerDep) -> Response:
    """Everything of the inwoner as one FHIR Bundle (JSON)."""
    repo = _repo(request, visitor)
    bundle = _read(
        request, lambda conn: data.export_bundle(repo, conn, patient_id=visitor.patient_id)
    )
    response = Response(
        orjson.dumps(bundle, option=orjson.OPT_INDENT_2),
        media_type="application/fhir+json",
        headers={"content-disposition": 'attachment; filename="mijn-gegevens.json"'},
    )
    return secure_headers(response)


@router.post("/gegevens/wissen")
def erase_check(request: Request, visitor: InwonerDep, _form: FormDep) -> Response:
    """First question: are you sure?"""
    return render(request, "erase.html", {"error": None}, visitor=visitor)


@router.post("/gegevens/wissen/zeker")
def erase(request: Request, visitor: InwonerDep, form: FormDep) -> Response:
    """Second question answered: destroy the data key and every way in."""
    if _text(form, "bevestig").casefold() != "wissen":
        return render(
            request,
            "erase.html",
            {"error": "Typ het woord WISSEN om te laten zien dat je het zeker weet."},
            visitor=visitor,
            status=400,
        )
    runtime = _runtime(request)

    def erase_and_log(conn: Connection) -> None:
        data.erase_vault(conn, patient_id=visitor.patient_id)
        # In the same transaction: no erasure without its record. Her key is gone, so the
        # access log keeps it in the vault's own chain, naming her Patient.
        runtime.audit.append(
            conn,
            [
                AuditRecord(
                    patient_id=visitor.patient_id,
                    interaction="delete",
                    permitted=True,
                    client_id=None,
                    organization=None,
                    account_id=visitor.account_id,
                    entities=[f"Patient/{visitor.patient_id}"],
                    recorded=now_micros(),
                )
            ],
        )

    _write(request, erase_and_log)
    runtime.keys.clear()
    response = render(request, "erased.html", {}, visitor=None)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


# -- mijn plan -------------------------------------------------------------------------------


@router.get("/plan")
def plan(request: Request, visitor: ManagerDep) -> Response:
    """Wat wil ik, wat kan ik, wat heb ik nodig, and how it is going."""
    repo = _repo(request, visitor)
    current = _read(request, lambda conn: data.read_plan(repo, conn, patient_id=visitor.patient_id))
    return render(
        request,
        "plan.html",
        {
            **_outcome_context(request, repo, visitor, current.care_plan),
            "plan": current,
            "chart": chart(current.scores),
            "short_day": _short_day,
            "goal_text": data.goal_text,
            "goal_priority": data.goal_priority,
            "goal_domain": data.goal_domain,
            "priorities": data.PRIORITIES,
        },
        visitor=visitor,
    )


def _plan_write(
    request: Request, visitor: Visitor, work: Callable[[Repository, Connection], None]
) -> Response:
    repo = _repo(request, visitor)
    _write_through(request, repo, lambda conn: work(repo, conn))
    return see_other("/plan?opgeslagen=1")


@router.post("/plan/doel")
def goal_save(request: Request, visitor: ManagerDep, form: FormDep) -> Response:
    """Add a goal, or change one (own words, own ranking)."""
    text = _text(form, "text")
    if not text:
        raise Refused(400, "Vul iets in", "Schrijf in je eigen woorden wat je wilt.")
    goal_id = _text(form, "goal_id", limit=64) or None
    if goal_id is not None and not ID_PATTERN.match(goal_id):
        raise Refused(404, "Niet gevonden", "Dit doel kennen we niet.")
    existing = None
    if goal_id is not None:
        reader = _repo(request, visitor)
        try:
            existing = _read(request, lambda conn: data.load(reader.read(conn, "Goal", goal_id)))
        except FhirError:
            raise Refused(404, "Niet gevonden", "Dit doel kennen we niet.") from None
    return _plan_write(
        request,
        visitor,
        lambda repo, conn: data.save_goal(
            repo,
            conn,
            patient_id=visitor.patient_id,
            existing=existing,
            text=text,
            priority=_text(form, "priority", limit=40),
            domain=_text(form, "domain", limit=40),
        ),
    )


def _plan_now(request: Request, visitor: Visitor) -> data.Plan:
    """The plan as it is, read before a write changes it (the write checks its version)."""
    reader = _repo(request, visitor)
    return _read(request, lambda conn: data.read_plan(reader, conn, patient_id=visitor.patient_id))


@router.post("/plan/doel/volgorde")
def goal_move(request: Request, visitor: ManagerDep, form: FormDep) -> Response:
    """Move a goal one place up or down in the inwoner's own order."""
    goal_id = _text(form, "goal_id", limit=64)
    direction = _text(form, "richting", limit=10)
    if direction not in ("omhoog", "omlaag") or not ID_PATTERN.match(goal_id):
        raise Refused(400, "Dat klopt niet", "Kies een doel en omhoog of omlaag.")
    goals = _plan_now(request, visitor).goals
    if not any(g.get("id") == goal_id for g in goals):
        raise Refused(404, "Niet gevonden", "Dit doel kennen we niet.")
    repo = _repo(request, visitor)
    _write_through(
        request,
        repo,
        lambda conn: data.move_goal(
            repo, conn, goals=goals, goal_id=goal_id, up=direction == "omhoog"
        ),
    )
    # Back to the goal that moved, with focus on its button: the next press moves it again.
    return see_other(f"/plan?verplaatst={quote(goal_id)}&richting={direction}")


@router.post("/plan/activiteit")
def activity_save(request: Request, visitor: ManagerDep, form: FormDep) -> Response:
    """Add or change a line of 'wat kan ik' / 'wat heb ik nodig'."""
    text = _text(form, "text")
    if not text:
        raise Refused(400, "Vul iets in", "Schrijf op wat je doet of wat je nodig hebt.")
    raw_index = _text(form, "index", limit=6)
    index = int(raw_index) if raw_index.isdigit() else None
    performer = f"Patient/{visitor.patient_id}"
    care_plan = _plan_now(request, visitor).care_plan
    return _plan_write(
        request,
        visitor,
        lambda repo, conn: data.save_activity(
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
    domain = _text(form, "domain", limit=40)
    raw = _text(form, "score", limit=3)
    if domain not in data.DOMAINS or not raw.isdigit() or not 1 <= int(raw) <= 10:
        raise Refused(400, "Cijfer klopt niet", "Kies een onderwerp en een cijfer van 1 tot 10.")
    return _plan_write(
        request,
        visitor,
        lambda repo, conn: data.add_score(
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
            _read(request, lambda c: outcome_page.statistics_consents(repo, c, patient_id=pid))
        ),
        "rating": _read(request, lambda c: outcome_page.latest_rating(repo, c, patient_id=pid)),
    }


@router.post("/plan/fase")
def phase_save(request: Request, visitor: ManagerDep, form: FormDep) -> Response:
    """The phase the plan is in: contact, verkennen, samenwerkoverleg, samen op weg, evaluatie."""
    phase = _text(form, "fase", limit=40)
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
    raw = _text(form, "cijfer", limit=3)
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
    answer = _text(form, "meetellen", limit=4)
    if answer not in ("ja", "nee"):
        raise Refused(400, "Dat klopt niet", "Kies ja of nee.")
    runtime = _runtime(request)
    organization = organization_named(runtime, runtime.settings.report_organization)
    reader = _repo(request, visitor)
    consents = _read(
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


# -- mijn netwerk ----------------------------------------------------------------------------


@router.get("/netwerk")
def network_page(request: Request, visitor: InwonerDep) -> Response:
    """The people around the inwoner: invite them, name a representative."""
    repo = _repo(request, visitor)
    members = _read(request, lambda conn: data.network(repo, conn, patient_id=visitor.patient_id))
    return render(
        request,
        "network.html",
        {"members": members, "bases": LEGAL_BASES, "link": None},
        visitor=visitor,
    )


@router.post("/netwerk/uitnodigen")
def network_invite(request: Request, visitor: InwonerDep, form: FormDep) -> Response:
    """A one-time link for someone (new or already in the network)."""
    repo = _repo(request, visitor)
    person = _text(form, "person", limit=200)
    name = _text(form, "name", limit=200)
    relation = _text(form, "relation", limit=100)

    if person:
        kind, _, ident = person.partition("/")
        if kind != "RelatedPerson" or not ID_PATTERN.match(ident):
            raise Refused(404, "Niet gevonden", "Deze persoon kennen we niet.")
        try:
            _read(request, lambda conn: repo.read(conn, "RelatedPerson", ident))
        except FhirError:
            raise Refused(404, "Niet gevonden", "Deze persoon kennen we niet.") from None

    def work(conn: Connection) -> str:
        # Reads are logged through the access log's own writer, so none happen in here.
        if person:
            person_id = person.partition("/")[2]
        elif name:
            person_id = data.add_person(
                repo, conn, patient_id=visitor.patient_id, name=name, relation=relation
            )
        else:
            raise Refused(
                400, "Vul iets in", "Kies iemand, of vul de naam in van wie je uitnodigt."
            )
        return data.invite(conn, patient_id=visitor.patient_id, related_person_id=person_id)

    token = _write_through(request, repo, work)
    base = origin(request, _runtime(request).settings)
    members = _read(request, lambda conn: data.network(repo, conn, patient_id=visitor.patient_id))
    return render(
        request,
        "network.html",
        {"members": members, "bases": LEGAL_BASES, "link": f"{base}/uitnodiging/{token}"},
        visitor=visitor,
    )


def _own_person(request: Request, repo: Repository, visitor: Visitor, ident: str) -> dict[str, Any]:
    """A RelatedPerson of this inwoner's network; anyone else's is 'not found'."""
    try:
        found = _read(request, lambda conn: data.load(repo.read(conn, "RelatedPerson", ident)))
    except FhirError:
        raise Refused(404, "Niet gevonden", "Deze persoon kennen we niet.") from None
    if (found.get("patient") or {}).get("reference") != f"Patient/{visitor.patient_id}":
        raise Refused(404, "Niet gevonden", "Deze persoon kennen we niet.")
    return found


@router.post("/netwerk/vertegenwoordiger")
def network_representative(request: Request, visitor: InwonerDep, form: FormDep) -> Response:
    """Name someone with an account as representative, with the legal basis; or undo it."""
    person = _text(form, "person", limit=200)
    basis = _text(form, "basis", limit=40)
    kind, _, ident = person.partition("/")
    if (
        kind != "RelatedPerson"
        or not ID_PATTERN.match(ident)
        or (basis and basis not in LEGAL_BASES)
    ):
        raise Refused(400, "Dat klopt niet", "Kies iemand en een reden.")
    repo = _repo(request, visitor)
    found = _own_person(request, repo, visitor, ident)

    def work(conn: Connection) -> None:
        done = data.set_representative(
            repo, conn, patient_id=visitor.patient_id, person=found, legal_basis=basis or None
        )
        if not done:
            raise Refused(400, "Nog geen account", "Deze persoon heeft nog geen account.")

    _write_through(request, repo, work)
    return see_other("/netwerk?opgeslagen=1")


@router.post("/netwerk/weghalen")
def network_remove(request: Request, visitor: InwonerDep, form: FormDep) -> Response:
    """Take someone out of the network: their access ends with their next request."""
    person = _text(form, "person", limit=200)
    kind, _, ident = person.partition("/")
    if kind != "RelatedPerson" or not ID_PATTERN.match(ident):
        raise Refused(404, "Niet gevonden", "Deze persoon kennen we niet.")
    repo = _repo(request, visitor)
    found = _own_person(request, repo, visitor, ident)
    consents = _read(
        request, lambda conn: data.compartment_search(repo, conn, "Consent", visitor.patient_id)
    )
    _write_through(
        request,
        repo,
        lambda conn: data.remove_person(
            repo, conn, patient_id=visitor.patient_id, person=found, consents=consents
        ),
    )
    return see_other("/netwerk?weggehaald=1")


@router.get("/uitnodiging/{token}")
def invitation_page(request: Request, token: str) -> Response:
    """The invited person makes an account."""
    found = _read(request, lambda conn: data.open_invitation(conn, token[:100], now=now_micros()))
    if found is None:
        raise Refused(
            404,
            "Deze link werkt niet meer",
            "De link is al gebruikt of is verlopen. Vraag om een nieuwe uitnodiging.",
        )
    return _invitation_form(request, token)


def _invitation_form(
    request: Request, token: str, *, error: str | None = None, username: str = "", status: int = 200
) -> Response:
    csrf = secrets.token_urlsafe(32)
    inviter, invitee = _invitation_names(request, token)
    response = render(
        request,
        "invitation.html",
        {
            "token": token,
            "inviter": inviter,
            "invitee": invitee,
            "error": error,
            "username": username,
            "login_csrf": csrf,
            "min_length": MIN_PASSWORD_LENGTH,
        },
        status=status,
    )
    _set_login_csrf(response, request, csrf, path="/uitnodiging")
    return response


def _invitation_names(request: Request, token: str) -> tuple[str, str]:
    """Who invites, and the name she gave the invited person (issue 14): the link holder
    was chosen by the inwoner, so the page may say her name."""
    repo = Repository(_runtime(request), AccessContext.full("uitnodiging"))

    def names(conn: Connection) -> tuple[str, str]:
        found = data.open_invitation(conn, token[:100], now=now_micros())
        if found is None:
            return "", ""
        inviter = data.name_of(repo, conn, f"Patient/{found.patient_id}")
        invitee = data.name_of(repo, conn, f"RelatedPerson/{found.related_person_id}")
        return inviter, invitee

    return _read(request, names)


@router.post("/uitnodiging/{token}")
async def invitation_accept(request: Request, token: str) -> Response:
    """Use the link once: a new account that sees only what was granted to this person."""

    form = await request.form()
    if not csrf_matches(request.cookies.get(LOGIN_CSRF_COOKIE, ""), form.get("csrf_token")):
        raise Refused(403, "Dit formulier is niet geldig", "Laad de pagina opnieuw.")
    username = _text(form, "username", limit=100)
    password = form.get("password", "")
    again = form.get("password_again", "")
    name = _text(form, "name", limit=200)
    if not isinstance(password, str) or not isinstance(again, str):
        password, again = "", "-"
    if len(username) < 3 or len(password) < MIN_PASSWORD_LENGTH or password != again:
        return _invitation_form(
            request,
            token,
            # {min_length} is filled in by the template, in the page's language.
            error="Kies een naam van minstens 3 tekens. Kies een wachtwoord van minstens "
            "{min_length} tekens. Typ het wachtwoord twee keer hetzelfde.",
            username=username,
            status=400,
        )

    def accept(conn: Connection) -> str | None:
        now = now_micros()
        invitation = data.open_invitation(conn, token[:100], now=now)
        if invitation is None:
            raise Refused(
                404, "Deze link werkt niet meer", "De link is al gebruikt of is verlopen."
            )
        from sqlalchemy import select

        if conn.execute(
            select(Account.account_id).where(Account.username == username.lower())
        ).first():
            return None
        account = create_account(
            conn,
            username=username,
            password=password,
            display_name=name or username,
            patient_id=None,
            now=now,
        )
        if not data.redeem_invitation(conn, invitation, account_id=account.account_id):
            raise Refused(404, "Deze link werkt niet meer", "De link is al gebruikt.")
        session_id, _ = start_session(
            conn, account_id=account.account_id, now=now, settings=_runtime(request).settings
        )
        return session_id

    session_id = await run_in_threadpool(_write, request, accept)
    if session_id is None:
        return _invitation_form(
            request, token, error="Deze naam is al in gebruik. Kies een andere.", status=400
        )
    response = see_other("/")
    set_session_cookie(response, session_id, request=request, settings=_runtime(request).settings)
    return response


# -- wiring ----------------------------------------------------------------------------------

FHIR_PREFIXES = ("/fhir", "/oauth", "/.well-known")


def wants_page(request: Request) -> bool:
    """A browser asking for a page: a GET outside the FHIR API that accepts HTML and not
    FHIR JSON. Every other caller gets the OperationOutcome of the FHIR API."""
    accept = request.headers.get("accept", "")
    return (
        request.method in ("GET", "HEAD")
        and not request.url.path.startswith(FHIR_PREFIXES)
        and "text/html" in accept
        and "json" not in accept
    )


async def _error_page(request: Request, title: str, message: str, status: int) -> Response:
    """An error as a page in plain Dutch, with the menu and "Ingelogd als ..." kept."""
    from_session = await run_in_threadpool(current_visitor, request)
    return render(
        request,
        "error.html",
        {"title": title, "message": message},
        visitor=from_session,
        status=status,
    )


def install_page(app: FastAPI) -> None:
    """Mount the page: its routes, its stylesheet, and its two answers for refusals."""

    async def login_needed(request: Request, _exc: Exception) -> Response:
        return see_other("/inloggen")

    async def refused(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, Refused)
        return await _error_page(request, exc.title, exc.message, exc.status)

    # FHIR clients keep their OperationOutcome; a browser asking for a page gets one.
    fhir_answer = app.exception_handlers.get(StarletteHTTPException)

    async def not_found(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        if exc.status_code == 404 and wants_page(request):
            return await _error_page(
                request,
                "Deze pagina bestaat niet",
                "Misschien is het adres niet goed overgenomen. Kies een pagina in het menu.",
                404,
            )
        if fhir_answer is None:
            raise exc
        answer = fhir_answer(request, exc)
        return await answer if isawaitable(answer) else answer

    app.add_exception_handler(LoginNeeded, login_needed)
    app.add_exception_handler(Refused, refused)
    app.add_exception_handler(StarletteHTTPException, not_found)
    app.mount("/static", StaticFiles(directory=str(HERE / "static")), name="page-static")
    app.include_router(router)
