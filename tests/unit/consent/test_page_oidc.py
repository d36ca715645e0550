"""The OIDC login's pieces that need no provider: client authentication, settings."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from joserfc import jwt
from joserfc.jwk import RSAKey

from vault.kernel.config import OidcSettings
from vault.page import oidc as page_oidc


def test_with_a_key_file_the_token_request_carries_a_private_key_jwt(tmp_path: Path) -> None:
    key = RSAKey.generate_key(2048)
    key_file = tmp_path / "client.pem"
    key_file.write_bytes(key.as_pem(private=True))
    settings = OidcSettings(
        issuer="https://idp.example", client_id="vault", private_key_file=str(key_file)
    )
    seen: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"access_token": "a", "token_type": "Bearer"})

    with httpx.Client(transport=httpx.MockTransport(answer)) as http:
        client = page_oidc._client(settings, http, "https://vault.example/inloggen/oidc/terug")
        client.fetch_token(
            "https://idp.example/token",
            grant_type="authorization_code",
            code="c",
            code_verifier="v" * 43,
            redirect_uri="https://vault.example/inloggen/oidc/terug",
        )
    form = dict(httpx.QueryParams(seen[0].content.decode()))
    assert "authorization" not in seen[0].headers
    assert form["client_assertion_type"] == (
        "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
    )
    claims = jwt.decode(form["client_assertion"], key).claims
    assert claims["iss"] == claims["sub"] == "vault"
    assert claims["aud"] == "https://idp.example/token"
    assert form["code_verifier"] == "v" * 43


def test_oidc_is_off_unless_configured_and_refuses_half_or_placeholder_settings(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in ("ISSUER", "CLIENT_ID", "CLIENT_SECRET", "PRIVATE_KEY_FILE"):
        monkeypatch.delenv(f"VAULT_OIDC_{name}", raising=False)
    assert OidcSettings.from_env() is None
    monkeypatch.setenv("VAULT_OIDC_ISSUER", "https://idp.example/")
    with pytest.raises(ValueError, match="CLIENT_ID"):
        OidcSettings.from_env()
    monkeypatch.setenv("VAULT_OIDC_CLIENT_ID", "vault")
    monkeypatch.setenv("VAULT_OIDC_CLIENT_SECRET", "changeme")
    with pytest.raises(ValueError, match="placeholder"):
        OidcSettings.from_env()
    monkeypatch.setenv("VAULT_OIDC_CLIENT_SECRET", "a-real-secret-from-the-broker")
    loaded = OidcSettings.from_env()
    assert loaded is not None and loaded.issuer == "https://idp.example"
    assert loaded.label == "Inloggen met DigiD"
    monkeypatch.setenv("VAULT_OIDC_ISSUER", "http://idp.example")
    with pytest.raises(ValueError, match="https"):
        OidcSettings.from_env()
