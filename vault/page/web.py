"""What every part of the consent page shares: rendering with its headers, the visitor and
the rights a route needs, CSRF-checked forms, and reads and writes in one transaction."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Annotated, Any, TypeVar

from fastapi import Depends, Request
from fastapi.templating import Jinja2Templates
from sqlalchemy import Connection
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData
from starlette.responses import RedirectResponse, Response

from vault.fhir.repository import Repository
from vault.fhir.resources import ID_PATTERN
from vault.kernel.errors import FhirError
from vault.kernel.runtime import Runtime, now_micros
from vault.oauth.sessions import (
    SESSION_COOKIE,
    Visitor,
    csrf_matches,
    load_visitor,
    needs_touch,
    touch_session,
)
from vault.page import data
from vault.page.catalogue import LANGUAGE_COOKIE, language_of, translator
from vault.page.words import (
    PARTS,
    format_date,
    format_day,
    format_moment,
)

HERE = Path(__file__).parent
templates = Jinja2Templates(directory=str(HERE / "templates"))
templates.env.globals.update(
    format_day=format_day,
    format_date=format_date,
    format_moment=format_moment,
    parts=PARTS,
    domains=data.DOMAINS,
)
T = TypeVar("T")
log = logging.getLogger("vault.consent.page")

CSP = (
    "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; "
    "frame-ancestors 'none'; base-uri 'none'"
)
# Only a page with a "Lees voor" button may run a script, and only a file of this site
# (vault/page/static): no inline script, no outside source (issue 17 item 4).
CSP_WITH_SCRIPT = CSP + "; script-src 'self'"
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


def secure_headers(response: Response, *, scripts: bool = False) -> Response:
    response.headers["content-security-policy"] = CSP_WITH_SCRIPT if scripts else CSP
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
    scripts: bool = False,
) -> Response:
    lang = language_of(request.cookies.get(LANGUAGE_COOKIE))
    acting_for = ""
    if visitor is not None and visitor.legal_basis is not None:
        # The header names whom a representative acts for: her Patient, read with the
        # representative's own access (their role lets them see her plan). Not an entry of
        # her access log: it is the page's heading on every page, not a look at her data,
        # and a refused request must leave nothing behind.
        repo = Repository(runtime_of(request), visitor.context(), logged=False)
        acting_for = read_in(
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
    response = templates.TemplateResponse(request, name, page, status_code=status)
    return secure_headers(response, scripts=scripts)


def see_other(url: str) -> Response:
    return secure_headers(RedirectResponse(url, status_code=303))


def runtime_of(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


def read_in(request: Request, work: Callable[[Connection], T]) -> T:
    with runtime_of(request).db.read() as conn:
        return work(conn)


def write_in(request: Request, work: Callable[[Connection], T]) -> T:
    with runtime_of(request).db.write() as conn:
        return work(conn)


def write_through(request: Request, repo: Repository, work: Callable[[Connection], T]) -> T:
    """A page write through the repository: a refusal becomes the page's error, and refused
    writes are logged after the transaction, as on the FHIR API."""
    try:
        return write_in(request, work)
    except FhirError as exc:
        raise fhir_refused(exc) from None
    finally:
        repo.flush_denials()


def current_visitor(request: Request) -> Visitor | None:
    """The visitor of the session cookie; each request counts as activity."""
    session_id = request.cookies.get(SESSION_COOKIE, "")
    if not session_id:
        return None
    settings = runtime_of(request).settings
    now = now_micros()
    visitor = read_in(
        request, lambda conn: load_visitor(conn, session_id, now=now, settings=settings)
    )
    if visitor is not None and needs_touch(visitor, now=now, settings=settings):
        write_in(
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


def text_of(form: FormData, name: str, *, limit: int = 2000) -> str:
    value = form.get(name, "")
    return value.strip()[:limit] if isinstance(value, str) else ""


def grantee_of(kind: str, ident: str) -> str:
    if kind not in GRANTEE_KINDS or not ID_PATTERN.match(ident):
        raise Refused(404, "Niet gevonden", "Deze organisatie of persoon kennen we niet.")
    return f"{kind}/{ident}"


def repo_for(request: Request, visitor: Visitor) -> Repository:
    return Repository(runtime_of(request), visitor.context())


BAD_DAY = "Deze datum bestaat niet. Schrijf de dag zo: 31-12-2026 (dag, maand, jaar)."


def fhir_refused(exc: FhirError) -> Refused:
    # The reason is for the operator; the page says what happened in plain words.
    log.info("a page write was refused: %s %s", exc.status, exc.code)
    return Refused(
        400,
        "Dat lukte niet",
        "Er is niets veranderd. Laad de pagina opnieuw en probeer het nog een keer.",
    )
