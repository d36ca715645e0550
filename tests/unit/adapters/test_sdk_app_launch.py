"""AppLaunchAuth without a vault: refresh rotation is kept, a refused refresh forgets it."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from adapters.sdk import (
    AppLaunchAuth,
    AuthenticationFailed,
    LoopbackReceiver,
    TokenFile,
    VaultClient,
    pkce_pair,
)

BASE = "https://vault.example"
CONFIG = {
    "authorization_endpoint": f"{BASE}/oauth/authorize",
    "token_endpoint": f"{BASE}/oauth/token",
}


def vault(token: Callable[[dict[str, str]], httpx.Response]) -> httpx.Client:
    def handle(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/.well-known/smart-configuration":
            return httpx.Response(200, json=CONFIG)
        if request.url.path == "/oauth/token":
            form = dict(httpx.QueryParams(request.content.decode()))
            return token(form)
        return httpx.Response(200, json={"resourceType": "Bundle", "type": "searchset"})

    return httpx.Client(transport=httpx.MockTransport(handle))


def stored(path: Path, refresh: str = "r-1", patient: str = "p-1") -> TokenFile:
    tokens = TokenFile(path)
    tokens.save({"client_id": "app", "patient": patient, "refresh_token": refresh})
    return tokens


def test_a_refresh_is_rotated_and_the_new_token_kept_in_a_0600_file(tmp_path: Path) -> None:
    seen: list[str] = []

    def token(form: dict[str, str]) -> httpx.Response:
        seen.append(form["refresh_token"])
        n = len(seen)
        body = {"access_token": f"a-{n}", "refresh_token": f"r-{n + 1}", "patient": "p-1"}
        return httpx.Response(200, json=body | {"expires_in": 3600})

    tokens = stored(tmp_path / "token.json")
    auth = AppLaunchAuth("app", "http://127.0.0.1:9/cb", ["launch/patient"], store=tokens)
    with VaultClient(BASE, "app", auth=auth, http=vault(token)) as client:
        assert client.access_token() == "a-1"
        assert client.access_token() == "a-1"  # cached, no second refresh
        auth.invalidate()
        assert client.access_token() == "a-2"
    assert seen == ["r-1", "r-2"]
    assert json.loads((tmp_path / "token.json").read_text())["refresh_token"] == "r-3"
    assert (tmp_path / "token.json").stat().st_mode & 0o777 == 0o600


def test_a_refused_refresh_token_is_forgotten(tmp_path: Path) -> None:
    tokens = stored(tmp_path / "token.json")
    auth = AppLaunchAuth("app", "http://127.0.0.1:9/cb", [], store=tokens)
    refuse = lambda form: httpx.Response(400, json={"error": "invalid_grant"})  # noqa: E731
    with (
        VaultClient(BASE, "app", auth=auth, http=vault(refuse)) as client,
        pytest.raises(AuthenticationFailed) as failed,
    ):
        client.access_token()
    assert failed.value.error == "invalid_grant"
    assert not (tmp_path / "token.json").exists()
    assert not auth.logged_in


def test_a_token_for_another_inwoner_is_refused(tmp_path: Path) -> None:
    other = lambda form: httpx.Response(  # noqa: E731
        200, json={"access_token": "a", "patient": "someone-else", "expires_in": 60}
    )
    auth = AppLaunchAuth("app", "http://127.0.0.1:9/cb", [], store=stored(tmp_path / "t"))
    with (
        VaultClient(BASE, "app", auth=auth, http=vault(other)) as client,
        pytest.raises(AuthenticationFailed, match="another inwoner"),
    ):
        client.access_token()


def test_a_token_of_another_client_in_the_file_is_not_used(tmp_path: Path) -> None:
    auth = AppLaunchAuth("other-app", "http://127.0.0.1:9/cb", [], store=stored(tmp_path / "t"))
    assert not auth.logged_in


def test_the_authorize_url_carries_pkce_s256_state_and_audience() -> None:
    auth = AppLaunchAuth("app", "http://127.0.0.1:9/cb", ["launch/patient", "patient/Goal.rs"])
    with VaultClient(BASE, "app", auth=auth, http=vault(lambda f: httpx.Response(500))) as client:
        url = httpx.URL(auth.authorize_url(client, state="s", challenge="c"))
    assert url.params["code_challenge_method"] == "S256"
    assert url.params["aud"] == f"{BASE}/fhir"
    assert url.params["scope"] == "launch/patient patient/Goal.rs"
    verifier, challenge = pkce_pair()
    assert 43 <= len(verifier) <= 128 and "=" not in challenge


def test_a_loopback_redirect_uri_must_be_http_on_127_0_0_1_with_a_port() -> None:
    for bad in ("https://app.example/cb", "http://127.0.0.1/cb", "http://10.0.0.1:80/cb"):
        with pytest.raises(ValueError):
            LoopbackReceiver(bad)
