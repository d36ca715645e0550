"""The vault's address comes from its configuration, never from the request's headers.

A client can send any ``Host`` (and, through a proxy, ``X-Forwarded-*``). The issuer, the
audience a client assertion must name and the FHIR base an app must ask for stay what the
operator configured: ``VAULT_PUBLIC_URL``, else the address the vault is bound to. The
proxy set-up of the docs (a TLS-terminating proxy that passes the public Host and
``X-Forwarded-Proto: https``) works end to end.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import replace
from typing import Any
from urllib.parse import parse_qs, urlparse

import httpx
import pytest
from joserfc import jwk, jwt

from tests.conftest import ServerThread
from tests.support.smart import (
    ASSERTION_TYPE,
    BackendClient,
    client_assertion,
    inwoner_account,
    pkce,
    register_app,
    register_backend,
)
from vault.app.main import create_app
from vault.audit.runtime import open_runtime
from vault.kernel.config import Settings
from vault.kernel.runtime import Runtime

PUBLIC = "https://vault.example"
FORGED_HOSTS = ["evil.example", "evil.example:443", f"{PUBLIC.removeprefix('https://')}"]


def assertion_for(client: BackendClient, token_url: str) -> dict[str, str]:
    return {
        "client_assertion_type": ASSERTION_TYPE,
        "client_assertion": client_assertion(
            client_id=client.client_id, key=client.key, token_url=token_url
        ),
    }


def token_request(
    client: BackendClient, *, url: str, audience: str, headers: dict[str, str]
) -> httpx.Response:
    with httpx.Client(timeout=30) as http:
        return http.post(
            f"{url}/oauth/token",
            data={
                "grant_type": "client_credentials",
                "scope": "system/Organization.rs",
                **assertion_for(client, audience),
            },
            headers=headers,
        )


def refused(response: httpx.Response) -> str:
    assert response.status_code in (400, 401), response.text
    assert "access_token" not in response.text
    return str(response.json()["error"])


def the_oauth_endpoints_answer(
    client: BackendClient, *, url: str, issuer: str, headers: dict[str, str]
) -> None:
    """Token, introspection, revocation and the authorize page, all without a 5xx."""
    response = token_request(client, url=url, audience=f"{issuer}/oauth/token", headers=headers)
    assert response.status_code == 200, response.text
    token = response.json()["access_token"]
    with httpx.Client(timeout=30, headers=headers) as http:
        introspected = http.post(
            f"{url}/oauth/introspect",
            data={"token": token, **assertion_for(client, f"{issuer}/oauth/token")},
        )
        assert introspected.status_code == 200, introspected.text
        assert introspected.json()["active"] is True
        revoked = http.post(
            f"{url}/oauth/revoke",
            data={"token": token, **assertion_for(client, f"{issuer}/oauth/token")},
        )
        assert revoked.status_code == 200, revoked.text
        read = http.get(f"{url}/fhir/Organization", headers={"authorization": f"Bearer {token}"})
        assert read.status_code == 401  # revoked from the next request on


# -- a vault without VAULT_PUBLIC_URL: its bound address -------------------------------------


@pytest.fixture
def partner(runtime: Runtime, vault: ServerThread) -> BackendClient:
    return register_backend(runtime, vault.url, scopes=["system/Organization.rs"])


@pytest.mark.parametrize("host", FORGED_HOSTS)
def test_any_host_header_gets_the_oauth_endpoints_of_the_bound_address(
    partner: BackendClient, vault: ServerThread, host: str
) -> None:
    headers = {"host": host}
    the_oauth_endpoints_answer(partner, url=vault.url, issuer=vault.url, headers=headers)
    with httpx.Client(timeout=30, headers=headers) as http:
        smart = http.get(f"{vault.url}/.well-known/smart-configuration").json()
        assert smart["issuer"] == vault.url
        assert smart["token_endpoint"] == f"{vault.url}/oauth/token"
        token = partner.token(http)
        bundle = http.get(
            f"{vault.url}/fhir/Organization", headers={"authorization": f"Bearer {token}"}
        ).json()
        assert bundle["link"][0]["url"].startswith(f"{vault.url}/fhir/Organization")


@pytest.mark.parametrize("host", ["evil.example", "localhost"])
def test_the_accepted_audience_does_not_follow_the_host_header(
    partner: BackendClient, vault: ServerThread, host: str
) -> None:
    forged = f"{host}:{vault.port}"
    response = token_request(
        partner,
        url=vault.url,
        audience=f"http://{forged}/oauth/token",
        headers={"host": forged},
    )
    assert refused(response) == "invalid_client"
    assert "aud" in response.json()["error_description"]


def test_the_authorize_page_wants_the_configured_fhir_base_whatever_the_host(
    runtime: Runtime, vault: ServerThread, inwoner: str
) -> None:
    app = register_app(runtime, vault.url)
    _, challenge = pkce()
    forged = f"localhost:{vault.port}"
    with httpx.Client(timeout=30, headers={"host": forged}) as http:
        wrong = http.get(
            f"{vault.url}/oauth/authorize",
            params=app.authorize_params(challenge=challenge, aud=f"http://{forged}/fhir"),
        )
        assert wrong.status_code == 302
        assert "error=invalid_request" in wrong.headers["location"]
        right = http.get(
            f"{vault.url}/oauth/authorize", params=app.authorize_params(challenge=challenge)
        )
        assert right.status_code == 200, right.text


# -- behind a TLS-terminating proxy, with VAULT_PUBLIC_URL -----------------------------------


class ServedAsVaultServe(ServerThread):
    """uvicorn as ``vault serve`` runs it: no X-Forwarded-* header is believed."""

    def __init__(self, app: object) -> None:
        super().__init__(app)
        self.server.config.proxy_headers = False


@pytest.fixture
def proxied(settings: Settings) -> Iterator[tuple[ServerThread, Runtime]]:
    """The vault configured with VAULT_PUBLIC_URL=https://vault.example, as behind a proxy."""
    runtime = open_runtime(replace(settings, public_base_url=PUBLIC))
    try:
        with ServedAsVaultServe(create_app(runtime.settings, runtime=runtime)) as running:
            yield running, runtime
    finally:
        runtime.close()


PROXY_HEADERS = {
    "host": "vault.example",
    "x-forwarded-proto": "https",
    "x-forwarded-for": "203.0.113.7",
}


def test_behind_a_proxy_backend_clients_get_tokens_for_the_public_address(
    proxied: tuple[ServerThread, Runtime],
) -> None:
    server, runtime = proxied
    client = register_backend(runtime, PUBLIC, scopes=["system/Organization.rs"])
    the_oauth_endpoints_answer(client, url=server.url, issuer=PUBLIC, headers=PROXY_HEADERS)
    # The address the process sees, or the one the headers spell, is not the audience.
    for audience in (f"{server.url}/oauth/token", "http://vault.example/oauth/token"):
        response = token_request(client, url=server.url, audience=audience, headers=PROXY_HEADERS)
        assert refused(response) == "invalid_client"


@pytest.mark.parametrize("host", ["evil.example", "127.0.0.1"])
def test_behind_a_proxy_a_forged_host_cannot_change_the_audience(
    proxied: tuple[ServerThread, Runtime], host: str
) -> None:
    server, runtime = proxied
    client = register_backend(runtime, PUBLIC, scopes=["system/Organization.rs"])
    headers = {**PROXY_HEADERS, "host": host}
    forged = token_request(
        client, url=server.url, audience=f"https://{host}/oauth/token", headers=headers
    )
    assert refused(forged) == "invalid_client"
    right = token_request(client, url=server.url, audience=f"{PUBLIC}/oauth/token", headers=headers)
    assert right.status_code == 200, right.text


def _csrf_and_cookie(page: httpx.Response) -> tuple[str, str]:
    found = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert found is not None, page.text
    cookie = page.headers["set-cookie"].split(";", 1)[0]
    return found.group(1), cookie


def test_behind_a_proxy_an_app_launch_gets_tokens_naming_the_public_address(
    proxied: tuple[ServerThread, Runtime], inwoner: str
) -> None:
    server, runtime = proxied
    app = register_app(runtime, PUBLIC)
    username, password = inwoner_account(runtime, inwoner)
    verifier, challenge = pkce()
    params = app.authorize_params(challenge=challenge)
    assert params["aud"] == f"{PUBLIC}/fhir"
    with httpx.Client(timeout=30, headers=PROXY_HEADERS) as http:
        smart = http.get(f"{server.url}/.well-known/smart-configuration").json()
        assert smart["issuer"] == PUBLIC
        assert smart["authorization_endpoint"] == f"{PUBLIC}/oauth/authorize"
        page = http.get(f"{server.url}/oauth/authorize", params=params)
        assert page.status_code == 200, page.text
        csrf, cookie = _csrf_and_cookie(page)
        # The browser talks https to the proxy: the CSRF cookie says Secure.
        assert "secure" in page.headers["set-cookie"].lower()
        approved = http.post(
            f"{server.url}/oauth/authorize",
            data={
                **params,
                "csrf_token": csrf,
                "username": username,
                "password": password,
                "decision": "approve",
            },
            headers={"cookie": cookie},
        )
        assert approved.status_code == 302, approved.text
        code = parse_qs(urlparse(approved.headers["location"]).query)["code"][0]
        exchanged = http.post(
            f"{server.url}/oauth/token",
            data={
                "grant_type": "authorization_code",
                "code": code,
                "client_id": app.client_id,
                "redirect_uri": app.redirect_uri,
                "code_verifier": verifier,
            },
        )
        assert exchanged.status_code == 200, exchanged.text
        body: dict[str, Any] = exchanged.json()
        keys = jwk.KeySet.import_key_set(http.get(f"{server.url}/oauth/jwks").json())
    claims = jwt.decode(body["id_token"], keys).claims
    assert claims["iss"] == PUBLIC
    assert claims["aud"] == app.client_id
    assert claims["fhirUser"] == f"{PUBLIC}/fhir/Patient/{inwoner}"
    assert body["patient"] == inwoner
