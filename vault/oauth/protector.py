"""The resource server side: a bearer token becomes the request's AccessContext.

RFC 6750 (bearer tokens) with the SMART scope semantics of ``oauth/scopes.py``. No token,
an unknown, expired or revoked token, or the token of a removed client: 401 with a
``WWW-Authenticate: Bearer`` challenge. The lookup is one indexed query on the token's hash,
so a revocation holds from the very next request.
"""

from __future__ import annotations

from functools import lru_cache

from starlette.requests import Request

from vault.consent.access import AccessContext, Permissions, registered_purposes
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


class BearerTokenResolver:
    """Callable the app installs as its access resolver."""

    def __init__(self, runtime: Runtime) -> None:
        self._runtime = runtime
        self._sql = _LOOKUP if runtime.db.paramstyle == "qmark" else _LOOKUP.replace("?", "%s")

    async def __call__(self, request: Request) -> AccessContext:
        header = request.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise Unauthorized(
                "This request needs a bearer token issued by this vault",
                headers={"WWW-Authenticate": 'Bearer realm="regiekluis"'},
            )
        row = await self._runtime.db.fetch_one_async(
            self._sql, (hash_token(token.strip()), False, now_micros())
        )
        if row is None:
            raise Unauthorized(
                "The access token is not valid: unknown, expired or revoked",
                headers={"WWW-Authenticate": 'Bearer realm="regiekluis", error="invalid_token"'},
            )
        client_id, scope, patient_id, account_id, organization_id, purpose = row
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
