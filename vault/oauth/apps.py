"""The inwoner's apps: which hold her tokens now, and ending them.

SMART App Launch (standalone) gives an app access and refresh tokens for the inwoner's
own compartment. RFC 7009 lets the app give them up; this module lets the inwoner take
them back. Revoking marks every token of that app for her as revoked, so the bearer check
(``oauth/protector.py``, one indexed lookup per request) and the refresh grant
(``oauth/server.py``) refuse them from the very next request.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Connection, delete, func, or_, select, update

from vault.consent.models import NetworkLink
from vault.oauth.models import Account, OAuthClient, Token, WebSession

__all__ = [
    "AppAccess",
    "apps_with_access",
    "end_every_account",
    "revoke_account_tokens",
    "stop_apps",
]


@dataclass(frozen=True, slots=True)
class AppAccess:
    client_id: str
    name: str
    scopes: tuple[str, ...]  # what its live tokens allow
    since: int  # microseconds: when she said yes (the first token of a live approval)
    last_seen: int  # microseconds: its newest token (it last signed in or refreshed)


def apps_with_access(conn: Connection, *, patient_id: str, now: int) -> list[AppAccess]:
    """Every app (public client, not removed) with a live token for this inwoner."""
    # A family is one approval: the access and refresh tokens of one "ja", and every token
    # refreshed from them. It is live while one of its tokens still works.
    live_families = select(Token.family_id).where(
        Token.patient_id == patient_id,
        Token.revoked.is_(False),
        Token.expires_at > now,
        # A rotated refresh token is spent: the app holds the newer one.
        or_(Token.kind == "access", Token.rotated.is_(False)),
    )
    rows = conn.execute(
        select(
            Token.client_id,
            OAuthClient.name,
            Token.scope,
            func.min(Token.issued_at),
            func.max(Token.issued_at),
        )
        .join(OAuthClient, OAuthClient.client_id == Token.client_id)
        .where(
            Token.patient_id == patient_id,
            Token.revoked.is_(False),
            Token.family_id.in_(live_families),
            OAuthClient.kind == "public",
            OAuthClient.removed_at.is_(None),
        )
        .group_by(Token.client_id, OAuthClient.name, Token.scope)
    ).all()
    merged: dict[str, AppAccess] = {}
    for client_id, name, scope, since, last in rows:
        seen = merged.get(client_id)
        scopes = tuple(dict.fromkeys([*(seen.scopes if seen else ()), *scope.split()]))
        merged[client_id] = AppAccess(
            client_id,
            name,
            scopes,
            min(since, seen.since) if seen else since,
            max(last, seen.last_seen) if seen else last,
        )
    return sorted(merged.values(), key=lambda app: app.name.casefold())


def stop_apps(conn: Connection, *, patient_id: str, client_id: str | None = None) -> int:
    """Revoke every token (access and refresh) of one app, or of all apps, for the inwoner."""
    query = update(Token).where(Token.patient_id == patient_id, Token.revoked.is_(False))
    if client_id is not None:
        query = query.where(Token.client_id == client_id)
    else:
        public = select(OAuthClient.client_id).where(OAuthClient.kind == "public")
        query = query.where(Token.client_id.in_(public))
    return int(conn.execute(query.values(revoked=True)).rowcount or 0)


def revoke_account_tokens(conn: Connection, *, account_id: str) -> int:
    """Every token someone got by logging in (someone removed from a network)."""
    query = update(Token).where(Token.account_id == account_id, Token.revoked.is_(False))
    return int(conn.execute(query.values(revoked=True)).rowcount or 0)


def end_every_account(conn: Connection, *, patient_id: str) -> None:
    """Every way in to an erased inwoner's vault ends: her tokens (and her apps'), her own
    account, and the accounts of her network, with their sessions and links."""
    conn.execute(update(Token).where(Token.patient_id == patient_id).values(revoked=True))
    accounts = [
        *conn.scalars(select(Account.account_id).where(Account.patient_id == patient_id)),
        *conn.scalars(select(NetworkLink.account_id).where(NetworkLink.patient_id == patient_id)),
    ]
    if accounts:
        conn.execute(delete(WebSession).where(WebSession.account_id.in_(accounts)))
        conn.execute(delete(NetworkLink).where(NetworkLink.account_id.in_(accounts)))
        conn.execute(delete(Account).where(Account.account_id.in_(accounts)))
