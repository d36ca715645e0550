"""The resource server side: a bearer token becomes the request's AccessContext.

RFC 6750 (bearer tokens) with the SMART scope semantics of ``oauth/scopes.py``. No token,
an unknown, expired or revoked token, or the token of a removed client: 401 with a
``WWW-Authenticate: Bearer`` challenge. The lookup is one indexed query on the token's hash,
so a revocation holds from the very next request.

A token looked up once is known to this process (``provisional``): a plain read by id then
sends the token's check inside its own statement (``consent/caller.ProvisionalAccess``)
instead of a statement of its own before it. On PostgreSQL that statement's round trip was a
sixth of the server's CPU per partner read and a tenth of the backends' (docs/performance.md).
The check asks the same as the lookup, and that the token still says what it said; when the
read finds no row, the request goes the checked way, so a revoked token still gets 401 at
its very next request, in any process.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from starlette.requests import Request

from vault.consent.access import AccessContext, Permissions, registered_purposes
from vault.consent.caller import ProvisionalAccess
from vault.kernel.errors import Unauthorized
from vault.kernel.runtime import Runtime, now_micros
from vault.oauth.scopes import permissions_from
from vault.oauth.server import hash_token
from vault.store.registry import SCOPE_TYPES

__all__ = ["BearerTokenResolver"]

_LOOKUP = (
    "SELECT t.client_id, t.scope, t.patient_id, t.account_id, c.organization_id, c.purpose "
    "FROM oauth_token t JOIN oauth_client c ON c.client_id = t.client_id "
    "WHERE t.token_hash = ? AND t.kind = 'access' AND t.revoked = ? AND t.expires_at > ? "
    "AND c.removed_at IS NULL"
)


# What ``provisional`` sends inside a read: the lookup's conditions, and that the token and
# its client still say what the context was made of (NULL-safe: an app's token has no
# organization's purpose, a partner's no inwoner).
_STILL = (
    "EXISTS (SELECT 1 FROM oauth_token t JOIN oauth_client c ON c.client_id = t.client_id "
    "WHERE t.token_hash = {p} AND t.kind = 'access' AND t.revoked = {p} AND t.expires_at > {p} "
    "AND c.removed_at IS NULL AND t.client_id = {p} AND t.scope = {p} "
    "AND t.patient_id {same} {p} AND t.account_id {same} {p} "
    "AND c.organization_id {same} {p} AND c.purpose {same} {p})"
)
_KNOWN_TOKENS = 4096  # tokens this process remembers; all are forgotten past this many


class BearerTokenResolver:
    """Callable the app installs as its access resolver."""

    def __init__(self, runtime: Runtime) -> None:
        self._runtime = runtime
        qmark = runtime.db.paramstyle == "qmark"
        self._sql = _LOOKUP if qmark else _LOOKUP.replace("?", "%s")
        self._qmark = qmark
        self._still = _still_condition(qmark)
        # The rows of the tokens looked up here, by the token's hash (never the token).
        self._known: dict[str, tuple[Any, ...]] = {}

    async def __call__(self, request: Request) -> AccessContext:
        token = _bearer(request)
        if token is None:
            raise Unauthorized(
                "This request needs a bearer token issued by this vault",
                headers={"WWW-Authenticate": 'Bearer realm="regiekluis"'},
            )
        hashed = hash_token(token)
        row = await self._runtime.db.fetch_one_async(self._sql, (hashed, False, now_micros()))
        if row is None:
            self._known.pop(hashed, None)
            raise Unauthorized(
                "The access token is not valid: unknown, expired or revoked",
                headers={"WWW-Authenticate": 'Bearer realm="regiekluis", error="invalid_token"'},
            )
        if hashed not in self._known and len(self._known) >= _KNOWN_TOKENS:
            self._known.clear()
        self._known[hashed] = tuple(row)  # as it is now: its client may have changed
        return _context(*row)

    def provisional(self, request: Request) -> ProvisionalAccess | None:
        """The context of a token this process looked up before, with the condition that
        checks it inside the statement that reads (``ProvisionalAccess``); None for any
        other request, which takes the checked way."""
        token = _bearer(request)
        if token is None:
            return None
        hashed = hash_token(token)
        row = self._known.get(hashed)
        if row is None:
            return None
        values = (hashed, False, now_micros(), *row)
        params: tuple[Any, ...] | dict[str, Any] = values
        if not self._qmark:
            params = {f"rk_token_{n}": value for n, value in enumerate(values)}
        return ProvisionalAccess(_context(*row), self._still, params)


def _still_condition(qmark: bool) -> str:
    """``_STILL`` in the database's own words: ``{same}`` is NULL-safe equality, each ``{p}``
    the next parameter. On PostgreSQL they are named (``rk_token_0`` …, as ``provisional``
    names its values): the reads the condition goes into name theirs, and a statement
    cannot mix the two styles."""
    pieces = _STILL.replace("{same}", "IS" if qmark else "IS NOT DISTINCT FROM").split("{p}")
    marks = ["?" if qmark else f"%(rk_token_{n})s" for n in range(len(pieces) - 1)]
    return pieces[0] + "".join(mark + piece for mark, piece in zip(marks, pieces[1:], strict=True))


def _bearer(request: Request) -> str | None:
    """The token of an ``Authorization: Bearer`` header (RFC 6750 section 2.1), or None."""
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        return None
    return token


def _context(
    client_id: str,
    scope: str,
    patient_id: str | None,
    account_id: str | None,
    organization_id: str | None,
    purpose: str | None,
) -> AccessContext:
    """The context a token's row (``_LOOKUP``) gives: an inwoner's app or a partner's system."""
    organization = f"Organization/{organization_id}" if organization_id else None
    if patient_id is not None:
        return AccessContext(
            subject=f"client:{client_id}",
            kind="patient",
            patient_id=patient_id,
            client_id=client_id,
            account_id=account_id,
            organization=organization,
            permissions=_permissions(scope, "patient"),
            purposes=frozenset(),
            practitioner=None,
            representative=None,
        )
    return AccessContext(
        subject=f"client:{client_id}",
        kind="system",
        client_id=client_id,
        organization=organization,
        permissions=_permissions(scope, "system"),
        purposes=registered_purposes(purpose),
        patient_id=None,
        account_id=None,
        practitioner=None,
        representative=None,
    )


@lru_cache(maxsize=1024)
def _permissions(scope: str, context: str) -> Permissions:
    # A token's scope string is one of a few per client: parse each once, not per request.
    return permissions_from(scope.split(), context=context, known_types=SCOPE_TYPES)
