"""Logging in to the consent page: sessions in the database, CSRF tokens, login throttling.

- The session id is 32 random bytes in an ``HttpOnly``, ``SameSite=Lax`` cookie, ``Secure``
  whenever the page is reached over https; the database keeps only its SHA-256 hash.
- Every session has its own CSRF token; every POST must echo it (synchronizer token
  pattern, OWASP CSRF cheat sheet). The login form, before there is a session, uses a
  double-submit cookie instead.
- A session ends after ``Settings.session_idle_minutes`` without a request (OWASP session
  management: idle timeout) and always ``session_max_minutes`` after it began (absolute
  timeout). ``expires_at`` is the idle deadline and slides forward with every request (at
  most once a minute, to spare the database a write per page); ``created_at`` bounds it.
- Failed logins are counted per user name in the database (any worker sees them): after
  ``MAX_FAILURES`` within ``FAILURE_WINDOW`` the name is refused until the window passes.
  The refusal does not depend on whether the name exists.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from dataclasses import dataclass

from sqlalchemy import Connection, delete, func, insert, select, update
from starlette.requests import Request
from starlette.responses import Response

from vault.consent.access import AccessContext, Permissions
from vault.consent.representation import standing
from vault.kernel.config import Settings
from vault.kernel.crypto import BlindIndex
from vault.oauth.accounts import AccountInfo, authenticate, find_account
from vault.oauth.models import LoginFailure, WebSession

__all__ = [
    "LOGIN_CSRF_COOKIE",
    "SESSION_COOKIE",
    "LoginOutcome",
    "Visitor",
    "cookie_is_secure",
    "end_session",
    "load_visitor",
    "log_in",
    "needs_touch",
    "start_session",
    "touch_session",
]

SESSION_COOKIE = "rk_session"
LOGIN_CSRF_COOKIE = "rk_login_csrf"
MAX_FAILURES = 5
FAILURE_WINDOW = 15 * 60
MICROS = 1_000_000


def hash_secret(value: str) -> str:
    return hashlib.sha256(value.encode("utf-8")).hexdigest()


def cookie_is_secure(request: Request, settings: Settings) -> bool:
    """Secure cookies whenever the browser talks https to us or to our proxy."""
    if request.url.scheme == "https" or settings.public_base_url.startswith("https://"):
        return True
    # X-Forwarded-Proto is only believed when the operator says a proxy sets it.
    trusted = os.environ.get("VAULT_TRUST_FORWARDED_PROTO", "") == "1"
    return trusted and request.headers.get("x-forwarded-proto", "").lower() == "https"


@dataclass(frozen=True, slots=True)
class Visitor:
    """Who is logged in, and whose vault they act on."""

    session_hash: str
    csrf_token: str
    account_id: str
    display_name: str
    patient_id: str
    # Someone of the network: the RelatedPerson they are; with a legal basis they manage
    # the inwoner's grants as a representative.
    related_person: str | None = None
    legal_basis: str | None = None
    expires_at: int = 0  # the idle deadline, microseconds
    # A parent whose "ouder" role lapsed at the child's 16th birthday (consent/representation).
    lapsed_basis: str | None = None

    @property
    def is_inwoner(self) -> bool:
        return self.related_person is None

    @property
    def may_manage(self) -> bool:
        return self.related_person is None or self.legal_basis is not None

    def context(self) -> AccessContext:
        """The caller's own access decision: the inwoner's, or what was granted to them."""
        if self.related_person is None:
            return AccessContext(
                subject=f"inwoner:{self.patient_id}",
                kind="patient",
                patient_id=self.patient_id,
                account_id=self.account_id,
                organization=None,
                client_id=None,
                permissions=Permissions.everything(),
                purposes=frozenset(),
                practitioner=None,
                representative=None,
            )
        if self.legal_basis is not None:
            return AccessContext(
                subject=f"vertegenwoordiger:{self.account_id}",
                kind="patient",
                patient_id=self.patient_id,
                account_id=self.account_id,
                representative=self.related_person,
                organization=None,
                client_id=None,
                permissions=Permissions.everything(),
                purposes=frozenset(),
                practitioner=None,
            )
        # Someone of the network sees what a Consent grants their RelatedPerson: the same
        # decision a partner system gets, with their RelatedPerson as the grantee.
        return AccessContext(
            subject=f"netwerk:{self.account_id}",
            kind="system",
            account_id=self.account_id,
            representative=self.related_person,
            patient_id=None,
            organization=None,
            client_id=None,
            permissions=Permissions.everything(),
            purposes=frozenset(),
            practitioner=None,
        )


def load_visitor(
    conn: Connection, session_id: str, *, now: int, settings: Settings
) -> Visitor | None:
    """The visitor of a live session: neither idle too long nor past its absolute end."""
    if not session_id or len(session_id) > 200:
        return None
    row = conn.execute(
        select(WebSession).where(
            WebSession.id_hash == hash_secret(session_id),
            WebSession.expires_at > now,
            WebSession.created_at > now - settings.session_max_minutes * 60 * MICROS,
        )
    ).first()
    if row is None:
        return None
    account = find_account(conn, row.account_id)
    if account is None:
        return None
    return _visitor(
        conn,
        account,
        session_hash=row.id_hash,
        csrf=row.csrf_token,
        expires_at=row.expires_at,
        now=now,
    )


def needs_touch(visitor: Visitor, *, now: int, settings: Settings) -> bool:
    """True when the idle deadline was last moved more than a minute ago."""
    return visitor.expires_at < now + (settings.session_idle_minutes * 60 - 60) * MICROS


def touch_session(conn: Connection, session_hash: str, *, now: int, settings: Settings) -> None:
    """Activity: the idle deadline moves to now + idle time, never past the absolute end."""
    row = conn.execute(
        select(WebSession.created_at).where(
            WebSession.id_hash == session_hash, WebSession.expires_at > now
        )
    ).first()
    if row is None:
        return
    deadline = min(
        now + settings.session_idle_minutes * 60 * MICROS,
        row.created_at + settings.session_max_minutes * 60 * MICROS,
    )
    conn.execute(
        update(WebSession).where(WebSession.id_hash == session_hash).values(expires_at=deadline)
    )


def _visitor(
    conn: Connection,
    account: AccountInfo,
    *,
    session_hash: str,
    csrf: str,
    expires_at: int,
    now: int,
) -> Visitor | None:
    if account.patient_id is not None:
        return Visitor(
            session_hash,
            csrf,
            account.account_id,
            account.display_name,
            account.patient_id,
            expires_at=expires_at,
        )
    place = standing(conn, account_id=account.account_id, now=now)
    if place is None:
        return None  # removed from the network: the session ends with this request
    return Visitor(
        session_hash,
        csrf,
        account.account_id,
        account.display_name,
        place.patient_id,
        related_person=f"RelatedPerson/{place.related_person_id}",
        legal_basis=place.legal_basis,
        lapsed_basis=place.lapsed_basis,
        expires_at=expires_at,
    )


def start_session(
    conn: Connection, *, account_id: str, now: int, settings: Settings
) -> tuple[str, str]:
    """A fresh session (never one the browser brought along); returns (id, csrf token)."""
    session_id = secrets.token_urlsafe(32)
    csrf = secrets.token_urlsafe(32)
    conn.execute(delete(WebSession).where(WebSession.expires_at <= now))
    conn.execute(
        insert(WebSession).values(
            id_hash=hash_secret(session_id),
            account_id=account_id,
            csrf_token=csrf,
            created_at=now,
            expires_at=now
            + min(settings.session_idle_minutes, settings.session_max_minutes) * 60 * MICROS,
        )
    )
    return session_id, csrf


def end_session(conn: Connection, session_hash: str) -> None:
    conn.execute(delete(WebSession).where(WebSession.id_hash == session_hash))


def set_session_cookie(
    response: Response, session_id: str, *, request: Request, settings: Settings
) -> None:
    response.set_cookie(
        SESSION_COOKIE,
        session_id,
        max_age=settings.session_max_minutes * 60,
        path="/",
        httponly=True,
        samesite="lax",
        secure=cookie_is_secure(request, settings),
    )


def csrf_matches(expected: str, given: object) -> bool:
    return (
        isinstance(given, str)
        and bool(expected)
        and hmac.compare_digest(expected.encode(), given.encode())
    )


@dataclass(frozen=True, slots=True)
class LoginOutcome:
    account: AccountInfo | None
    throttled: bool = False


def log_in(
    conn: Connection, *, username: str, password: str, blind: BlindIndex, now: int
) -> LoginOutcome:
    """Check a password, counting failures per user name; throttled names are not checked."""
    key = blind.token("login:" + username.strip().lower())
    since = now - FAILURE_WINDOW * MICROS
    conn.execute(delete(LoginFailure).where(LoginFailure.at <= since))
    failures = conn.execute(
        select(func.count())
        .select_from(LoginFailure)
        .where(LoginFailure.username_hash == key, LoginFailure.at > since)
    ).scalar_one()
    if failures >= MAX_FAILURES:
        return LoginOutcome(None, throttled=True)
    account = authenticate(conn, username=username, password=password)
    if account is None or (account.patient_id is None and not _has_link(conn, account, now)):
        conn.execute(insert(LoginFailure).values(username_hash=key, at=now))
        return LoginOutcome(None)
    conn.execute(delete(LoginFailure).where(LoginFailure.username_hash == key))
    return LoginOutcome(account)


def _has_link(conn: Connection, account: AccountInfo, now: int) -> bool:
    return standing(conn, account_id=account.account_id, now=now) is not None
