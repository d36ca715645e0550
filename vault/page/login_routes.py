"""Logging in on the consent page: the form, an outside OpenID Connect provider, logging out,
and the language switch."""

from __future__ import annotations

import secrets
import time

import httpx
from fastapi import APIRouter, Request
from sqlalchemy import Connection
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from vault.kernel.config import OidcSettings
from vault.kernel.runtime import now_micros
from vault.kernel.urls import origin
from vault.oauth.sessions import (
    LOGIN_CSRF_COOKIE,
    SESSION_COOKIE,
    cookie_is_secure,
    csrf_matches,
    end_session,
    log_in,
    set_session_cookie,
    start_session,
)
from vault.page import oidc as page_oidc
from vault.page.catalogue import LANGUAGE_COOKIE, language_of
from vault.page.web import (
    FormDep,
    Refused,
    VisitorDep,
    log,
    render,
    runtime_of,
    see_other,
    text_of,
    write_in,
)

router = APIRouter(tags=["consent page"], include_in_schema=False)


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
            "oidc": runtime_of(request).settings.oidc,
        },
        status=status,
    )
    set_login_csrf(response, request, token, path="/inloggen")
    return response


def set_login_csrf(response: Response, request: Request, token: str, *, path: str) -> None:
    """The CSRF cookie of a form shown before there is a session (login, invitation)."""
    response.set_cookie(
        LOGIN_CSRF_COOKIE,
        token,
        httponly=True,
        samesite="strict",
        secure=cookie_is_secure(request, runtime_of(request).settings),
        path=path,
    )


@router.get("/inloggen")
def login_page(request: Request) -> Response:
    """The login form."""
    return _login_page(request)


OIDC_COOKIE = "rk_oidc"
OIDC_PATH = "/inloggen/oidc"


def _oidc_settings(request: Request) -> OidcSettings:
    settings = runtime_of(request).settings.oidc
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
    runtime = runtime_of(request)
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
    runtime = runtime_of(request)
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

        session_id = write_in(request, enter)
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
    username = text_of(form, "username", limit=200)
    password = form.get("password", "")
    password = password if isinstance(password, str) else ""
    runtime = runtime_of(request)

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

    session_id, throttled = await run_in_threadpool(write_in, request, attempt)
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
    write_in(request, lambda conn: end_session(conn, visitor.session_hash))
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
        secure=cookie_is_secure(request, runtime_of(request).settings),
    )
    return response
