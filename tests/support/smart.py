"""SMART on FHIR clients for tests: key pairs made at test time, signed client assertions,
PKCE, and the calls a partner system or an inwoner's app makes.

Nothing here is mocked: assertions are real JWTs signed with keys generated in the test,
and every token comes from the vault's own token endpoint over HTTP.
"""

from __future__ import annotations

import base64
import hashlib
import re
import secrets
import time
import uuid
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlparse

import httpx
from joserfc import jwk, jwt

from vault.app.clients import register_client, set_account
from vault.kernel.runtime import Runtime

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"


def make_key(alg: str = "RS384") -> jwk.Key:
    kid = uuid.uuid4().hex[:16]
    params = {"kid": kid, "alg": alg, "use": "sig"}
    if alg.startswith("ES"):
        curve = {"ES256": "P-256", "ES384": "P-384", "ES512": "P-521"}[alg]
        return jwk.ECKey.generate_key(curve, parameters=params)
    return jwk.RSAKey.generate_key(2048, parameters=params)


def public_jwks(*keys: jwk.Key) -> dict[str, Any]:
    return {"keys": [k.as_dict(private=False) for k in keys]}


def client_assertion(
    *,
    client_id: str,
    key: jwk.Key,
    token_url: str,
    alg: str | None = None,
    lifetime: int = 240,
    jti: str | None = None,
    **overrides: Any,
) -> str:
    now = int(time.time())
    claims = {
        "iss": client_id,
        "sub": client_id,
        "aud": token_url,
        "exp": now + lifetime,
        "iat": now,
        "jti": jti or uuid.uuid4().hex,
    }
    claims.update(overrides)
    header = {"alg": alg or key.get("alg") or "RS384", "kid": key.kid, "typ": "JWT"}
    return jwt.encode(header, claims, key, algorithms=[header["alg"]])


@dataclass
class BackendClient:
    """A partner organisation's system (SMART Backend Services)."""

    base_url: str
    client_id: str
    key: jwk.Key
    scopes: list[str] = field(default_factory=list)

    @property
    def token_url(self) -> str:
        return f"{self.base_url}/oauth/token"

    def token_request(
        self, http: httpx.Client, *, scope: str | None = None, assertion: str | None = None
    ) -> httpx.Response:
        return http.post(
            self.token_url,
            data={
                "grant_type": "client_credentials",
                "scope": scope if scope is not None else " ".join(self.scopes),
                "client_assertion_type": ASSERTION_TYPE,
                "client_assertion": assertion
                or client_assertion(
                    client_id=self.client_id, key=self.key, token_url=self.token_url
                ),
            },
        )

    def token(self, http: httpx.Client, *, scope: str | None = None) -> str:
        response = self.token_request(http, scope=scope)
        assert response.status_code == 200, response.text
        return str(response.json()["access_token"])

    def fhir(self, http: httpx.Client, *, scope: str | None = None) -> httpx.Client:
        return httpx.Client(
            base_url=f"{self.base_url}/fhir",
            timeout=30,
            headers={"authorization": f"Bearer {self.token(http, scope=scope)}"},
        )


def register_backend(
    runtime: Runtime,
    base_url: str,
    *,
    organization: str = "MEE",
    scopes: list[str] | None = None,
    alg: str = "RS384",
    jwks_uri: str | None = None,
    key: jwk.Key | None = None,
) -> BackendClient:
    key = key or make_key(alg)
    scopes = scopes or ["system/Goal.rs", "system/CarePlan.rs"]
    client_id = register_client(
        runtime,
        name=f"{organization} systeem",
        organization_name=organization,
        scopes=scopes,
        jwks=None if jwks_uri else public_jwks(key),
        jwks_uri=jwks_uri,
    )
    return BackendClient(base_url, client_id, key, scopes)


def pkce() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest())
    return verifier, challenge.decode().rstrip("=")


@dataclass
class App:
    """An app the inwoner uses (SMART App Launch, standalone, public client)."""

    base_url: str
    client_id: str
    redirect_uri: str
    scopes: list[str]

    def authorize_params(
        self, *, challenge: str, state: str = "st-1", scope: str | None = None, **extra: str
    ) -> dict[str, str]:
        params = {
            "response_type": "code",
            "client_id": self.client_id,
            "redirect_uri": self.redirect_uri,
            "scope": scope if scope is not None else " ".join(self.scopes),
            "state": state,
            "aud": f"{self.base_url}/fhir",
            "code_challenge": challenge,
            "code_challenge_method": "S256",
        }
        params.update(extra)
        return params

    def login_and_approve(
        self,
        http: httpx.Client,
        params: dict[str, str],
        *,
        username: str,
        password: str,
        decision: str = "approve",
    ) -> httpx.Response:
        page = http.get(f"{self.base_url}/oauth/authorize", params=params)
        assert page.status_code == 200, page.text
        csrf = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
        assert csrf is not None
        form = {
            **params,
            "csrf_token": csrf.group(1),
            "username": username,
            "password": password,
            "decision": decision,
        }
        return http.post(f"{self.base_url}/oauth/authorize", data=form)

    def code_from(self, response: httpx.Response) -> str:
        assert response.status_code == 302, response.text
        query = parse_qs(urlparse(response.headers["location"]).query)
        return query["code"][0]

    def exchange(
        self, http: httpx.Client, code: str, verifier: str | None, redirect_uri: str | None = None
    ) -> httpx.Response:
        data = {
            "grant_type": "authorization_code",
            "code": code,
            "client_id": self.client_id,
            "redirect_uri": redirect_uri or self.redirect_uri,
        }
        if verifier is not None:
            data["code_verifier"] = verifier
        return http.post(f"{self.base_url}/oauth/token", data=data)

    def refresh(self, http: httpx.Client, refresh_token: str) -> httpx.Response:
        return http.post(
            f"{self.base_url}/oauth/token",
            data={
                "grant_type": "refresh_token",
                "refresh_token": refresh_token,
                "client_id": self.client_id,
            },
        )

    def full_flow(
        self, http: httpx.Client, *, username: str, password: str, scope: str | None = None
    ) -> dict[str, Any]:
        verifier, challenge = pkce()
        params = self.authorize_params(challenge=challenge, scope=scope)
        code = self.code_from(
            self.login_and_approve(http, params, username=username, password=password)
        )
        response = self.exchange(http, code, verifier)
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body


def register_app(
    runtime: Runtime,
    base_url: str,
    *,
    scopes: list[str] | None = None,
    redirect_uri: str = "https://app.example/callback",
) -> App:
    scopes = scopes or [
        "launch/patient",
        "openid",
        "fhirUser",
        "offline_access",
        "patient/*.rs",
        "patient/Goal.cruds",
    ]
    client_id = register_client(
        runtime,
        name="Mijn Plan app",
        organization_name="Mijn Plan BV",
        scopes=scopes,
        redirect_uris=[redirect_uri],
    )
    return App(base_url, client_id, redirect_uri, scopes)


def inwoner_account(runtime: Runtime, patient_id: str) -> tuple[str, str]:
    username = f"inwoner-{uuid.uuid4().hex[:8]}"
    password = secrets.token_urlsafe(12)
    set_account(
        runtime, username=username, patient_id=patient_id, display_name="Sanne", password=password
    )
    return username, password
