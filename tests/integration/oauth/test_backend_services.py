"""SMART Backend Services: client_credentials with private_key_jwt, and every refusal."""

from __future__ import annotations

import base64
import json
import threading
import time
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any

import httpx
import pytest
from joserfc import jwk

from tests.conftest import ServerThread
from tests.support.smart import (
    ASSERTION_TYPE,
    BackendClient,
    client_assertion,
    make_key,
    public_jwks,
    register_backend,
)
from vault.app.clients import register_client
from vault.kernel.runtime import Runtime


def _error(response: httpx.Response) -> str:
    assert response.status_code in (400, 401), response.text
    return str(response.json()["error"])


@pytest.mark.parametrize("alg", ["RS384", "ES384"])
def test_backend_client_gets_a_token_and_reads_with_it(
    runtime: Runtime, vault: ServerThread, http: httpx.Client, alg: str
) -> None:
    client = register_backend(
        runtime, vault.url, alg=alg, scopes=["system/Organization.rs", "system/Goal.rs"]
    )
    response = client.token_request(http, scope="system/Organization.rs")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["token_type"] == "Bearer"
    assert body["scope"] == "system/Organization.rs"
    assert 0 < body["expires_in"] <= 300
    assert "refresh_token" not in body
    assert response.headers["cache-control"] == "no-store"
    # Every Organization of the session's database: other tests add theirs before this one.
    fhir = http.get(
        f"{vault.url}/fhir/Organization",
        params={"_count": "500"},
        headers={"authorization": f"Bearer {body['access_token']}"},
    )
    assert fhir.status_code == 200, fhir.text
    names = [e["resource"]["name"] for e in fhir.json().get("entry", [])]
    assert "MEE" in names


def test_token_carries_only_granted_scopes_and_the_scope_decides_the_interaction(
    runtime: Runtime, vault: ServerThread, http: httpx.Client
) -> None:
    client = register_backend(runtime, vault.url, scopes=["system/Organization.rs"])
    token = client.token(http)
    headers = {"authorization": f"Bearer {token}"}
    assert http.get(f"{vault.url}/fhir/Organization", headers=headers).status_code == 200
    forbidden = http.get(f"{vault.url}/fhir/Practitioner", headers=headers)
    assert forbidden.status_code == 403
    assert forbidden.json()["resourceType"] == "OperationOutcome"
    write = http.post(
        f"{vault.url}/fhir/Organization",
        json={"resourceType": "Organization"},
        headers={**headers, "content-type": "application/fhir+json"},
    )
    assert write.status_code == 403


def test_scope_wider_than_registered_is_refused(
    runtime: Runtime, vault: ServerThread, http: httpx.Client
) -> None:
    client = register_backend(runtime, vault.url, scopes=["system/Goal.rs"])
    assert _error(client.token_request(http, scope="system/Goal.cruds")) == "invalid_scope"
    assert _error(client.token_request(http, scope="system/*.rs")) == "invalid_scope"


def test_system_token_sees_no_inwoner_data_without_a_consent(
    runtime: Runtime,
    vault: ServerThread,
    http: httpx.Client,
    inwoner: str,
    client: httpx.Client,
) -> None:
    from tests.conftest import create
    from tests.factories import goal

    stored = create(client, goal(patient_id=inwoner))
    partner = register_backend(runtime, vault.url, scopes=["system/Goal.rs"])
    headers = {"authorization": f"Bearer {partner.token(http)}"}
    search = http.get(f"{vault.url}/fhir/Goal", params={"patient": inwoner}, headers=headers)
    assert search.status_code == 200
    assert search.json()["total"] == 0
    read = http.get(f"{vault.url}/fhir/Goal/{stored['id']}", headers=headers)
    missing = http.get(f"{vault.url}/fhir/Goal/{uuid.uuid4()}", headers=headers)
    assert read.status_code == missing.status_code == 404
    assert read.json()["issue"][0]["code"] == missing.json()["issue"][0]["code"]


# -- the refusals, each its own test ------------------------------------------------------


@pytest.fixture
def partner(runtime: Runtime, vault: ServerThread) -> BackendClient:
    return register_backend(runtime, vault.url, scopes=["system/Organization.rs"])


def test_wrong_audience_is_refused(partner: BackendClient, http: httpx.Client) -> None:
    assertion = client_assertion(
        client_id=partner.client_id,
        key=partner.key,
        token_url="https://elsewhere.example/oauth/token",
    )
    assert _error(partner.token_request(http, assertion=assertion)) == "invalid_client"


def test_expired_assertion_is_refused(partner: BackendClient, http: httpx.Client) -> None:
    assertion = client_assertion(
        client_id=partner.client_id, key=partner.key, token_url=partner.token_url, lifetime=-120
    )
    assert _error(partner.token_request(http, assertion=assertion)) == "invalid_client"


def test_assertion_living_longer_than_five_minutes_is_refused(
    partner: BackendClient, http: httpx.Client
) -> None:
    assertion = client_assertion(
        client_id=partner.client_id, key=partner.key, token_url=partner.token_url, lifetime=3600
    )
    assert _error(partner.token_request(http, assertion=assertion)) == "invalid_client"


def test_replayed_jti_is_refused(partner: BackendClient, http: httpx.Client) -> None:
    assertion = client_assertion(
        client_id=partner.client_id, key=partner.key, token_url=partner.token_url, jti="once-only"
    )
    assert partner.token_request(http, assertion=assertion).status_code == 200
    assert _error(partner.token_request(http, assertion=assertion)) == "invalid_client"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unsigned(header: dict[str, Any], claims: dict[str, Any]) -> str:
    return f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(claims).encode())}."


def _claims(partner: BackendClient) -> dict[str, Any]:
    now = int(time.time())
    return {
        "iss": partner.client_id,
        "sub": partner.client_id,
        "aud": partner.token_url,
        "exp": now + 120,
        "jti": uuid.uuid4().hex,
    }


def test_alg_none_is_refused(partner: BackendClient, http: httpx.Client) -> None:
    assertion = _unsigned({"alg": "none", "typ": "JWT"}, _claims(partner))
    assert _error(partner.token_request(http, assertion=assertion)) == "invalid_client"


def test_hs256_signed_with_the_public_key_is_refused(
    partner: BackendClient, http: httpx.Client
) -> None:
    import hashlib
    import hmac

    public_pem = partner.key.as_pem(private=False)
    signing_input = (
        f"{_b64(json.dumps({'alg': 'HS256', 'kid': partner.key.kid}).encode())}."
        f"{_b64(json.dumps(_claims(partner)).encode())}"
    )
    signature = hmac.new(public_pem, signing_input.encode(), hashlib.sha256).digest()
    assertion = f"{signing_input}.{_b64(signature)}"
    assert _error(partner.token_request(http, assertion=assertion)) == "invalid_client"


def test_unknown_kid_is_refused(partner: BackendClient, http: httpx.Client) -> None:
    stranger = make_key("RS384")
    assertion = client_assertion(
        client_id=partner.client_id, key=stranger, token_url=partner.token_url
    )
    assert _error(partner.token_request(http, assertion=assertion)) == "invalid_client"


def test_key_of_another_client_is_refused(
    runtime: Runtime, vault: ServerThread, partner: BackendClient, http: httpx.Client
) -> None:
    other = register_backend(
        runtime, vault.url, organization="GGZ Oost", scopes=["system/Organization.rs"]
    )
    assertion = client_assertion(
        client_id=partner.client_id, key=other.key, token_url=partner.token_url
    )
    assert _error(partner.token_request(http, assertion=assertion)) == "invalid_client"


def test_iss_different_from_sub_is_refused(partner: BackendClient, http: httpx.Client) -> None:
    assertion = client_assertion(
        client_id=partner.client_id,
        key=partner.key,
        token_url=partner.token_url,
        iss="someone-else",
    )
    assert _error(partner.token_request(http, assertion=assertion)) == "invalid_client"


def test_unknown_client_is_refused(partner: BackendClient, http: httpx.Client) -> None:
    assertion = client_assertion(
        client_id="no-such-client", key=partner.key, token_url=partner.token_url
    )
    response = http.post(
        partner.token_url,
        data={
            "grant_type": "client_credentials",
            "scope": "system/Organization.rs",
            "client_assertion_type": ASSERTION_TYPE,
            "client_assertion": assertion,
        },
    )
    assert _error(response) == "invalid_client"


def test_registering_a_private_key_is_refused(runtime: Runtime) -> None:
    key = make_key("RS384")
    with pytest.raises(ValueError, match="private"):
        register_client(
            runtime,
            name="x",
            organization_name="MEE",
            scopes=["system/Goal.rs"],
            jwks={"keys": [key.as_dict(private=True)]},
        )


# -- tokens after they are issued -----------------------------------------------------------


def test_revoked_token_is_refused_on_the_next_request(
    partner: BackendClient, http: httpx.Client, vault: ServerThread
) -> None:
    token = partner.token(http)
    headers = {"authorization": f"Bearer {token}"}
    assert http.get(f"{vault.url}/fhir/Organization", headers=headers).status_code == 200
    revoke = http.post(
        f"{vault.url}/oauth/revoke",
        data={
            "token": token,
            "client_assertion_type": ASSERTION_TYPE,
            "client_assertion": client_assertion(
                client_id=partner.client_id, key=partner.key, token_url=partner.token_url
            ),
        },
    )
    assert revoke.status_code == 200, revoke.text
    after = http.get(f"{vault.url}/fhir/Organization", headers=headers)
    assert after.status_code == 401
    assert "invalid_token" in after.headers["www-authenticate"]


def test_removed_client_loses_its_tokens_at_once(
    runtime: Runtime, partner: BackendClient, http: httpx.Client, vault: ServerThread
) -> None:
    from vault.oauth.models import OAuthClient

    token = partner.token(http)
    headers = {"authorization": f"Bearer {token}"}
    with runtime.db.write() as conn:
        conn.execute(
            OAuthClient.__table__.update()
            .where(OAuthClient.client_id == partner.client_id)
            .values(removed_at=1)
        )
    assert http.get(f"{vault.url}/fhir/Organization", headers=headers).status_code == 401


def test_introspection_tells_a_client_about_its_own_tokens(
    runtime: Runtime, partner: BackendClient, http: httpx.Client, vault: ServerThread
) -> None:
    token = partner.token(http)

    def introspect(who: BackendClient, value: str) -> dict[str, Any]:
        response = http.post(
            f"{vault.url}/oauth/introspect",
            data={
                "token": value,
                "client_assertion_type": ASSERTION_TYPE,
                "client_assertion": client_assertion(
                    client_id=who.client_id, key=who.key, token_url=who.token_url
                ),
            },
        )
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    own = introspect(partner, token)
    assert own["active"] is True
    assert own["client_id"] == partner.client_id
    assert own["scope"] == "system/Organization.rs"
    other = register_backend(
        runtime, vault.url, organization="GGZ Oost", scopes=["system/Organization.rs"]
    )
    assert introspect(other, token) == {"active": False}
    assert introspect(partner, "not-a-token") == {"active": False}
    unauthenticated = http.post(f"{vault.url}/oauth/introspect", data={"token": token})
    assert unauthenticated.status_code in (400, 401)


def test_missing_or_bad_bearer_token_is_401_with_a_challenge(
    vault: ServerThread, http: httpx.Client
) -> None:
    none = http.get(f"{vault.url}/fhir/Goal")
    assert none.status_code == 401
    assert none.headers["www-authenticate"].startswith("Bearer")
    bad = http.get(f"{vault.url}/fhir/Goal", headers={"authorization": "Bearer nope"})
    assert bad.status_code == 401
    assert 'error="invalid_token"' in bad.headers["www-authenticate"]


# -- jwks_uri -----------------------------------------------------------------------------


class _JwksServer:
    """A real HTTP server on 127.0.0.1 that serves a client's JWKS."""

    def __init__(self) -> None:
        self.keys: list[jwk.Key] = []
        self.hits = 0
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                outer.hits += 1
                body = json.dumps(public_jwks(*outer.keys)).encode()
                self.send_response(200)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *_args: Any) -> None:
                pass

        self.httpd = HTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/jwks.json"


@pytest.fixture
def jwks_server() -> Iterator[_JwksServer]:
    server = _JwksServer()
    server.thread.start()
    try:
        yield server
    finally:
        server.httpd.shutdown()
        server.httpd.server_close()


def test_jwks_uri_keys_are_fetched_once_and_an_unknown_kid_waits_for_the_refetch_interval(
    runtime: Runtime, vault: ServerThread, http: httpx.Client, jwks_server: _JwksServer
) -> None:
    # That the new key is taken up once the interval has passed: tests/unit/oauth.
    first = make_key("ES384")
    jwks_server.keys = [first]
    client = register_backend(
        runtime, vault.url, scopes=["system/Organization.rs"], jwks_uri=jwks_server.url, key=first
    )
    assert client.token_request(http).status_code == 200
    assert client.token_request(http).status_code == 200
    assert jwks_server.hits == 1  # cached
    second = make_key("RS384")
    jwks_server.keys = [first, second]
    rotated = BackendClient(client.base_url, client.client_id, second, client.scopes)
    assert _error(rotated.token_request(http)) == "invalid_client"
    assert jwks_server.hits == 1  # the keys were fetched just now: no refetch yet
    assert client.token_request(http).status_code == 200
