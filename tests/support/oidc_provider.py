"""A small OpenID Connect provider for tests: real HTTP, real signed id_tokens.

It stands in for the outside identity provider (a DigiD broker), the one party the tests
may play themselves. Its RSA keys are made when it starts. It approves every
authorization request at once for the person the test chose with ``POST /test/next``,
and can be told to get one thing wrong on the next login (``tamper``): ``nonce``,
``issuer``, ``audience``, ``expired``, ``state`` or ``signature`` (signed by a key that is
not in its JWKS, under the published key's id); ``cancel`` plays a person who stops.

    python -m tests.support.oidc_provider --port 8123 --client-id vault --client-secret s
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import secrets
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

import uvicorn
from joserfc import jwt
from joserfc.jwk import RSAKey
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import Route

__all__ = ["build_app"]


@dataclass
class Grant:
    client_id: str
    redirect_uri: str
    nonce: str
    challenge: str
    bsn: str
    tamper: str


@dataclass
class Provider:
    issuer: str
    client_id: str
    client_secret: str
    key: RSAKey = field(default_factory=lambda: RSAKey.generate_key(2048, {"kid": "k1"}))
    rogue: RSAKey = field(default_factory=lambda: RSAKey.generate_key(2048, {"kid": "k1"}))
    codes: dict[str, Grant] = field(default_factory=dict)
    next_bsn: str = ""
    next_tamper: str = ""


def _s256(verifier: str) -> str:
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def build_app(provider: Provider) -> Starlette:
    async def health(_request: Request) -> Response:
        return PlainTextResponse("ok")

    async def discovery(_request: Request) -> Response:
        base = provider.issuer
        return JSONResponse(
            {
                "issuer": base,
                "authorization_endpoint": base + "/authorize",
                "token_endpoint": base + "/token",
                "jwks_uri": base + "/jwks",
                "response_types_supported": ["code"],
                "subject_types_supported": ["public"],
                "id_token_signing_alg_values_supported": ["RS256"],
                "code_challenge_methods_supported": ["S256"],
                "token_endpoint_auth_methods_supported": ["client_secret_basic"],
            }
        )

    async def jwks(_request: Request) -> Response:
        return JSONResponse({"keys": [provider.key.as_dict(private=False)]})

    async def next_login(request: Request) -> Response:
        body = await request.json()
        provider.next_bsn = str(body.get("bsn", ""))
        provider.next_tamper = str(body.get("tamper", ""))
        return JSONResponse({"ok": True})

    async def authorize(request: Request) -> Response:
        q = request.query_params
        if (
            q.get("client_id") != provider.client_id
            or q.get("response_type") != "code"
            or q.get("code_challenge_method") != "S256"
            or "openid" not in q.get("scope", "").split()
            or not q.get("nonce")
            or not q.get("state")
        ):
            return PlainTextResponse("bad authorization request", status_code=400)
        if provider.next_tamper == "cancel":
            query = urlencode({"error": "access_denied", "state": q["state"]})
            return RedirectResponse(q["redirect_uri"] + "?" + query, status_code=302)
        code = secrets.token_urlsafe(24)
        provider.codes[code] = Grant(
            provider.client_id,
            q["redirect_uri"],
            q["nonce"],
            q.get("code_challenge", ""),
            provider.next_bsn,
            provider.next_tamper,
        )
        state = q["state"] if provider.next_tamper != "state" else "a-different-state"
        return RedirectResponse(
            q["redirect_uri"] + "?" + urlencode({"code": code, "state": state}), status_code=302
        )

    async def token(request: Request) -> Response:
        expected = base64.b64encode(
            f"{provider.client_id}:{provider.client_secret}".encode()
        ).decode()
        if request.headers.get("authorization") != f"Basic {expected}":
            return JSONResponse({"error": "invalid_client"}, status_code=401)
        form = await request.form()
        grant = provider.codes.pop(str(form.get("code", "")), None)
        if (
            grant is None
            or form.get("grant_type") != "authorization_code"
            or form.get("redirect_uri") != grant.redirect_uri
            or _s256(str(form.get("code_verifier", ""))) != grant.challenge
        ):
            return JSONResponse({"error": "invalid_grant"}, status_code=400)
        now = int(time.time())
        claims: dict[str, Any] = {
            "iss": provider.issuer,
            "sub": "pseudonym-" + hashlib.sha256(grant.bsn.encode()).hexdigest()[:16],
            "aud": grant.client_id,
            "iat": now,
            "exp": now + 300,
            "nonce": grant.nonce,
            "bsn": grant.bsn,
        }
        key = provider.key
        if grant.tamper == "nonce":
            claims["nonce"] = "not-the-nonce"
        elif grant.tamper == "issuer":
            claims["iss"] = "https://someone-else.example"
        elif grant.tamper == "audience":
            claims["aud"] = "another-client"
        elif grant.tamper == "expired":
            claims["iat"], claims["exp"] = now - 3600, now - 1800
        elif grant.tamper == "signature":
            key = provider.rogue
        id_token = jwt.encode({"alg": "RS256", "kid": "k1"}, claims, key)
        return JSONResponse(
            {
                "access_token": secrets.token_urlsafe(24),
                "token_type": "Bearer",
                "expires_in": 300,
                "id_token": id_token,
            },
            headers={"cache-control": "no-store"},
        )

    return Starlette(
        routes=[
            Route("/healthz", health),
            Route("/.well-known/openid-configuration", discovery),
            Route("/jwks", jwks),
            Route("/authorize", authorize),
            Route("/token", token, methods=["POST"]),
            Route("/test/next", next_login, methods=["POST"]),
        ]
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--client-id", required=True)
    parser.add_argument("--client-secret", required=True)
    args = parser.parse_args()
    provider = Provider(f"http://127.0.0.1:{args.port}", args.client_id, args.client_secret)
    uvicorn.run(build_app(provider), host="127.0.0.1", port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
