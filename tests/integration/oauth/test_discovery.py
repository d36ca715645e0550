"""Discovery: SMART configuration, RFC 8414 metadata, the JWKS and the CapabilityStatement.

What the documents claim is checked against what the server does: every capability is
demonstrated by a real flow, and every endpoint they name answers.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import replace
from typing import Any

import httpx
import pytest
from joserfc import jwk, jwt

from tests.conftest import ServerThread, create
from tests.factories import goal
from tests.support.smart import App, inwoner_account, register_app, register_backend
from vault.app.main import create_app
from vault.audit.runtime import open_runtime
from vault.kernel.config import Settings
from vault.kernel.runtime import Runtime
from vault.oauth.router import OAUTH_URIS
from vault.oauth.scopes import parse_scope
from vault.store.registry import SCOPE_TYPES

SMART_REQUIRED = (
    "issuer",
    "jwks_uri",
    "authorization_endpoint",
    "token_endpoint",
    "grant_types_supported",
    "token_endpoint_auth_methods_supported",
    "token_endpoint_auth_signing_alg_values_supported",
    "scopes_supported",
    "response_types_supported",
    "code_challenge_methods_supported",
    "capabilities",
)
PRIVATE_JWK_MEMBERS = {"d", "p", "q", "dp", "dq", "qi", "oth", "k"}


def get_json(http: httpx.Client, url: str, **kwargs: Any) -> dict[str, Any]:
    response = http.get(url, **kwargs)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/json")
    body: dict[str, Any] = response.json()
    return body


@pytest.fixture
def smart(vault: ServerThread, http: httpx.Client) -> dict[str, Any]:
    return get_json(http, f"{vault.url}/.well-known/smart-configuration")


def oauth_uris(statement: dict[str, Any]) -> dict[str, str]:
    (rest,) = statement["rest"]
    (extension,) = [e for e in rest["security"]["extension"] if e["url"] == OAUTH_URIS]
    return {e["url"]: e["valueUri"] for e in extension["extension"]}


# -- /.well-known/smart-configuration ----------------------------------------------------------


def test_smart_configuration_has_every_field_smart_app_launch_requires(
    smart: dict[str, Any], vault: ServerThread
) -> None:
    missing = [name for name in SMART_REQUIRED if not smart.get(name)]
    assert missing == []
    assert smart["issuer"] == vault.url
    assert smart["jwks_uri"] == f"{vault.url}/oauth/jwks"
    assert smart["authorization_endpoint"] == f"{vault.url}/oauth/authorize"
    assert smart["token_endpoint"] == f"{vault.url}/oauth/token"
    assert smart["revocation_endpoint"] == f"{vault.url}/oauth/revoke"
    assert smart["introspection_endpoint"] == f"{vault.url}/oauth/introspect"
    assert set(smart["grant_types_supported"]) == {
        "authorization_code",
        "client_credentials",
        "refresh_token",
    }
    assert set(smart["token_endpoint_auth_methods_supported"]) == {"private_key_jwt", "none"}
    assert smart["response_types_supported"] == ["code"]


def test_smart_configuration_is_also_at_the_fhir_base_without_and_with_a_token(
    smart: dict[str, Any], vault: ServerThread, http: httpx.Client, runtime: Runtime
) -> None:
    # SMART App Launch 2.x, "Conformance": clients look at [FHIR base]/.well-known/...
    at_base = f"{vault.url}/fhir/.well-known/smart-configuration"
    assert get_json(http, at_base) == smart
    token = register_backend(runtime, vault.url).token(http)
    assert get_json(http, at_base, headers={"authorization": f"Bearer {token}"}) == smart
    assert get_json(http, at_base, headers={"authorization": "Bearer not-a-token"}) == smart


def test_pkce_is_s256_only(smart: dict[str, Any]) -> None:
    assert smart["code_challenge_methods_supported"] == ["S256"]


def test_asymmetric_client_authentication_algorithms_include_rs384_and_es384(
    smart: dict[str, Any],
) -> None:
    algorithms = smart["token_endpoint_auth_signing_alg_values_supported"]
    assert {"RS384", "ES384"} <= set(algorithms)
    assert not [a for a in algorithms if a == "none" or a.startswith("HS")]


def test_capabilities_include_what_smart_backend_and_standalone_apps_need(
    smart: dict[str, Any],
) -> None:
    assert {
        "launch-standalone",
        "client-public",
        "client-confidential-asymmetric",
        "context-standalone-patient",
        "permission-patient",
        "permission-v1",
        "permission-v2",
    } <= set(smart["capabilities"])
    # Not supported, so never claimed.
    assert not {
        "launch-ehr",
        "client-confidential-symmetric",
        "authorize-post",
        "context-ehr-patient",
        "permission-user",
    } & set(smart["capabilities"])


def test_scopes_supported_parse_and_cover_the_smart_identity_scopes(
    smart: dict[str, Any],
) -> None:
    for scope in smart["scopes_supported"]:
        parse_scope(scope, known_types=SCOPE_TYPES)
    assert {"openid", "fhirUser", "launch/patient", "offline_access"} <= set(
        smart["scopes_supported"]
    )
    assert "patient/Goal.rs" in smart["scopes_supported"]
    assert "system/Goal.rs" in smart["scopes_supported"]


def test_every_endpoint_in_the_document_answers(smart: dict[str, Any], http: httpx.Client) -> None:
    assert "keys" in get_json(http, smart["jwks_uri"])
    # Without parameters each endpoint explains what is wrong: it exists and is an
    # OAuth endpoint, not a 404 or a 405.
    page = http.get(smart["authorization_endpoint"])
    assert page.status_code == 400
    assert page.headers["content-type"].startswith("text/html")
    token = http.post(smart["token_endpoint"], data={"grant_type": "password"})
    assert token.status_code == 400
    assert token.json()["error"] == "unsupported_grant_type"
    for name in ("revocation_endpoint", "introspection_endpoint"):
        response = http.post(smart[name], data={"token": "x"})
        assert response.status_code in (400, 401), (name, response.text)
        assert response.json()["error"] == "invalid_client"


# -- every capability claimed is real ------------------------------------------------------


class Proof:
    """A real flow against the vault, for one claimed capability."""

    def __init__(
        self, runtime: Runtime, vault: ServerThread, http: httpx.Client, inwoner: str
    ) -> None:
        self.runtime = runtime
        self.vault = vault
        self.http = http
        self.inwoner = inwoner
        self.login = inwoner_account(runtime, inwoner)
        self.smart = get_json(http, f"{vault.url}/.well-known/smart-configuration")

    def app_token(self, scopes: list[str], *, scope: str | None = None) -> dict[str, Any]:
        app = register_app(self.runtime, self.vault.url, scopes=scopes)
        return self.app_flow(app, scope=scope)

    def app_flow(self, app: App, *, scope: str | None = None) -> dict[str, Any]:
        username, password = self.login
        return app.full_flow(self.http, username=username, password=password, scope=scope)

    def read_goals(self, token: str) -> httpx.Response:
        return self.http.get(
            f"{self.vault.url}/fhir/Goal", headers={"authorization": f"Bearer {token}"}
        )

    def launch_standalone(self) -> None:
        # The app starts at the authorization endpoint itself, with no EHR launch context.
        token = self.app_token(["launch/patient", "patient/Goal.rs"])
        assert token["access_token"]

    def client_public(self) -> None:
        # No secret and no assertion: the public app proves itself with PKCE only.
        token = self.app_token(["launch/patient", "patient/Goal.rs"])
        assert self.read_goals(token["access_token"]).status_code == 200

    def client_confidential_asymmetric(self) -> None:
        partner = register_backend(self.runtime, self.vault.url, scopes=["system/Goal.rs"])
        response = partner.token_request(self.http)
        assert response.status_code == 200, response.text
        assert self.read_goals(response.json()["access_token"]).status_code == 200

    def context_standalone_patient(self) -> None:
        token = self.app_token(["launch/patient", "patient/Goal.rs"])
        assert token["patient"] == self.inwoner

    def permission_patient(self) -> None:
        token = self.app_token(["launch/patient", "patient/Goal.rs"])
        found = self.read_goals(token["access_token"]).json()
        subjects = {e["resource"]["subject"]["reference"] for e in found.get("entry", [])}
        assert subjects == {f"Patient/{self.inwoner}"}

    def permission_offline(self) -> None:
        app = register_app(
            self.runtime,
            self.vault.url,
            scopes=["launch/patient", "offline_access", "patient/Goal.rs"],
        )
        token = self.app_flow(app)
        refreshed = app.refresh(self.http, token["refresh_token"])
        assert refreshed.status_code == 200, refreshed.text
        assert self.read_goals(refreshed.json()["access_token"]).status_code == 200

    def permission_v1(self) -> None:
        token = self.app_token(["launch/patient", "patient/Goal.read"])
        assert token["scope"] == "launch/patient patient/Goal.read"
        assert self.read_goals(token["access_token"]).status_code == 200

    def permission_v2(self) -> None:
        token = self.app_token(["launch/patient", "patient/Goal.rs"])
        assert token["scope"] == "launch/patient patient/Goal.rs"
        assert self.read_goals(token["access_token"]).status_code == 200

    def sso_openid_connect(self) -> None:
        token = self.app_token(["openid", "fhirUser", "launch/patient", "patient/Goal.rs"])
        keys = jwk.KeySet.import_key_set(get_json(self.http, self.smart["jwks_uri"]))
        claims = jwt.decode(token["id_token"], keys).claims
        assert claims["iss"] == self.smart["issuer"]
        assert claims["fhirUser"].endswith(f"/Patient/{self.inwoner}")


PROOFS: dict[str, Callable[[Proof], None]] = {
    "launch-standalone": Proof.launch_standalone,
    "client-public": Proof.client_public,
    "client-confidential-asymmetric": Proof.client_confidential_asymmetric,
    "context-standalone-patient": Proof.context_standalone_patient,
    "permission-patient": Proof.permission_patient,
    "permission-offline": Proof.permission_offline,
    "permission-v1": Proof.permission_v1,
    "permission-v2": Proof.permission_v2,
    "sso-openid-connect": Proof.sso_openid_connect,
}


def test_no_capability_is_claimed_without_a_proof(smart: dict[str, Any]) -> None:
    assert set(smart["capabilities"]) <= set(PROOFS)


@pytest.mark.parametrize("capability", sorted(PROOFS))
def test_capability_is_claimed_and_works(
    capability: str,
    smart: dict[str, Any],
    runtime: Runtime,
    vault: ServerThread,
    http: httpx.Client,
    inwoner: str,
    client: httpx.Client,
) -> None:
    assert capability in smart["capabilities"]  # what the vault can do, it says
    create(client, goal(patient_id=inwoner))
    PROOFS[capability](Proof(runtime, vault, http, inwoner))


# -- RFC 8414 and the JWKS ---------------------------------------------------------------------


def test_oauth_authorization_server_metadata_matches_the_smart_configuration(
    smart: dict[str, Any], vault: ServerThread, http: httpx.Client
) -> None:
    metadata = get_json(http, f"{vault.url}/.well-known/oauth-authorization-server")
    for name in ("issuer", "authorization_endpoint", "token_endpoint", "response_types_supported"):
        assert metadata[name], name  # REQUIRED by RFC 8414, section 2
    for name in (
        "issuer",
        "jwks_uri",
        "authorization_endpoint",
        "token_endpoint",
        "revocation_endpoint",
        "introspection_endpoint",
        "grant_types_supported",
        "token_endpoint_auth_methods_supported",
        "token_endpoint_auth_signing_alg_values_supported",
        "code_challenge_methods_supported",
    ):
        assert metadata[name] == smart[name], name
    assert metadata["introspection_endpoint_auth_methods_supported"] == ["private_key_jwt"]
    assert "none" in metadata["revocation_endpoint_auth_methods_supported"]


def test_id_token_algorithm_in_the_metadata_is_the_one_the_keys_use(
    vault: ServerThread, http: httpx.Client
) -> None:
    metadata = get_json(http, f"{vault.url}/.well-known/oauth-authorization-server")
    keys = get_json(http, f"{vault.url}/oauth/jwks")["keys"]
    assert {k["alg"] for k in keys} <= set(metadata["id_token_signing_alg_values_supported"])


def test_jwks_publishes_only_public_signing_keys(vault: ServerThread, http: httpx.Client) -> None:
    response = http.get(f"{vault.url}/oauth/jwks")
    assert response.status_code == 200
    keys = response.json()["keys"]
    assert keys
    for key in keys:
        assert not PRIVATE_JWK_MEMBERS & set(key), key
        assert key["use"] == "sig"
        assert key["kid"]
        assert key["kty"] == "RSA"
        jwk.import_key(key)  # a usable public key
    assert len({k["kid"] for k in keys}) == len(keys)


# -- the CapabilityStatement names SMART and the same endpoints -----------------------------


def test_capability_statement_names_smart_on_fhir(vault: ServerThread, http: httpx.Client) -> None:
    statement = http.get(f"{vault.url}/fhir/metadata").json()
    (rest,) = statement["rest"]
    codings = [c for service in rest["security"]["service"] for c in service["coding"]]
    assert {
        "system": "http://terminology.hl7.org/CodeSystem/restful-security-service",
        "code": "SMART-on-FHIR",
    }.items() <= codings[0].items()


def test_capability_statement_oauth_uris_match_the_discovery_document(
    smart: dict[str, Any], vault: ServerThread, http: httpx.Client
) -> None:
    statement = http.get(f"{vault.url}/fhir/metadata").json()
    assert oauth_uris(statement) == {
        "authorize": smart["authorization_endpoint"],
        "token": smart["token_endpoint"],
        "revoke": smart["revocation_endpoint"],
        "introspect": smart["introspection_endpoint"],
    }


def test_endpoints_are_those_of_the_bound_address_whatever_the_host_header(
    vault: ServerThread, http: httpx.Client
) -> None:
    # Without a configured public URL, every document names the address the vault is bound
    # to: a Host header is the client's to choose, the issuer is not (vault/kernel/urls.py).
    host = {"host": f"localhost:{vault.port}"}
    smart = get_json(http, f"{vault.url}/.well-known/smart-configuration", headers=host)
    statement = http.get(f"{vault.url}/fhir/metadata", headers=host).json()
    assert smart["issuer"] == vault.url
    assert oauth_uris(statement)["token"] == f"{vault.url}/oauth/token"
    assert oauth_uris(statement)["authorize"] == smart["authorization_endpoint"]


@pytest.fixture
def behind_proxy(settings: Settings) -> Iterator[ServerThread]:
    """The same vault, configured with a public URL (as behind a reverse proxy)."""
    proxied = open_runtime(replace(settings, public_base_url="https://vault.example.nl"))
    try:
        with ServerThread(create_app(proxied.settings, runtime=proxied)) as running:
            yield running
    finally:
        proxied.close()


def test_a_configured_public_url_is_used_in_every_document(
    behind_proxy: ServerThread, http: httpx.Client
) -> None:
    smart = get_json(http, f"{behind_proxy.url}/.well-known/smart-configuration")
    metadata = get_json(http, f"{behind_proxy.url}/.well-known/oauth-authorization-server")
    statement = http.get(f"{behind_proxy.url}/fhir/metadata").json()
    assert smart["issuer"] == metadata["issuer"] == "https://vault.example.nl"
    assert smart["token_endpoint"] == "https://vault.example.nl/oauth/token"
    assert oauth_uris(statement) == {
        "authorize": "https://vault.example.nl/oauth/authorize",
        "token": "https://vault.example.nl/oauth/token",
        "revoke": "https://vault.example.nl/oauth/revoke",
        "introspect": "https://vault.example.nl/oauth/introspect",
    }
