"""An authorization code used wrongly is burnt, and what it gave is revoked.

RFC 6749 section 4.1.2 (a code used more than once: deny, and revoke the tokens issued from
it) and section 10.5 (codes are bound to their client). A code that another client
presents may have been stolen, so it counts as misuse too: the code stops working for its
own app, and tokens its own app already received from it are revoked.
"""

from __future__ import annotations

import httpx
import pytest

from tests.conftest import ServerThread
from tests.support.smart import App, inwoner_account, pkce, register_app
from vault.kernel.runtime import Runtime


@pytest.fixture
def owner(runtime: Runtime, vault: ServerThread) -> App:
    return register_app(runtime, vault.url)


@pytest.fixture
def thief(runtime: Runtime, vault: ServerThread) -> App:
    return register_app(runtime, vault.url, redirect_uri="https://thief.example/callback")


@pytest.fixture
def login(runtime: Runtime, inwoner: str) -> tuple[str, str]:
    return inwoner_account(runtime, inwoner)


def approved_code(app: App, http: httpx.Client, login: tuple[str, str]) -> tuple[str, str]:
    verifier, challenge = pkce()
    params = app.authorize_params(challenge=challenge)
    response = app.login_and_approve(http, params, username=login[0], password=login[1])
    return app.code_from(response), verifier


def refused(response: httpx.Response) -> None:
    assert response.status_code == 400, response.text
    assert response.json()["error"] == "invalid_grant"
    assert "access_token" not in response.text


def works(vault: ServerThread, http: httpx.Client, token: str) -> bool:
    response = http.get(f"{vault.url}/fhir/Goal", headers={"authorization": f"Bearer {token}"})
    assert response.status_code in (200, 401), response.text
    return response.status_code == 200


def test_a_code_presented_by_another_app_no_longer_works_for_its_own(
    owner: App, thief: App, http: httpx.Client, login: tuple[str, str]
) -> None:
    code, verifier = approved_code(owner, http, login)
    refused(thief.exchange(http, code, verifier, redirect_uri=owner.redirect_uri))
    refused(owner.exchange(http, code, verifier))


def test_a_code_presented_by_another_app_revokes_what_it_gave_its_own(
    owner: App, thief: App, vault: ServerThread, http: httpx.Client, login: tuple[str, str]
) -> None:
    code, verifier = approved_code(owner, http, login)
    exchanged = owner.exchange(http, code, verifier)
    assert exchanged.status_code == 200, exchanged.text
    tokens = exchanged.json()
    assert works(vault, http, tokens["access_token"])
    refused(thief.exchange(http, code, verifier, redirect_uri=owner.redirect_uri))
    assert not works(vault, http, tokens["access_token"])
    refused(owner.refresh(http, tokens["refresh_token"]))


def test_an_unknown_code_changes_nothing_for_others(
    owner: App, vault: ServerThread, http: httpx.Client, login: tuple[str, str]
) -> None:
    code, verifier = approved_code(owner, http, login)
    refused(owner.exchange(http, "not-a-code", verifier))
    exchanged = owner.exchange(http, code, verifier)
    assert exchanged.status_code == 200, exchanged.text
    assert works(vault, http, exchanged.json()["access_token"])
