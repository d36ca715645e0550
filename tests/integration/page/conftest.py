"""The consent page in a real browser: `vault serve` with the demo family, Debian's Chromium
driven by Playwright, axe-core injected into every page, screenshots at 320 and 1280 px.

One server process and one browser per test module (and xdist worker); every test logs in
afresh and works on its own inwoner, so the tests do not depend on their order.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, Page, sync_playwright
from sqlalchemy.engine import make_url

from tests.support import (
    REPO_ROOT,
    ServerProcess,
    fresh_database,
    run_vault,
    vault_command,
    vault_env,
)
from vault.audit.runtime import open_runtime
from vault.kernel.config import Settings
from vault.kernel.runtime import Runtime

CHROMIUM = Path("/usr/bin/chromium")
AXE = REPO_ROOT / "node_modules" / "axe-core" / "axe.min.js"
SCREENSHOTS = REPO_ROOT / "test-artifacts" / "screenshots"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@dataclass
class Vault:
    url: str
    runtime: Runtime
    passwords: dict[str, str]
    server: ServerProcess


@dataclass(frozen=True)
class DemoTemplate:
    """A data folder and database after `vault init` and `vault demo`, never served."""

    data_dir: Path
    url: str
    passwords: dict[str, str]


@pytest.fixture(scope="session")
def demo_template(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DemoTemplate]:
    """`vault init` and `vault demo` once per test process (xdist worker); every module's
    vault starts from a copy. The two commands are run as written in the README, only not
    again for each of the fourteen modules."""
    if not CHROMIUM.exists() or not AXE.exists():
        pytest.fail("the page tests need /usr/bin/chromium and node_modules: run `make test`")
    data_dir = tmp_path_factory.mktemp("demo-template")
    with fresh_database(data_dir) as url:
        env = vault_env(url)
        for args in (("init",), ("demo",)):
            done = run_vault(*args, "--data-dir", str(data_dir), env=env)
            assert done.returncode == 0, done.stderr
        passwords = dict(re.findall(r"^\s+([a-z-]+)\s+(\S+)$", done.stdout, re.M))
        # The family: two parents, three children, and an account per parent per child.
        family = {"sanne", "erik", "daan", "lotte", "mila", "sanne-daan", "erik-lotte"}
        assert family <= set(passwords), done.stdout
        yield DemoTemplate(data_dir, url, passwords)


@contextmanager
def _copy_of(template: DemoTemplate, data_dir: Path) -> Iterator[str]:
    """The template's master key and database, copied: a file on SQLite, a database made
    with ``CREATE DATABASE … TEMPLATE`` on PostgreSQL."""
    shutil.copy2(template.data_dir / "master.key", data_dir / "master.key")
    source = None
    if template.url.startswith("postgresql"):
        source = make_url(template.url).database
    else:
        shutil.copy2(template.data_dir / "vault.db", data_dir / "vault.db")
    with fresh_database(data_dir, template=source) as url:
        yield url


@contextmanager
def running_vault(template: DemoTemplate, data_dir: Path, **extra_env: str) -> Iterator[Vault]:
    """`vault serve` on a copy of the demo vault (`vault init`, `vault demo`)."""
    with _copy_of(template, data_dir) as url:
        env = vault_env(url, VAULT_TRUST_FORWARDED_PROTO="1", **extra_env)
        server = ServerProcess(
            lambda port: [
                *vault_command(),
                "serve",
                "--data-dir",
                str(data_dir),
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
            ],
            env=env,
            log_path=data_dir / "serve.log",
        )
        runtime = open_runtime(Settings(data_dir=data_dir, database_url=url))
        try:
            with server:
                yield Vault(server.url, runtime, dict(template.passwords), server)
        finally:
            runtime.close()


@pytest.fixture(scope="module")
def vault(tmp_path_factory: pytest.TempPathFactory, demo_template: DemoTemplate) -> Iterator[Vault]:
    with running_vault(demo_template, tmp_path_factory.mktemp("page-vault")) as running:
        yield running


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True
        )
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1280, "height": 900}, locale="nl-NL")
    try:
        yield context.new_page()
    finally:
        context.close()


@pytest.fixture
def http(vault: Vault) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=vault.url, timeout=30, follow_redirects=False) as client:
        yield client


def log_in(page: Page, vault: Vault, username: str, password: str | None = None) -> None:
    page.goto(vault.url + "/")
    assert page.url.endswith("/inloggen")
    page.get_by_label("Gebruikersnaam").fill(username)
    page.get_by_label("Wachtwoord").fill(password or vault.passwords[username])
    page.get_by_role("button", name="Inloggen").click()
    page.wait_for_load_state()
    assert not page.url.endswith("/inloggen"), page.content()


_AXE_SOURCE: list[str] = []


def check_page(page: Page, name: str) -> None:
    """axe-core finds nothing serious or critical; screenshots at 320 and 1280 px."""
    if not _AXE_SOURCE:
        _AXE_SOURCE.append(AXE.read_text(encoding="utf-8"))
    # Evaluated through the DevTools protocol: the page's own CSP forbids injected scripts.
    page.evaluate(_AXE_SOURCE[0])
    result: dict[str, Any] = page.evaluate("() => axe.run(document, {resultTypes: ['violations']})")
    serious = [
        f"{v['id']} ({v['impact']}): {v['help']} at {[n['target'] for n in v['nodes']][:3]}"
        for v in result["violations"]
        if v["impact"] in ("serious", "critical")
    ]
    assert not serious, f"{name}: {serious}"
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    original = page.viewport_size
    for width in (320, 1280):
        page.set_viewport_size({"width": width, "height": 800})
        page.screenshot(path=str(SCREENSHOTS / f"{name}-{width}.png"), full_page=True)
    if original is not None:
        page.set_viewport_size(original)


def page_csrf(http: httpx.Client, path: str = "/") -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', http.get(path).text)
    assert found is not None
    return found.group(1)


def http_log_in(http: httpx.Client, username: str, password: str) -> httpx.Response:
    token = page_csrf(http, "/inloggen")
    return http.post(
        "/inloggen", data={"csrf_token": token, "username": username, "password": password}
    )


__all__ = [
    "DemoTemplate",
    "Vault",
    "check_page",
    "http_log_in",
    "log_in",
    "page_csrf",
    "running_vault",
]
