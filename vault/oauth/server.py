"""The vault's OAuth 2 authorization server, built on authlib by registration.

- SMART Backend Services: ``client_credentials`` with ``private_key_jwt`` (RFC 7523).
- SMART App Launch, standalone: ``authorization_code`` with PKCE S256 only (RFC 7636),
  refresh tokens only with ``offline_access``, rotated on every use; reuse of a rotated
  refresh token, or of an authorization code, revokes everything that authorization issued.
- Revocation (RFC 7009) and introspection (RFC 7662).

Access tokens are opaque random strings stored only as SHA-256 hashes: a lookup costs a
few microseconds where verifying a signed JWT costs a hundred, and revocation holds from
the next request. authlib's endpoints are synchronous; the router runs them in a thread.

Over 500 lines: authlib's grant and endpoint classes, one per flow the vault offers, and the
storage they share.
"""

from __future__ import annotations

import hashlib
import secrets
import uuid
from typing import Any

import orjson
from authlib.oauth2.rfc6749 import (
    AuthorizationServer,
    ClientMixin,
    InvalidGrantError,
    InvalidRequestError,
    InvalidScopeError,
    TokenMixin,
)
from authlib.oauth2.rfc6749 import grants as rfc6749_grants
from authlib.oauth2.rfc7009 import RevocationEndpoint
from authlib.oauth2.rfc7636 import CodeChallenge
from authlib.oauth2.rfc7662 import IntrospectionEndpoint
from joserfc import jwt
from sqlalchemy import Connection, delete, insert, select, update
from sqlalchemy.exc import IntegrityError
from starlette.responses import Response

from vault.kernel.runtime import Runtime, now_micros
from vault.oauth.accounts import AccountInfo, find_account
from vault.oauth.client_assertion import PrivateKeyJwt
from vault.oauth.keys import ClientKeyResolver, SigningKeys
from vault.oauth.models import AuthorizationCode, OAuthClient, Token, UsedJti
from vault.oauth.redirect_uris import is_safe_redirect_uri
from vault.oauth.scopes import InvalidScope, grant_scopes, parse_scope
from vault.store.registry import SCOPE_TYPES

__all__ = ["VaultAuthorizationServer", "VaultClient", "hash_token"]

CODE_SECONDS = 120
APP_TOKEN_SECONDS = 900
REFRESH_TOKEN_SECONDS = 30 * 86400


def hash_token(value: str) -> str:
    return hashlib.sha256(value.encode("utf-8")).hexdigest()


class VaultClient(ClientMixin):  # type: ignore[misc]
    def __init__(self, row: Any) -> None:
        self.client_id = row.client_id
        self.name = row.name
        self.kind = row.kind
        self.organization_id = row.organization_id
        self.jwks = row.jwks
        self.jwks_uri = row.jwks_uri
        self.redirect_uris = [u for u in row.redirect_uris.splitlines() if u]
        self.scope = row.scope

    def get_client_id(self) -> str:
        return str(self.client_id)

    def get_default_redirect_uri(self) -> str | None:
        if len(self.redirect_uris) != 1 or not is_safe_redirect_uri(self.redirect_uris[0]):
            return None
        return str(self.redirect_uris[0])

    def get_allowed_scope(self, scope: str) -> str:
        try:
            granted = grant_scopes(scope.split(), self.scope.split(), known_types=SCOPE_TYPES)
        except InvalidScope as exc:
            raise InvalidScopeError(description=str(exc)) from None
        if not granted:
            raise InvalidScopeError(description="Ask for at least one scope")
        return " ".join(granted)

    def check_redirect_uri(self, redirect_uri: str) -> bool:
        # Exact match only; a URI registered before the rules of redirect_uris.py is not used.
        return redirect_uri in self.redirect_uris and is_safe_redirect_uri(redirect_uri)

    def check_client_secret(self, client_secret: str) -> bool:
        return False  # no shared secrets in this vault

    def check_endpoint_auth_method(self, method: str, endpoint: str) -> bool:
        if self.kind == "backend":
            return method == PrivateKeyJwt.METHOD
        # authlib names the revocation endpoint "revocation" (RevocationEndpoint.ENDPOINT_NAME).
        return method == "none" and endpoint in ("token", RevocationEndpoint.ENDPOINT_NAME)

    def check_response_type(self, response_type: str) -> bool:
        return self.kind == "public" and response_type == "code"

    def check_grant_type(self, grant_type: str) -> bool:
        if self.kind == "backend":
            return grant_type == "client_credentials"
        return grant_type in ("authorization_code", "refresh_token")


class StoredToken(TokenMixin):  # type: ignore[misc]
    def __init__(self, row: Any) -> None:
        self.row = row

    def check_client(self, client: VaultClient) -> bool:
        return bool(self.row.client_id == client.client_id)

    def get_scope(self) -> str:
        return str(self.row.scope)

    def get_expires_in(self) -> int:
        return int(max(0, (self.row.expires_at - now_micros()) // 1_000_000))

    def is_expired(self) -> bool:
        return bool(self.row.expires_at <= now_micros())

    def is_revoked(self) -> bool:
        return bool(self.row.revoked)


class SmartCodeChallenge(CodeChallenge):  # type: ignore[misc]
    """PKCE as SMART requires it: S256, always; ``plain`` and a missing challenge refused."""

    SUPPORTED_CODE_CHALLENGE_METHOD = ["S256"]
    DEFAULT_CODE_CHALLENGE_METHOD = "S256"

    def validate_code_challenge(self, grant: Any, redirect_uri: str) -> None:
        data = grant.request.payload.data
        if not data.get("code_challenge"):
            raise InvalidRequestError("PKCE is required: send code_challenge (S256)")
        if data.get("code_challenge_method") != "S256":
            raise InvalidRequestError("code_challenge_method must be S256")
        super().validate_code_challenge(grant, redirect_uri)

    def get_authorization_code_challenge(self, authorization_code: Any) -> str:
        return str(authorization_code.code_challenge)

    def get_authorization_code_challenge_method(self, authorization_code: Any) -> str:
        return str(authorization_code.code_challenge_method)


class _Code:
    """An authorization code row as authlib expects it."""

    def __init__(self, row: Any) -> None:
        self.row = row
        self.code_challenge = row.code_challenge
        self.code_challenge_method = row.code_challenge_method

    def get_redirect_uri(self) -> str:
        return str(self.row.redirect_uri)

    def get_scope(self) -> str:
        return str(self.row.scope)

    def get_nonce(self) -> str | None:
        nonce = self.row.nonce
        return str(nonce) if nonce is not None else None


class _ClientScope:
    """Scopes are checked against the client's registration, not only the grammar:
    a token is never wider than what the client was registered for."""

    request: Any
    server: Any

    def validate_requested_scope(self) -> None:
        scope = self.request.payload.scope or ""
        self.server.validate_requested_scope(scope)
        client = getattr(self.request, "client", None)
        if client is not None and scope:
            client.get_allowed_scope(scope)


class ClientCredentialsGrant(_ClientScope, rfc6749_grants.ClientCredentialsGrant):  # type: ignore[misc]
    TOKEN_ENDPOINT_AUTH_METHODS = [PrivateKeyJwt.METHOD]


class AuthorizationCodeGrant(_ClientScope, rfc6749_grants.AuthorizationCodeGrant):  # type: ignore[misc]
    TOKEN_ENDPOINT_AUTH_METHODS = ["none"]
    server: VaultAuthorizationServer

    def save_authorization_code(self, code: str, request: Any) -> None:
        client: VaultClient = request.client
        account: AccountInfo = request.user
        scope = client.get_allowed_scope(request.payload.scope or "")
        with self.server.runtime.db.write() as conn:
            conn.execute(
                insert(AuthorizationCode).values(
                    code_hash=hash_token(code),
                    client_id=client.client_id,
                    redirect_uri=request.payload.redirect_uri or "",
                    scope=scope,
                    account_id=account.account_id,
                    patient_id=account.patient_id,
                    code_challenge=request.payload.data.get("code_challenge"),
                    code_challenge_method=request.payload.data.get("code_challenge_method"),
                    nonce=request.payload.data.get("nonce"),
                    expires_at=now_micros() + CODE_SECONDS * 1_000_000,
                    used=False,
                )
            )

    def query_authorization_code(self, code: str, client: VaultClient) -> _Code | None:
        code_hash = hash_token(code)
        with self.server.runtime.db.write() as conn:
            row = conn.execute(
                select(AuthorizationCode).where(AuthorizationCode.code_hash == code_hash)
            ).first()
            if row is None:
                return None
            if row.client_id != client.client_id:
                # RFC 6749 sections 4.1.2 and 10.5: a code in the wrong hands may be stolen;
                # it is burnt, and what its rightful exchange gave is revoked.
                conn.execute(
                    update(AuthorizationCode)
                    .where(AuthorizationCode.code_hash == code_hash)
                    .values(used=True)
                )
                self.server.revoke_family(conn, code_hash)
                return None
            # Claiming the code is one conditional update, so two racing exchanges
            # cannot both win; a second use revokes what the first one received.
            claimed = conn.execute(
                update(AuthorizationCode)
                .where(AuthorizationCode.code_hash == code_hash, AuthorizationCode.used.is_(False))
                .values(used=True)
            ).rowcount
            if claimed != 1:
                self.server.revoke_family(conn, code_hash)
                return None
            if row.expires_at <= now_micros():
                return None
        self.request.family_id = code_hash
        return _Code(row)

    def delete_authorization_code(self, authorization_code: _Code) -> None:
        """Nothing to do: the code was claimed when it was looked up."""

    def authenticate_user(self, authorization_code: _Code) -> AccountInfo | None:
        with self.server.runtime.db.read() as conn:
            return find_account(conn, authorization_code.row.account_id)


class RefreshTokenGrant(rfc6749_grants.RefreshTokenGrant):  # type: ignore[misc]
    TOKEN_ENDPOINT_AUTH_METHODS = ["none"]
    INCLUDE_NEW_REFRESH_TOKEN = True
    server: VaultAuthorizationServer

    def authenticate_refresh_token(self, refresh_token: str) -> StoredToken | None:
        with self.server.runtime.db.write() as conn:
            row = conn.execute(
                select(Token).where(
                    Token.token_hash == hash_token(refresh_token), Token.kind == "refresh"
                )
            ).first()
            if row is None:
                return None
            if row.rotated:
                # A rotated refresh token came back: someone holds a stolen copy.
                self.server.revoke_family(conn, row.family_id)
                return None
            if row.revoked or row.expires_at <= now_micros():
                return None
        self.request.family_id = row.family_id
        return StoredToken(row)

    def authenticate_user(self, refresh_token: StoredToken) -> AccountInfo | None:
        account_id = refresh_token.row.account_id
        if account_id is None:
            return None
        with self.server.runtime.db.read() as conn:
            return find_account(conn, account_id)

    def revoke_old_credential(self, refresh_token: StoredToken) -> None:
        with self.server.runtime.db.write() as conn:
            rotated = conn.execute(
                update(Token)
                .where(Token.token_hash == refresh_token.row.token_hash, Token.rotated.is_(False))
                .values(rotated=True)
            ).rowcount
            if rotated != 1:
                self.server.revoke_family(conn, refresh_token.row.family_id)
        if rotated != 1:
            raise InvalidGrantError(description="This refresh token was already used")


class VaultRevocationEndpoint(RevocationEndpoint):  # type: ignore[misc]
    CLIENT_AUTH_METHODS = [PrivateKeyJwt.METHOD, "none"]
    server: VaultAuthorizationServer

    def query_token(self, token_string: str, token_type_hint: str | None) -> StoredToken | None:
        return self.server.find_token(token_string)

    def revoke_token(self, token: StoredToken, request: Any) -> None:
        with self.server.runtime.db.write() as conn:
            conn.execute(
                update(Token).where(Token.token_hash == token.row.token_hash).values(revoked=True)
            )
            if token.row.kind == "refresh":
                self.server.revoke_family(conn, token.row.family_id)


class VaultIntrospectionEndpoint(IntrospectionEndpoint):  # type: ignore[misc]
    CLIENT_AUTH_METHODS = [PrivateKeyJwt.METHOD]
    server: VaultAuthorizationServer

    def query_token(self, token_string: str, token_type_hint: str | None) -> StoredToken | None:
        return self.server.find_token(token_string)

    def check_permission(self, token: StoredToken, client: VaultClient, request: Any) -> bool:
        # A client learns about its own tokens only.
        return token.check_client(client)

    def introspect_token(self, token: StoredToken) -> dict[str, Any]:
        row = token.row
        payload: dict[str, Any] = {
            "active": True,
            "scope": row.scope,
            "client_id": row.client_id,
            "token_type": "Bearer" if row.kind == "access" else "refresh_token",
            "exp": row.expires_at // 1_000_000,
            "iat": row.issued_at // 1_000_000,
        }
        if row.patient_id:
            payload["patient"] = row.patient_id
        if row.account_id:
            payload["sub"] = row.account_id
        return payload


class VaultAuthorizationServer(AuthorizationServer):  # type: ignore[misc]
    def __init__(self, runtime: Runtime, *, backend_token_seconds: int = 300) -> None:
        super().__init__()
        self.runtime = runtime
        self.backend_token_seconds = backend_token_seconds
        self.client_keys = ClientKeyResolver(
            allow_local_dev=runtime.settings.notify_allow_local_http
        )
        self.signing_keys = SigningKeys(runtime.keys.keyring)
        self.register_client_auth_method(
            PrivateKeyJwt.METHOD,
            PrivateKeyJwt(
                audiences=lambda request: [request.token_endpoint],
                keys=lambda client, kid: self.client_keys.keys(
                    client_id=client.client_id, jwks=client.jwks, jwks_uri=client.jwks_uri, kid=kid
                ),
                jti_seen=self.jti_seen,
                remember_jti=self.remember_jti,
            ),
        )
        self.register_grant(ClientCredentialsGrant)
        self.register_grant(AuthorizationCodeGrant, [SmartCodeChallenge(required=True)])
        self.register_grant(RefreshTokenGrant)
        self.register_endpoint(VaultRevocationEndpoint)
        self.register_endpoint(VaultIntrospectionEndpoint)

    # -- framework integration -----------------------------------------------------------

    def create_oauth2_request(self, request: Any) -> Any:
        return request  # the router already built a StarletteOAuth2Request

    def create_json_request(self, request: Any) -> Any:
        return request

    def handle_response(self, status: int, body: Any, headers: Any) -> Response:
        content = orjson.dumps(body) if isinstance(body, dict) else (body or b"")
        response = Response(content, status_code=status, headers=dict(headers or []))
        if isinstance(body, dict):
            response.headers["content-type"] = "application/json"
        response.headers["cache-control"] = "no-store"
        return response

    def send_signal(self, name: str, *args: Any, **kwargs: Any) -> None:
        """No signals: the access log records what matters."""

    def validate_requested_scope(self, scope: str | None) -> None:
        for item in (scope or "").split():
            try:
                parse_scope(item, known_types=SCOPE_TYPES)
            except InvalidScope as exc:
                raise InvalidScopeError(description=str(exc)) from None

    # -- storage -------------------------------------------------------------------------

    def query_client(self, client_id: str) -> VaultClient | None:
        with self.runtime.db.read() as conn:
            row = conn.execute(
                select(OAuthClient).where(
                    OAuthClient.client_id == client_id, OAuthClient.removed_at.is_(None)
                )
            ).first()
        return VaultClient(row) if row is not None else None

    def jti_seen(self, client_id: str, jti: str) -> bool:
        """Whether an assertion id was used before: a cheap look before any key is fetched."""
        with self.runtime.db.read(snapshot=False) as conn:
            seen = conn.execute(
                select(UsedJti.jti).where(
                    UsedJti.client_id == client_id,
                    UsedJti.jti == jti,
                    UsedJti.expires_at >= now_micros(),
                )
            ).first()
        return seen is not None

    def remember_jti(self, client_id: str, jti: str, expires_at_seconds: int) -> bool:
        """Record an assertion id; False when it was seen before (a replay)."""
        now = now_micros()
        try:
            with self.runtime.db.write() as conn:
                conn.execute(
                    delete(UsedJti).where(UsedJti.client_id == client_id, UsedJti.expires_at < now)
                )
                seen = conn.execute(
                    select(UsedJti.jti).where(UsedJti.client_id == client_id, UsedJti.jti == jti)
                ).first()
                if seen is not None:
                    return False
                conn.execute(
                    insert(UsedJti).values(
                        client_id=client_id, jti=jti, expires_at=expires_at_seconds * 1_000_000
                    )
                )
        except IntegrityError:
            return False  # the same assertion, sent twice at once: the other one won
        return True

    def generate_token(
        self,
        client: VaultClient,
        grant_type: str,
        user: Any = None,
        scope: str | None = None,
        expires_in: int | None = None,
        include_refresh_token: bool = True,
    ) -> dict[str, Any]:
        lifetime = self.backend_token_seconds if client.kind == "backend" else APP_TOKEN_SECONDS
        # The one place every grant passes: the granted scope is narrowed here for all.
        granted = client.get_allowed_scope(scope or "")
        token: dict[str, Any] = {
            "token_type": "Bearer",
            "access_token": secrets.token_urlsafe(32),
            "expires_in": expires_in or lifetime,
            "scope": granted,
        }
        if include_refresh_token and "offline_access" in granted.split():
            token["refresh_token"] = secrets.token_urlsafe(32)
        return token

    def save_token(self, token: dict[str, Any], request: Any) -> None:
        client: VaultClient = request.client
        account: AccountInfo | None = getattr(request, "user", None)
        patient_id = account.patient_id if account is not None else None
        family_id = getattr(request, "family_id", None) or str(uuid.uuid4())
        now = now_micros()
        common = {
            "client_id": client.client_id,
            "scope": token["scope"],
            "patient_id": patient_id,
            "account_id": account.account_id if account is not None else None,
            "family_id": family_id,
            "issued_at": now,
            "revoked": False,
            "rotated": False,
        }
        with self.runtime.db.write() as conn:
            conn.execute(
                insert(Token).values(
                    token_hash=hash_token(token["access_token"]),
                    kind="access",
                    expires_at=now + int(token["expires_in"]) * 1_000_000,
                    **common,
                )
            )
            if "refresh_token" in token:
                conn.execute(
                    insert(Token).values(
                        token_hash=hash_token(token["refresh_token"]),
                        kind="refresh",
                        expires_at=now + REFRESH_TOKEN_SECONDS * 1_000_000,
                        **common,
                    )
                )
            # SMART launch context and OpenID Connect ride along in the token response.
            scopes = token["scope"].split()
            if patient_id is not None and (
                "launch/patient" in scopes or any(s.startswith("patient/") for s in scopes)
            ):
                token["patient"] = patient_id
            if "openid" in scopes and account is not None:
                token["id_token"] = self._id_token(conn, request, account, client, now, scopes)

    def _id_token(
        self,
        conn: Connection,
        request: Any,
        account: AccountInfo,
        client: VaultClient,
        now: int,
        token_scopes: list[str],
    ) -> str:
        key = self.signing_keys.current(conn)
        issued = now // 1_000_000
        claims: dict[str, Any] = {
            "iss": request.issuer,
            "sub": account.account_id,
            "aud": client.client_id,
            "iat": issued,
            "exp": issued + APP_TOKEN_SECONDS,
            "name": account.display_name,
        }
        # SMART: the fhirUser claim comes with the fhirUser scope only.
        if account.patient_id is not None and "fhirUser" in token_scopes:
            claims["fhirUser"] = f"{request.fhir_base}/Patient/{account.patient_id}"
        code = getattr(request, "authorization_code", None)
        if code is not None and code.get_nonce():
            claims["nonce"] = code.get_nonce()
        return jwt.encode({"alg": "RS256", "kid": key.kid}, claims, key)

    def find_token(self, token_string: str) -> StoredToken | None:
        with self.runtime.db.read() as conn:
            row = conn.execute(
                select(Token).where(Token.token_hash == hash_token(token_string))
            ).first()
        return StoredToken(row) if row is not None else None

    @staticmethod
    def revoke_family(conn: Connection, family_id: str | None) -> None:
        if family_id is not None:
            conn.execute(update(Token).where(Token.family_id == family_id).values(revoked=True))
