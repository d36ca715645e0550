"""What `vault client add` refuses to register: weak keys and dangerous redirect URIs.

Through ``register_client``, the function the command calls (the command itself is run in
test_client_commands.py); every refusal leaves the client table as it was.
"""

from __future__ import annotations

import uuid
import warnings
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from joserfc import jwk
from joserfc.errors import SecurityWarning
from sqlalchemy import func, select, update

from tests.conftest import ServerThread
from tests.support.smart import App, make_key, pkce, public_jwks
from vault.app.clients import register_client
from vault.kernel.runtime import Runtime
from vault.oauth.models import OAuthClient


def client_count(runtime: Runtime) -> int:
    with runtime.db.read() as conn:
        return int(conn.scalar(select(func.count()).select_from(OAuthClient)) or 0)


def backend(runtime: Runtime, jwks: dict[str, Any]) -> str:
    return register_client(
        runtime,
        name="Iets systeem",
        organization_name="MEE",
        scopes=["system/Goal.rs"],
        jwks=jwks,
    )


def app(runtime: Runtime, redirect_uri: str) -> str:
    return register_client(
        runtime,
        name="Iets app",
        organization_name="Mijn Plan BV",
        scopes=["launch/patient", "patient/Goal.rs"],
        redirect_uris=[redirect_uri],
    )


def public_jwk(private: Any, **extra: str) -> dict[str, Any]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SecurityWarning)  # joserfc warns on small keys
        kind = {
            rsa.RSAPrivateKey: jwk.RSAKey,
            ec.EllipticCurvePrivateKey: jwk.ECKey,
            ed25519.Ed25519PrivateKey: jwk.OKPKey,
        }
        cls = next(c for t, c in kind.items() if isinstance(private, t))
        key = cls.import_key(private.public_key(), parameters={"kid": uuid.uuid4().hex[:8]})
    return {**key.as_dict(private=False), **extra}


WEAK_KEYS = {
    "RSA 1024": (
        lambda: public_jwk(rsa.generate_private_key(public_exponent=65537, key_size=1024)),
        "2048",
    ),
    "RSA 2040": (
        lambda: public_jwk(rsa.generate_private_key(public_exponent=65537, key_size=2040)),
        "2048",
    ),
    "EC P-192 curve": (lambda: {"kty": "EC", "crv": "P-192", "x": "AA", "y": "AA"}, "curve"),
    "Ed25519": (lambda: public_jwk(ed25519.Ed25519PrivateKey.generate()), "RSA and EC"),
    "an encryption key": (
        lambda: public_jwk(ec.generate_private_key(ec.SECP384R1()), use="enc"),
        "signing",
    ),
    "an HMAC alg": (
        lambda: public_jwk(ec.generate_private_key(ec.SECP384R1()), alg="HS256"),
        "alg",
    ),
    "an EC key off its curve": (
        lambda: {"kty": "EC", "crv": "P-256", "x": "AA", "y": "AA"},
        "cannot be read",
    ),
}


@pytest.mark.parametrize("case", sorted(WEAK_KEYS))
def test_a_key_that_may_not_sign_assertions_is_refused(runtime: Runtime, case: str) -> None:
    make, message = WEAK_KEYS[case]
    before = client_count(runtime)
    with pytest.raises(ValueError, match=message):
        backend(runtime, {"keys": [public_jwks(make_key())["keys"][0], make()]})
    assert client_count(runtime) == before


@pytest.mark.parametrize("alg", ["RS384", "ES384", "ES256", "ES512"])
def test_strong_keys_are_registered(runtime: Runtime, alg: str) -> None:
    assert backend(runtime, public_jwks(make_key(alg)))


BAD_REDIRECTS = {
    "javascript:alert(document.cookie)": "https://",
    "JavaScript://app.example/%0aalert(1)": "https://",
    "data:text/html,<script>alert(1)</script>": "https://",
    "nl.example.app:/callback": "https://",
    "file:///etc/passwd": "https://",
    "http://app.example/callback": "https://",
    "http://192.168.1.10/callback": "https://",
    "http://127.0.0.1.evil.example/callback": "https://",
    "https://app.example/callback#frag": "fragment",
    "https://app.example/callback#": "fragment",
    "https://app.example@evil.example/callback": "user part",
    "https://app.example/call back": "spaces",
    "https://app.example/callback\nhttps://evil.example/cb": "spaces",
    "/callback": "https://",
    "https:///callback": "https://",
    "https://app.example:http/callback": "not a URL",
}


@pytest.mark.parametrize("uri", sorted(BAD_REDIRECTS))
def test_a_redirect_uri_a_code_must_never_go_to_is_refused(runtime: Runtime, uri: str) -> None:
    before = client_count(runtime)
    with pytest.raises(ValueError, match=BAD_REDIRECTS[uri]):
        app(runtime, uri)
    assert client_count(runtime) == before


@pytest.mark.parametrize(
    "uri",
    [
        "https://app.example/callback",
        "https://app.example:8443/cb?tenant=7",
        "http://127.0.0.1:8976/callback",
        "http://[::1]:8976/callback",
        "http://localhost:8976/callback",
    ],
)
def test_https_and_loopback_redirect_uris_are_registered(runtime: Runtime, uri: str) -> None:
    assert app(runtime, uri)


@pytest.mark.parametrize(
    "uri", ["javascript:alert(document.cookie)", "https://app.example@evil.example/cb"]
)
def test_a_redirect_uri_registered_before_the_rules_gets_no_code(
    runtime: Runtime, vault: ServerThread, http: httpx.Client, uri: str
) -> None:
    # A row as an older vault could have written it, past today's registration checks.
    client_id = app(runtime, "https://app.example/callback")
    with runtime.db.write() as conn:
        conn.execute(
            update(OAuthClient).where(OAuthClient.client_id == client_id).values(redirect_uris=uri)
        )
    _, challenge = pkce()
    stale = App(vault.url, client_id, uri, ["launch/patient", "patient/Goal.rs"])
    for params in (
        stale.authorize_params(challenge=challenge),
        {
            k: v
            for k, v in stale.authorize_params(challenge=challenge).items()
            if k != "redirect_uri"
        },
    ):
        page = http.get(f"{vault.url}/oauth/authorize", params=params)
        assert page.status_code == 400, page.text
        assert "location" not in page.headers
        assert "csrf_token" not in page.text
