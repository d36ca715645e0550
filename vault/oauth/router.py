"""HTTP endpoints of the authorization server, and its discovery documents.

- ``/.well-known/smart-configuration`` and ``/fhir/.well-known/smart-configuration``
  (SMART App Launch 2.x, section "Conformance": clients look below the FHIR base URL; the
  root one stays for clients that look at the server's root). Both need no token.
- ``/.well-known/oauth-authorization-server`` (RFC 8414).
- ``/oauth/authorize``, ``/oauth/token``, ``/oauth/revoke``, ``/oauth/introspect``,
  ``/oauth/jwks``.

Thin: requests are wrapped for authlib (``oauth/requests.py``) and handed to the server
(``oauth/server.py``) in a worker thread, because authlib's endpoints are synchronous.
"""

from __future__ import annotations

import hmac
import re
import secrets
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from authlib.common.urls import add_params_to_uri
from authlib.oauth2 import OAuth2Error
from authlib.oauth2.rfc6749 import InsecureTransportError
from fastapi import APIRouter, Request
from fastapi.templating import Jinja2Templates
from starlette.concurrency import run_in_threadpool
from starlette.responses import JSONResponse, Response

from vault.kernel.config import Settings
from vault.kernel.runtime import Runtime, now_micros
from vault.kernel.urls import fhir_base, origin
from vault.kernel.web import RuntimeDep
from vault.oauth.client_assertion import ALGORITHMS
from vault.oauth.requests import StarletteOAuth2Request, oauth2_request
from vault.oauth.scopes import InvalidScope, ResourceScope, parse_scope
from vault.oauth.server import VaultAuthorizationServer
from vault.oauth.sessions import LoginOutcome, cookie_is_secure, log_in
from vault.store.registry import RESOURCE_TYPES

__all__ = ["capability_security", "describe_scope", "endpoints_at", "router"]

router = APIRouter(tags=["oauth"])
templates = Jinja2Templates(directory=str(Path(__file__).parent / "templates"))
CSRF_COOKIE = "rk_oauth_csrf"

CAPABILITIES = [
    "launch-standalone",
    "client-public",
    "client-confidential-asymmetric",
    "context-standalone-patient",
    "permission-patient",
    "permission-offline",
    "permission-v1",
    "permission-v2",
    "sso-openid-connect",
]


RESTFUL_SECURITY_SERVICE = "http://terminology.hl7.org/CodeSystem/restful-security-service"
OAUTH_URIS = "http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris"


def _server(request: Request) -> VaultAuthorizationServer:
    server: VaultAuthorizationServer = request.app.state.oauth_server
    return server


def _scopes_supported() -> list[str]:
    scopes = ["openid", "fhirUser", "launch/patient", "offline_access"]
    scopes += ["patient/*.rs", "patient/*.cruds", "patient/*.read", "patient/*.write"]
    for name in RESOURCE_TYPES:
        scopes += [f"patient/{name}.rs", f"system/{name}.rs", f"system/{name}.read"]
    scopes.append("system/Subscription.cruds")  # change notifications (vault/notify)
    return scopes


def endpoints_at(issuer: str) -> dict[str, str]:
    """The authorization server's addresses, for the vault at ``issuer`` (its origin)."""
    return {
        "issuer": issuer,
        "jwks_uri": f"{issuer}/oauth/jwks",
        "authorization_endpoint": f"{issuer}/oauth/authorize",
        "token_endpoint": f"{issuer}/oauth/token",
        "revocation_endpoint": f"{issuer}/oauth/revoke",
        "introspection_endpoint": f"{issuer}/oauth/introspect",
    }


def _endpoints(request: Request, runtime: Runtime) -> dict[str, str]:
    return endpoints_at(origin(request, runtime.settings))


def smart_security(*, authorize: str, token: str, revoke: str, introspect: str) -> dict[str, Any]:
    """``rest.security`` of a SMART on FHIR server with these OAuth endpoints."""
    uris = {"authorize": authorize, "token": token, "revoke": revoke, "introspect": introspect}
    return {
        "extension": [
            {
                "url": OAUTH_URIS,
                "extension": [{"url": name, "valueUri": uri} for name, uri in uris.items()],
            }
        ],
        "service": [
            {
                "coding": [
                    {
                        "system": RESTFUL_SECURITY_SERVICE,
                        "code": "SMART-on-FHIR",
                        "display": "SMART-on-FHIR",
                    }
                ],
                "text": "OAuth 2.0 with the SMART App Launch 2.x and Backend Services profiles",
            }
        ],
        "description": "Bearer tokens from this vault's authorization server; discovery at "
        "/.well-known/smart-configuration.",
    }


def capability_security(settings: Settings) -> Callable[[str], Mapping[str, Any]]:
    """The CapabilityStatement's ``rest.security``, for the FHIR base URL of one request.

    The metadata route hands over the FHIR base it computed from the request; the origin
    is that without ``/fhir`` (``vault.kernel.urls``), so the statement names the same endpoints
    as the discovery documents.
    """

    def security(fhir_base_url: str) -> Mapping[str, Any]:
        issuer = settings.public_base_url or fhir_base_url.removesuffix("/fhir")
        urls = endpoints_at(issuer)
        return smart_security(
            authorize=urls["authorization_endpoint"],
            token=urls["token_endpoint"],
            revoke=urls["revocation_endpoint"],
            introspect=urls["introspection_endpoint"],
        )

    return security


@router.get("/.well-known/smart-configuration")
@router.get("/fhir/.well-known/smart-configuration")
def smart_configuration(request: Request, runtime: RuntimeDep) -> JSONResponse:
    """SMART App Launch discovery: what this authorization server supports."""
    return JSONResponse(
        {
            **_endpoints(request, runtime),
            "grant_types_supported": ["authorization_code", "client_credentials", "refresh_token"],
            "token_endpoint_auth_methods_supported": ["private_key_jwt", "none"],
            "token_endpoint_auth_signing_alg_values_supported": list(ALGORITHMS),
            "scopes_supported": _scopes_supported(),
            "response_types_supported": ["code"],
            "code_challenge_methods_supported": ["S256"],
            "capabilities": CAPABILITIES,
        }
    )


@router.get("/.well-known/oauth-authorization-server")
def authorization_server_metadata(request: Request, runtime: RuntimeDep) -> JSONResponse:
    """RFC 8414 authorization server metadata."""
    return JSONResponse(
        {
            **_endpoints(request, runtime),
            "grant_types_supported": ["authorization_code", "client_credentials", "refresh_token"],
            "token_endpoint_auth_methods_supported": ["private_key_jwt", "none"],
            "token_endpoint_auth_signing_alg_values_supported": list(ALGORITHMS),
            "revocation_endpoint_auth_methods_supported": ["private_key_jwt", "none"],
            "introspection_endpoint_auth_methods_supported": ["private_key_jwt"],
            "scopes_supported": _scopes_supported(),
            "response_types_supported": ["code"],
            "code_challenge_methods_supported": ["S256"],
            "id_token_signing_alg_values_supported": ["RS256"],
        }
    )


@router.get("/oauth/jwks")
def jwks(request: Request, runtime: RuntimeDep) -> JSONResponse:
    """The vault's public signing keys, including retired ones until their tokens expire."""
    with runtime.db.read() as conn:
        keys = _server(request).signing_keys.published(conn, now=now_micros())
    return JSONResponse(keys, headers={"cache-control": "public, max-age=300"})


async def _prepared(request: Request, runtime: Runtime) -> StarletteOAuth2Request | Response:
    """The request for authlib, or the answer when OAuth cannot run at this address."""
    endpoints = _endpoints(request, runtime)
    try:
        oauth_request = await oauth2_request(request, origin=endpoints["issuer"])
    except InsecureTransportError as error:
        # Plain http on an address other than loopback, without an https VAULT_PUBLIC_URL:
        # a clear refusal, not a 500.
        if request.url.path.endswith("/authorize"):
            return _error_page(request, error.error)
        body = {
            "error": error.error,
            "error_description": "OAuth needs https: reach the vault through its https "
            "address (VAULT_PUBLIC_URL) or on 127.0.0.1",
        }
        return JSONResponse(body, status_code=400, headers={"cache-control": "no-store"})
    oauth_request.issuer = endpoints["issuer"]
    oauth_request.token_endpoint = endpoints["token_endpoint"]
    oauth_request.fhir_base = fhir_base(request, runtime.settings)
    return oauth_request


@router.post("/oauth/token")
async def token(request: Request, runtime: RuntimeDep) -> Response:
    """The token endpoint: client_credentials, authorization_code and refresh_token."""
    oauth_request = await _prepared(request, runtime)
    if isinstance(oauth_request, Response):
        return oauth_request
    response: Response = await run_in_threadpool(
        _server(request).create_token_response, oauth_request
    )
    return response


@router.post("/oauth/revoke")
async def revoke(request: Request, runtime: RuntimeDep) -> Response:
    """RFC 7009 token revocation."""
    oauth_request = await _prepared(request, runtime)
    if isinstance(oauth_request, Response):
        return oauth_request
    response: Response = await run_in_threadpool(
        _server(request).create_endpoint_response, "revocation", oauth_request
    )
    return response


@router.post("/oauth/introspect")
async def introspect(request: Request, runtime: RuntimeDep) -> Response:
    """RFC 7662 token introspection, for authenticated backend clients."""
    oauth_request = await _prepared(request, runtime)
    if isinstance(oauth_request, Response):
        return oauth_request
    response: Response = await run_in_threadpool(
        _server(request).create_endpoint_response, "introspection", oauth_request
    )
    return response


# -- the authorization page ----------------------------------------------------------------

_TYPE_WORDS = {
    "Patient": "je naam en gegevens",
    "CarePlan": "je plan",
    "Goal": "je doelen",
    "CareTeam": "wie je helpen",
    "RelatedPerson": "de mensen om je heen",
    "Organization": "de organisaties",
    "Practitioner": "de hulpverleners",
    "Consent": "wie wat mag zien",
    "Observation": "je scores",
    "Provenance": "wie iets heeft veranderd",
    "AuditEvent": "wie er heeft gekeken",
    "Group": "wie er in je gezin zit",
    "*": "al je gegevens",
}


def describe_scope(text: str) -> str | None:
    """One scope in plain Dutch (B1), for the page where the inwoner says yes or no."""
    try:
        scope = parse_scope(text, known_types=RESOURCE_TYPES)
    except InvalidScope:
        return None
    if isinstance(scope, str):
        return {
            "openid": "weten wie je bent",
            "offline_access": "ook later je gegevens gebruiken, als je niet bent ingelogd",
        }.get(scope)
    assert isinstance(scope, ResourceScope)
    what = _TYPE_WORDS.get(scope.resource_type, scope.resource_type)
    verbs = []
    if scope.permissions & {"r", "s"}:
        verbs.append("bekijken")
    if "c" in scope.permissions:
        verbs.append("toevoegen")
    if "u" in scope.permissions:
        verbs.append("veranderen")
    if "d" in scope.permissions:
        verbs.append("weghalen")
    if not verbs:
        return None
    joined = verbs[0] if len(verbs) == 1 else ", ".join(verbs[:-1]) + " en " + verbs[-1]
    limit = " (een deel daarvan)" if scope.query else ""
    return f"{what}{limit} {joined}"


def _error_page(request: Request, error: str, status: int = 400) -> Response:
    response = templates.TemplateResponse(
        request, "oauth_error.html", {"error": error}, status_code=status
    )
    _security_headers(response)
    return response


def _render(
    request: Request,
    grant: Any,
    oauth_request: StarletteOAuth2Request,
    *,
    csrf: str,
    error: str | None = None,
    username: str = "",
    status: int = 200,
) -> Response:
    client = grant.client
    lines = [
        d for d in (describe_scope(s) for s in (oauth_request.payload.scope or "").split()) if d
    ]
    hidden = [
        (k, v)
        for k, v in oauth_request.payload.data.items()
        if k not in ("username", "password", "decision", "csrf_token")
    ]
    response = templates.TemplateResponse(
        request,
        "authorize.html",
        {
            "client_name": client.name,
            "scope_lines": lines,
            "hidden": hidden,
            "csrf_token": csrf,
            "error": error,
            "username": username,
            "action": "/oauth/authorize",
        },
        status_code=status,
    )
    # The form's answer is a redirect to the grant's (registered, exactly matched) URI.
    _security_headers(response, redirect_uri=grant.redirect_uri)
    response.set_cookie(
        CSRF_COOKIE,
        csrf,
        httponly=True,
        samesite="strict",
        secure=cookie_is_secure(request, request.app.state.settings),
        path="/oauth/authorize",
    )
    return response


_SCHEME = re.compile(r"[a-z][a-z0-9+.-]*")
_HOST = re.compile(r"[a-z0-9.-]+|\[[0-9a-f:.]+\]")


def _redirect_source(redirect_uri: str | None) -> str:
    """The CSP source expression (CSP Level 3, section 2.3.1) for a redirect URI: its origin.

    Chromium checks ``form-action`` against every hop of the navigation a form starts (CSP
    Level 3, section 6.3.1), so the 302 from the approval form to the app's redirect URI
    must be allowed as well. Only the origin is named: after a redirect, paths are not
    compared anyway (section 6.7.2.13), and an origin needs no escaping. Anything that does
    not parse as a plain origin adds nothing, so the policy never gets wider than 'self'.
    """
    if not redirect_uri:
        return ""
    try:
        parts = urlsplit(redirect_uri)
        port = parts.port
    except ValueError:
        return ""
    scheme = parts.scheme.lower()
    if not _SCHEME.fullmatch(scheme):
        return ""
    if scheme not in ("http", "https"):
        # A private-use scheme (RFC 8252 section 7.1), e.g. ``nl.example.app:/callback``.
        return "" if scheme in ("javascript", "data", "blob", "filesystem") else f" {scheme}:"
    host = (parts.hostname or "").lower()
    if "[" in parts.netloc:
        host = f"[{host}]"
    if not _HOST.fullmatch(host):
        return ""
    return f" {scheme}://{host}" + (f":{port}" if port is not None else "")


def _security_headers(response: Response, *, redirect_uri: str | None = None) -> None:
    response.headers["content-security-policy"] = (
        "default-src 'none'; style-src 'unsafe-inline'; "
        f"form-action 'self'{_redirect_source(redirect_uri)}; "
        "frame-ancestors 'none'; base-uri 'none'"
    )
    response.headers["x-content-type-options"] = "nosniff"
    response.headers["referrer-policy"] = "no-referrer"
    response.headers["x-frame-options"] = "DENY"
    response.headers["cache-control"] = "no-store"


def _validate(
    request: Request, runtime: Runtime, oauth_request: StarletteOAuth2Request
) -> Any | Response:
    server = _server(request)
    try:
        grant = server.get_consent_grant(request=oauth_request, end_user=None)
    except OAuth2Error as error:
        if error.redirect_uri:
            return server.handle_error_response(oauth_request, error)
        return _error_page(request, error.error)
    # SMART App Launch: aud must be this FHIR server, so a token cannot be phished for
    # another one.
    if oauth_request.payload.data.get("aud", "").rstrip("/") != oauth_request.fhir_base:
        params = [
            ("error", "invalid_request"),
            ("error_description", "aud must be the FHIR base URL"),
        ]
        if oauth_request.payload.state:
            params.append(("state", oauth_request.payload.state))
        # The grant's redirect URI: the registered default when the request names none, and
        # a registered URI may carry its own query.
        location = add_params_to_uri(grant.redirect_uri, params)
        return Response(status_code=302, headers={"location": location})
    return grant


@router.get("/oauth/authorize")
async def authorize_page(request: Request, runtime: RuntimeDep) -> Response:
    """Show which app asks for what; the inwoner logs in and says yes or no."""
    oauth_request = await _prepared(request, runtime)
    if isinstance(oauth_request, Response):
        return oauth_request
    grant = await run_in_threadpool(_validate, request, runtime, oauth_request)
    if isinstance(grant, Response):
        return grant
    return _render(request, grant, oauth_request, csrf=secrets.token_urlsafe(24))


@router.post("/oauth/authorize")
async def authorize_decision(request: Request, runtime: RuntimeDep) -> Response:
    """The inwoner's answer: log in and approve, or deny."""
    oauth_request = await _prepared(request, runtime)
    if isinstance(oauth_request, Response):
        return oauth_request
    form = oauth_request.form
    cookie = request.cookies.get(CSRF_COOKIE, "")
    if not cookie or not hmac.compare_digest(cookie, form.get("csrf_token", "")):
        return _error_page(request, "csrf_token_mismatch", status=403)
    grant = await run_in_threadpool(_validate, request, runtime, oauth_request)
    if isinstance(grant, Response):
        return grant
    server = _server(request)
    if form.get("decision") != "approve":
        response: Response = await run_in_threadpool(
            server.create_authorization_response, oauth_request, None, grant
        )
        return response

    def login() -> LoginOutcome:
        # The same throttled login as the consent page: failures are counted per user name
        # in the database, so guessing a password through an app is no easier.
        with runtime.db.write() as conn:
            return log_in(
                conn,
                username=form.get("username", ""),
                password=form.get("password", ""),
                blind=runtime.blind,
                now=now_micros(),
            )

    outcome = await run_in_threadpool(login)
    account = outcome.account
    if account is None or account.patient_id is None:
        return _render(
            request,
            grant,
            oauth_request,
            csrf=secrets.token_urlsafe(24),
            error="Je hebt te vaak een verkeerd wachtwoord gebruikt. Wacht een kwartier en "
            "probeer het dan opnieuw."
            if outcome.throttled
            else "Je gebruikersnaam of wachtwoord klopt niet. Probeer het opnieuw.",
            username=form.get("username", ""),
            status=429 if outcome.throttled else 400,
        )
    response = await run_in_threadpool(
        server.create_authorization_response, oauth_request, account, grant
    )
    return response
