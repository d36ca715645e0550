"""Login through an outside OpenID Connect provider: a small provider of our own, over real
HTTP with id_tokens signed at test time, and `vault serve` configured to use it."""

from __future__ import annotations

import sys
from collections.abc import Iterator

import httpx
import pytest
from playwright.sync_api import Page, expect

from tests.integration.page.conftest import DemoTemplate, Vault, check_page, running_vault
from tests.support import ServerProcess

pytestmark = pytest.mark.slow

SANNE_BSN = "999990019"  # the demo's Patient/demo-inwoner-sanne
CLIENT_ID = "regiekluis-test"
CLIENT_SECRET = "provider-secret-" + "x" * 16


@pytest.fixture(scope="module")
def provider(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    folder = tmp_path_factory.mktemp("oidc-provider")
    server = ServerProcess(
        lambda port: [
            sys.executable,
            "-m",
            "tests.support.oidc_provider",
            "--port",
            str(port),
            "--client-id",
            CLIENT_ID,
            "--client-secret",
            CLIENT_SECRET,
        ],
        env={},
        log_path=folder / "provider.log",
    )
    with server:
        yield server


@pytest.fixture(scope="module")
def vault(
    tmp_path_factory: pytest.TempPathFactory, demo_template: DemoTemplate, provider: ServerProcess
) -> Iterator[Vault]:
    with running_vault(
        demo_template,
        tmp_path_factory.mktemp("oidc-vault"),
        VAULT_OIDC_ISSUER=provider.url,
        VAULT_OIDC_CLIENT_ID=CLIENT_ID,
        VAULT_OIDC_CLIENT_SECRET=CLIENT_SECRET,
    ) as running:
        yield running


def next_login(provider: ServerProcess, *, bsn: str, tamper: str = "") -> None:
    answer = httpx.post(provider.url + "/test/next", json={"bsn": bsn, "tamper": tamper})
    assert answer.status_code == 200


def test_login_through_the_provider_lands_on_the_inwoners_own_page(
    page: Page, vault: Vault, provider: ServerProcess
) -> None:
    next_login(provider, bsn=SANNE_BSN)
    page.goto(vault.url + "/")
    check_page(page, "inloggen-met-digid")
    page.get_by_role("link", name="Inloggen met DigiD").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Wie mag wat zien")
    expect(page.locator("header")).to_contain_text("Ingelogd als Sanne")
    page.goto(vault.url + "/plan")
    expect(page.get_by_role("heading", level=1)).to_have_text("Mijn plan")
    # The password login is still there for those who have one.
    page.get_by_role("button", name="Uitloggen").click()
    expect(page.get_by_label("Gebruikersnaam")).to_be_visible()


def _through_provider(http: httpx.Client) -> httpx.Response:
    """Follow the redirects by hand: vault -> provider -> vault's return address."""
    start = http.get("/inloggen/oidc")
    assert start.status_code == 303, start.text
    at_provider = http.get(start.headers["location"])
    assert at_provider.status_code == 302, at_provider.text
    return http.get(at_provider.headers["location"])


@pytest.mark.parametrize(
    ("tamper", "bsn", "title"),
    [
        ("nonce", SANNE_BSN, "Inloggen lukte niet"),
        ("issuer", SANNE_BSN, "Inloggen lukte niet"),
        ("audience", SANNE_BSN, "Inloggen lukte niet"),
        ("expired", SANNE_BSN, "Inloggen lukte niet"),
        ("signature", SANNE_BSN, "Inloggen lukte niet"),
        ("state", SANNE_BSN, "Inloggen lukte niet"),
        ("", "999990111", "We kennen je nog niet"),
        ("cancel", SANNE_BSN, "Je bent niet ingelogd"),
    ],
)
def test_a_login_the_vault_cannot_trust_is_refused_without_a_session(
    vault: Vault, provider: ServerProcess, tamper: str, bsn: str, title: str
) -> None:
    next_login(provider, bsn=bsn, tamper=tamper)
    with httpx.Client(base_url=vault.url, timeout=30) as http:
        back = _through_provider(http)
        assert back.status_code == 403
        assert title in back.text and 'lang="nl"' in back.text
        assert "rk_session" not in back.headers.get("set-cookie", "")
        assert bsn not in back.text and "Traceback" not in back.text
        assert http.get("/").headers["location"] == "/inloggen"
    assert bsn not in vault.server.log()


def test_the_return_address_needs_the_browser_that_started_the_login(
    vault: Vault, provider: ServerProcess
) -> None:
    next_login(provider, bsn=SANNE_BSN)
    with httpx.Client(base_url=vault.url, timeout=30) as victim:
        start = victim.get("/inloggen/oidc")
        back = victim.get(start.headers["location"]).headers["location"]
    # Someone else's browser, without the sealed state cookie, cannot use the code.
    with httpx.Client(timeout=30) as attacker:
        refused = attacker.get(back)
    assert refused.status_code == 403
    assert "rk_session" not in refused.headers.get("set-cookie", "")
