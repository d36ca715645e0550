"""Logging in through an outside OpenID Connect provider (a DigiD broker in real life).

OpenID Connect Core 1.0, section 3.1 (authorization code flow) on authlib's OAuth 2 client:

- the provider is found through its discovery document (OpenID Connect Discovery 1.0,
  section 4); its ``issuer`` must be exactly the configured one;
- every login carries a fresh ``state`` (RFC 6749, section 10.12), ``nonce`` (Core,
  section 3.1.2.1) and PKCE S256 verifier (RFC 7636). They travel in a short-lived cookie
  sealed with AES-256-GCM under a key derived from the vault's blind-index key, so any
  worker can finish a login another began and nothing is stored per attempt;
- the id_token is checked as Core section 3.1.3.7 asks: signature against the provider's
  JWKS (asymmetric algorithms only), ``iss``, ``aud`` (and ``azp`` when there are more
  audiences), ``exp``, ``iat`` and ``nonce``;
- the configured claim carries the BSN. It is looked up through the blind index of the
  Patient's identifier and never stored or logged.

Every way this can fail is a ``OidcRefused`` with a reason code for the operator's log
(no personal data in it); the page shows one plain Dutch sentence.
"""

from __future__ import annotations

import base64
import hmac
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import orjson
from authlib.common.security import generate_token
from authlib.common.urls import url_decode
from authlib.oauth2.client import OAuth2Client
from authlib.oauth2.rfc7523 import PrivateKeyJWT
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet
from sqlalchemy import Connection, select

from vault.consent.access import AccessContext
from vault.fhir.repository import Repository
from vault.kernel.config import OidcSettings
from vault.kernel.runtime import Runtime
from vault.oauth.accounts import AccountInfo, create_account, find_account
from vault.oauth.models import Account
from vault.page.data import display_name

__all__ = [
    "BSN_SYSTEM",
    "FlowState",
    "OidcRefused",
    "account_for_bsn",
    "begin",
    "finish",
    "open_state",
    "seal_state",
]

BSN_SYSTEM = "http://fhir.nl/fhir/NamingSystem/bsn"
STATE_SECONDS = 10 * 60
LEEWAY_SECONDS = 60
# Core 3.1.3.7: the id_token is signed; "none" and shared-secret HMAC are not accepted.
SIGNING_ALGORITHMS = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384")


AUTH_METHODS = {True: "private_key_jwt", False: "client_secret_basic"}


class OidcRefused(Exception):
    """The login through the provider did not prove who this is; ``reason`` is for the log."""

    def __init__(self, reason: str, *, unknown_person: bool = False, stopped: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.unknown_person = unknown_person
        self.stopped = stopped


class _HttpxSession:
    """The one thing authlib's client needs from a session: a form POST (``_fetch_token``)."""

    def __init__(self, client: httpx.Client) -> None:
        self._client = client

    def post(self, url: str, *, data: dict[str, str], headers: Any, auth: Any) -> httpx.Response:
        # authlib's ClientAuth signs (uri, headers, body) the same way for every transport.
        uri, signed_headers, signed_body = auth.prepare("POST", url, dict(headers), _form(data))
        return self._client.post(uri, content=signed_body.encode(), headers=signed_headers)


def _form(data: dict[str, str]) -> str:
    return str(httpx.QueryParams(data))


def _client(
    settings: OidcSettings, http: httpx.Client, redirect_uri: str, *, token_endpoint: str = ""
) -> OAuth2Client:
    """authlib's client; with a key file it signs a private_key_jwt assertion instead."""
    uses_key = bool(settings.private_key_file)
    secret = (
        Path(settings.private_key_file).read_text(encoding="utf-8")
        if uses_key
        else settings.client_secret
    )
    client = OAuth2Client(
        _HttpxSession(http),
        client_id=settings.client_id,
        client_secret=secret,
        token_endpoint_auth_method=AUTH_METHODS[uses_key],
        scope=settings.scope,
        redirect_uri=redirect_uri,
        code_challenge_method="S256",
    )
    if uses_key:
        # The assertion's audience is the token endpoint (RFC 7523, section 3).
        client.register_client_auth_method(PrivateKeyJWT(token_endpoint or None))
    return client


def discover(settings: OidcSettings, http: httpx.Client) -> dict[str, Any]:
    """The provider's metadata; refused unless it names the configured issuer."""
    try:
        response = http.get(settings.issuer + "/.well-known/openid-configuration")
        metadata = response.json() if response.status_code == 200 else None
    except (httpx.HTTPError, ValueError):
        raise OidcRefused("discovery unreachable") from None
    if not isinstance(metadata, dict) or metadata.get("issuer") != settings.issuer:
        raise OidcRefused("discovery names another issuer")
    for name in ("authorization_endpoint", "token_endpoint", "jwks_uri"):
        if not isinstance(metadata.get(name), str):
            raise OidcRefused(f"discovery lacks {name}")
    return metadata


# -- the state of one login, in a sealed cookie ------------------------------------------------


@dataclass(frozen=True, slots=True)
class FlowState:
    state: str
    nonce: str
    verifier: str
    redirect_uri: str
    expires: int  # unix seconds


def _state_key(runtime: Runtime) -> bytes:
    return runtime.blind.derive(b"regiekluis/oidc-login-state")


def seal_state(runtime: Runtime, flow: FlowState) -> str:
    nonce = os.urandom(12)
    body = orjson.dumps([flow.state, flow.nonce, flow.verifier, flow.redirect_uri, flow.expires])
    sealed = AESGCM(_state_key(runtime)).encrypt(nonce, body, b"oidc-login")
    return base64.urlsafe_b64encode(nonce + sealed).decode("ascii")


def open_state(runtime: Runtime, cookie: str, *, now: float) -> FlowState:
    try:
        raw = base64.urlsafe_b64decode(cookie.encode("ascii"))
        body = AESGCM(_state_key(runtime)).decrypt(raw[:12], raw[12:], b"oidc-login")
        state, nonce, verifier, redirect_uri, expires = orjson.loads(body)
    except (ValueError, InvalidTag, TypeError):
        raise OidcRefused("login state cookie missing or altered") from None
    if int(expires) < now:
        raise OidcRefused("login took too long")
    return FlowState(str(state), str(nonce), str(verifier), str(redirect_uri), int(expires))


# -- the flow ---------------------------------------------------------------------------------


def begin(
    settings: OidcSettings, runtime: Runtime, http: httpx.Client, *, redirect_uri: str
) -> tuple[str, str]:
    """The provider's authorization URL and the sealed cookie that belongs to it."""
    metadata = discover(settings, http)
    flow = FlowState(
        state=generate_token(43),
        nonce=generate_token(43),
        verifier=generate_token(64),
        redirect_uri=redirect_uri,
        expires=int(time.time()) + STATE_SECONDS,
    )
    client = _client(settings, http, redirect_uri)
    url, _ = client.create_authorization_url(
        metadata["authorization_endpoint"],
        state=flow.state,
        code_verifier=flow.verifier,
        nonce=flow.nonce,
    )
    return str(url), seal_state(runtime, flow)


def finish(
    settings: OidcSettings,
    http: httpx.Client,
    flow: FlowState,
    *,
    query: str,
    now: float,
) -> dict[str, Any]:
    """Trade the code for tokens and return the id_token's checked claims."""
    params = dict(url_decode(query))
    given = params.get("state", "")
    if not hmac.compare_digest(given.encode(), flow.state.encode()):
        raise OidcRefused("state does not match")
    if params.get("error") == "access_denied":
        raise OidcRefused("login stopped at the provider", stopped=True)
    if "error" in params or not params.get("code"):
        raise OidcRefused("provider answered with an error")
    metadata = discover(settings, http)
    client = _client(settings, http, flow.redirect_uri, token_endpoint=metadata["token_endpoint"])
    try:
        token = client.fetch_token(
            metadata["token_endpoint"],
            grant_type="authorization_code",
            code=params["code"],
            code_verifier=flow.verifier,
            redirect_uri=flow.redirect_uri,
        )
    except Exception as exc:  # authlib raises OAuth2Error, httpx its own; both mean no login
        raise OidcRefused(f"token request failed ({type(exc).__name__})") from None
    id_token = token.get("id_token")
    if not isinstance(id_token, str):
        raise OidcRefused("no id_token")
    return check_id_token(settings, http, metadata, id_token, nonce=flow.nonce, now=now)


def check_id_token(
    settings: OidcSettings,
    http: httpx.Client,
    metadata: dict[str, Any],
    id_token: str,
    *,
    nonce: str,
    now: float,
) -> dict[str, Any]:
    """Core 3.1.3.7: signature, issuer, audience, expiry and nonce."""
    try:
        keys = KeySet.import_key_set(http.get(metadata["jwks_uri"]).json())
    except (httpx.HTTPError, ValueError, JoseError, KeyError, TypeError):
        raise OidcRefused("provider keys unreadable") from None
    try:
        decoded = jwt.decode(id_token, keys, algorithms=list(SIGNING_ALGORITHMS))
    except (JoseError, ValueError):
        raise OidcRefused("id_token signature not valid") from None
    claims: dict[str, Any] = dict(decoded.claims)
    registry = jwt.JWTClaimsRegistry(
        now=int(now),
        leeway=LEEWAY_SECONDS,
        iss={"essential": True, "value": settings.issuer},
        aud={"essential": True, "value": settings.client_id},
        exp={"essential": True},
        iat={"essential": True},
        sub={"essential": True},
        nonce={"essential": True, "value": nonce},
    )
    try:
        registry.validate(claims)
    except JoseError as exc:
        raise OidcRefused(f"id_token claim not valid ({exc.error})") from None
    audiences = claims["aud"] if isinstance(claims["aud"], list) else [claims["aud"]]
    if len(audiences) > 1 and claims.get("azp") != settings.client_id:
        raise OidcRefused("id_token has other audiences and no azp for us")
    return claims


def account_for_bsn(runtime: Runtime, conn: Connection, bsn: str, *, now: int) -> AccountInfo:
    """The inwoner's account for this BSN (made on first login); refused if no Patient has it.

    The BSN is compared only as a keyed hash, the way every identifier is indexed.
    """
    if not (bsn.isdigit() and len(bsn) == 9):
        raise OidcRefused("person claim is not a BSN", unknown_person=True)
    repo = Repository(runtime, AccessContext.full("oidc-login"))
    query = repo.parse("Patient", [("identifier", f"{BSN_SYSTEM}|{bsn}")], lenient=False)
    matches = repo.search(conn, query).matches
    if len(matches) != 1:
        raise OidcRefused("no single inwoner with this BSN", unknown_person=True)
    patient_id = matches[0].resource_id
    account_id = conn.execute(
        select(Account.account_id)
        .where(Account.patient_id == patient_id)
        .order_by(Account.created_at)
        .limit(1)
    ).scalar()
    if account_id is not None:
        found = find_account(conn, account_id)
        if found is not None:
            return found
    # First login through the provider: an account without a usable password.
    return create_account(
        conn,
        username=f"oidc-{runtime.blind.token('oidc-account:' + patient_id)[:24]}",
        password=generate_token(48),
        display_name=display_name(orjson.loads(matches[0].body or b"{}")),
        patient_id=patient_id,
        now=now,
    )
