"""Mijn netwerk: invitations, representatives and removing someone, and the invitation
page someone of the network opens."""

from __future__ import annotations

import secrets
from typing import Any

from fastapi import APIRouter, Request
from sqlalchemy import Connection
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from vault.consent.access import AccessContext
from vault.fhir.repository import Repository
from vault.fhir.resources import ID_PATTERN
from vault.kernel.errors import FhirError
from vault.kernel.runtime import now_micros
from vault.kernel.urls import origin
from vault.oauth.accounts import MIN_PASSWORD_LENGTH, create_account
from vault.oauth.models import Account
from vault.oauth.sessions import (
    LOGIN_CSRF_COOKIE,
    Visitor,
    csrf_matches,
    set_session_cookie,
    start_session,
)
from vault.page import data, network_data
from vault.page.login_routes import set_login_csrf
from vault.page.web import (
    LEGAL_BASES,
    FormDep,
    InwonerDep,
    Refused,
    read_in,
    render,
    repo_for,
    runtime_of,
    see_other,
    text_of,
    write_in,
    write_through,
)

router = APIRouter(tags=["consent page"], include_in_schema=False)


# -- mijn netwerk ----------------------------------------------------------------------------


@router.get("/netwerk")
def network_page(request: Request, visitor: InwonerDep) -> Response:
    """The people around the inwoner: invite them, name a representative."""
    repo = repo_for(request, visitor)
    members = read_in(
        request, lambda conn: network_data.network(repo, conn, patient_id=visitor.patient_id)
    )
    return render(
        request,
        "network.html",
        {"members": members, "bases": LEGAL_BASES, "link": None},
        visitor=visitor,
    )


@router.post("/netwerk/uitnodigen")
def network_invite(request: Request, visitor: InwonerDep, form: FormDep) -> Response:
    """A one-time link for someone (new or already in the network)."""
    repo = repo_for(request, visitor)
    person = text_of(form, "person", limit=200)
    name = text_of(form, "name", limit=200)
    relation = text_of(form, "relation", limit=100)

    if person:
        kind, _, ident = person.partition("/")
        if kind != "RelatedPerson" or not ID_PATTERN.match(ident):
            raise Refused(404, "Niet gevonden", "Deze persoon kennen we niet.")
        try:
            read_in(request, lambda conn: repo.read(conn, "RelatedPerson", ident))
        except FhirError:
            raise Refused(404, "Niet gevonden", "Deze persoon kennen we niet.") from None

    def work(conn: Connection) -> str:
        # Reads are logged through the access log's own writer, so none happen in here.
        if person:
            person_id = person.partition("/")[2]
        elif name:
            person_id = network_data.add_person(
                repo, conn, patient_id=visitor.patient_id, name=name, relation=relation
            )
        else:
            raise Refused(
                400, "Vul iets in", "Kies iemand, of vul de naam in van wie je uitnodigt."
            )
        return network_data.invite(conn, patient_id=visitor.patient_id, related_person_id=person_id)

    token = write_through(request, repo, work)
    base = origin(request, runtime_of(request).settings)
    members = read_in(
        request, lambda conn: network_data.network(repo, conn, patient_id=visitor.patient_id)
    )
    return render(
        request,
        "network.html",
        {"members": members, "bases": LEGAL_BASES, "link": f"{base}/uitnodiging/{token}"},
        visitor=visitor,
    )


def _own_person(request: Request, repo: Repository, visitor: Visitor, ident: str) -> dict[str, Any]:
    """A RelatedPerson of this inwoner's network; anyone else's is 'not found'."""
    try:
        found = read_in(request, lambda conn: data.load(repo.read(conn, "RelatedPerson", ident)))
    except FhirError:
        raise Refused(404, "Niet gevonden", "Deze persoon kennen we niet.") from None
    if (found.get("patient") or {}).get("reference") != f"Patient/{visitor.patient_id}":
        raise Refused(404, "Niet gevonden", "Deze persoon kennen we niet.")
    return found


@router.post("/netwerk/vertegenwoordiger")
def network_representative(request: Request, visitor: InwonerDep, form: FormDep) -> Response:
    """Name someone with an account as representative, with the legal basis; or undo it."""
    person = text_of(form, "person", limit=200)
    basis = text_of(form, "basis", limit=40)
    kind, _, ident = person.partition("/")
    if (
        kind != "RelatedPerson"
        or not ID_PATTERN.match(ident)
        or (basis and basis not in LEGAL_BASES)
    ):
        raise Refused(400, "Dat klopt niet", "Kies iemand en een reden.")
    repo = repo_for(request, visitor)
    found = _own_person(request, repo, visitor, ident)

    def work(conn: Connection) -> None:
        done = network_data.set_representative(
            repo, conn, patient_id=visitor.patient_id, person=found, legal_basis=basis or None
        )
        if not done:
            raise Refused(400, "Nog geen account", "Deze persoon heeft nog geen account.")

    write_through(request, repo, work)
    return see_other("/netwerk?opgeslagen=1")


@router.post("/netwerk/weghalen")
def network_remove(request: Request, visitor: InwonerDep, form: FormDep) -> Response:
    """Take someone out of the network: their access ends with their next request."""
    person = text_of(form, "person", limit=200)
    kind, _, ident = person.partition("/")
    if kind != "RelatedPerson" or not ID_PATTERN.match(ident):
        raise Refused(404, "Niet gevonden", "Deze persoon kennen we niet.")
    repo = repo_for(request, visitor)
    found = _own_person(request, repo, visitor, ident)
    consents = read_in(
        request, lambda conn: data.compartment_search(repo, conn, "Consent", visitor.patient_id)
    )
    write_through(
        request,
        repo,
        lambda conn: network_data.remove_person(
            repo, conn, patient_id=visitor.patient_id, person=found, consents=consents
        ),
    )
    return see_other("/netwerk?weggehaald=1")


@router.get("/uitnodiging/{token}")
def invitation_page(request: Request, token: str) -> Response:
    """The invited person makes an account."""
    found = read_in(
        request, lambda conn: network_data.open_invitation(conn, token[:100], now=now_micros())
    )
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
    set_login_csrf(response, request, csrf, path="/uitnodiging")
    return response


def _invitation_names(request: Request, token: str) -> tuple[str, str]:
    """Who invites, and the name she gave the invited person (issue 14): the link holder
    was chosen by the inwoner, so the page may say her name."""
    repo = Repository(runtime_of(request), AccessContext.full("uitnodiging"))

    def names(conn: Connection) -> tuple[str, str]:
        found = network_data.open_invitation(conn, token[:100], now=now_micros())
        if found is None:
            return "", ""
        inviter = data.name_of(repo, conn, f"Patient/{found.patient_id}")
        invitee = data.name_of(repo, conn, f"RelatedPerson/{found.related_person_id}")
        return inviter, invitee

    return read_in(request, names)


@router.post("/uitnodiging/{token}")
async def invitation_accept(request: Request, token: str) -> Response:
    """Use the link once: a new account that sees only what was granted to this person."""

    form = await request.form()
    if not csrf_matches(request.cookies.get(LOGIN_CSRF_COOKIE, ""), form.get("csrf_token")):
        raise Refused(403, "Dit formulier is niet geldig", "Laad de pagina opnieuw.")
    username = text_of(form, "username", limit=100)
    password = form.get("password", "")
    again = form.get("password_again", "")
    name = text_of(form, "name", limit=200)
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
        invitation = network_data.open_invitation(conn, token[:100], now=now)
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
        if not network_data.redeem_invitation(conn, invitation, account_id=account.account_id):
            raise Refused(404, "Deze link werkt niet meer", "De link is al gebruikt.")
        session_id, _ = start_session(
            conn, account_id=account.account_id, now=now, settings=runtime_of(request).settings
        )
        return session_id

    session_id = await run_in_threadpool(write_in, request, accept)
    if session_id is None:
        return _invitation_form(
            request, token, error="Deze naam is al in gebruik. Kies een andere.", status=400
        )
    response = see_other("/")
    set_session_cookie(response, session_id, request=request, settings=runtime_of(request).settings)
    return response
