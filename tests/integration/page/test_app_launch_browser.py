"""SMART App Launch in a real browser: Debian's Chromium logs in on the vault's approval page
and is sent to the app's redirect URI, where a real HTTP server listens on loopback.

httpx-driven flows cannot see what a browser enforces, such as the approval page's
Content-Security-Policy ``form-action`` applying to the redirect after the form POST
(CSP Level 3, section 6.3.1: "form-action"). These tests go from the first page to the end:
the code arrives at the app's listener and is swapped for a token that reads the inwoner's
own data; "Nee, liever niet" reaches the app as ``error=access_denied``; and the
``vault-adapter import-plan`` command logs the inwoner in the same way.
"""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect

from adapters.samenwerkplan import IMPORT_SCOPES
from adapters.sdk.app_launch import LoopbackReceiver
from tests.integration.page.conftest import Vault, check_page
from tests.support import REPO_ROOT, free_port
from tests.support.smart import App, inwoner_account, pkce, register_app
from vault.app.clients import register_client

pytestmark = pytest.mark.slow

PATIENT = "demo-inwoner-daan"
EXAMPLE_PLAN = REPO_ROOT / "docs" / "examples" / "samenwerkplan-noor.md"


@pytest.fixture
def app(vault: Vault) -> App:
    """An inwoner's app with a loopback redirect URI (RFC 8252 section 7.3)."""
    return register_app(
        vault.runtime, vault.url, redirect_uri=f"http://127.0.0.1:{free_port()}/callback"
    )


@pytest.fixture
def login(vault: Vault) -> tuple[str, str]:
    return inwoner_account(vault.runtime, PATIENT)


@pytest.fixture
def console(page: Page) -> Iterator[list[str]]:
    """What Chromium reports on the console: a CSP violation shows up here."""
    messages: list[str] = []
    page.on("console", lambda message: messages.append(message.text))
    yield messages


def approve_in_browser(
    page: Page, url: str, *, username: str, password: str, decision: str = "Ja, dat mag"
) -> None:
    page.goto(url)
    expect(page.get_by_role("heading", level=1)).to_contain_text("wil je gegevens gebruiken")
    if decision == "Ja, dat mag":
        page.get_by_label("Je gebruikersnaam").fill(username)
        page.get_by_label("Je wachtwoord").fill(password)
    page.get_by_role("button", name=decision).click()


def test_approving_in_chromium_reaches_the_apps_loopback_server_and_the_code_buys_a_token(
    page: Page, vault: Vault, app: App, login: tuple[str, str], console: list[str]
) -> None:
    verifier, challenge = pkce()
    params = app.authorize_params(challenge=challenge, state="browser-state")
    url = str(httpx.URL(vault.url + "/oauth/authorize", params=params))
    with LoopbackReceiver(app.redirect_uri) as receiver:
        page.goto(url)
        check_page(page, "app-toestemming")
        approve_in_browser(page, url, username=login[0], password=login[1])
        answer = receiver.wait(30)
    expect(page.locator("p")).to_have_text("Gelukt. Je kunt dit venster sluiten.")
    assert page.url.startswith(app.redirect_uri + "?")
    assert answer["state"] == "browser-state"
    assert not [m for m in console if "Content Security Policy" in m], console

    with httpx.Client(timeout=30) as http:
        swapped = app.exchange(http, answer["code"], verifier)
        assert swapped.status_code == 200, swapped.text
        body = swapped.json()
        assert body["patient"] == PATIENT
        own = http.get(
            f"{vault.url}/fhir/Patient/{PATIENT}",
            headers={"authorization": f"Bearer {body['access_token']}"},
        )
        assert own.status_code == 200, own.text
        assert own.json()["id"] == PATIENT


def test_saying_no_in_chromium_reaches_the_app_as_access_denied(
    page: Page, vault: Vault, app: App, console: list[str]
) -> None:
    _, challenge = pkce()
    params = app.authorize_params(challenge=challenge, state="no-thanks")
    url = str(httpx.URL(vault.url + "/oauth/authorize", params=params))
    with LoopbackReceiver(app.redirect_uri) as receiver:
        approve_in_browser(page, url, username="", password="", decision="Nee, liever niet")
        answer = receiver.wait(30)
    assert answer["error"] == "access_denied"
    assert answer["state"] == "no-thanks"
    assert "code" not in answer
    expect(page.locator("p")).to_contain_text("access_denied")
    assert not [m for m in console if "Content Security Policy" in m], console


def test_a_wrong_password_keeps_the_inwoner_on_the_page_and_the_second_try_gets_through(
    page: Page, vault: Vault, app: App, login: tuple[str, str]
) -> None:
    verifier, challenge = pkce()
    url = str(
        httpx.URL(vault.url + "/oauth/authorize", params=app.authorize_params(challenge=challenge))
    )
    with LoopbackReceiver(app.redirect_uri) as receiver:
        approve_in_browser(page, url, username=login[0], password="not-the-password")
        expect(page.get_by_role("alert")).to_contain_text("klopt niet")
        # The page shown again after the mistake still lets the form reach the app.
        page.get_by_label("Je wachtwoord").fill(login[1])
        page.get_by_role("button", name="Ja, dat mag").click()
        answer = receiver.wait(30)
    with httpx.Client(timeout=30) as http:
        assert app.exchange(http, answer["code"], verifier).status_code == 200


def test_vault_adapter_import_plan_logs_in_through_chromium_and_imports(
    browser: Browser, vault: Vault, tmp_path: Path
) -> None:
    redirect_uri = f"http://127.0.0.1:{free_port()}/callback"
    client_id = register_client(
        vault.runtime,
        name="Samenwerkplan import",
        organization_name="Regiekluis",
        scopes=list(IMPORT_SCOPES),
        redirect_uris=[redirect_uri],
    )
    username, password = inwoner_account(vault.runtime, "demo-inwoner-sanne")
    command = [
        str(Path(sys.executable).with_name("vault-adapter")),
        "import-plan",
        str(EXAMPLE_PLAN),
        "--vault",
        vault.url,
        "--client-id",
        client_id,
        "--redirect-uri",
        redirect_uri,
        "--token-file",
        str(tmp_path / "token.json"),
        "--no-open-browser",
    ]
    tool = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO_ROOT
    )
    try:
        assert tool.stderr is not None and tool.stdout is not None
        url = ""
        for line in tool.stderr:
            if line.startswith("http"):
                url = line.strip()
                break
        assert re.match(re.escape(vault.url) + r"/oauth/authorize\?", url), url
        context = browser.new_context(locale="nl-NL")
        try:
            page = context.new_page()
            approve_in_browser(page, url, username=username, password=password)
            expect(page.locator("p")).to_have_text("Gelukt. Je kunt dit venster sluiten.")
        finally:
            context.close()
        out, err = tool.communicate(timeout=60)
    finally:
        if tool.poll() is None:  # a failed step must not leave the tool waiting for its login
            tool.kill()
            tool.communicate()
    assert tool.returncode == 0, err
    assert re.search(r": created \d+, updated 0, unchanged 0$", out.strip()), out
