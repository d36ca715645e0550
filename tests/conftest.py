"""Shared fixtures: a real database (SQLite, or PostgreSQL when VAULT_DATABASE_URL says so),
a real vault served over HTTP by uvicorn on 127.0.0.1, and httpx clients.

Until the OAuth issue plugs real tokens in, the test server's access resolver reads the
caller's context from the ``X-Test-Access`` header: ``full`` or ``patient:<id>``. Only the
test app has that resolver; ``vault serve`` answers 401 to every FHIR request.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import uvicorn
from fastapi import Request

from adapters.sink import SinkAdapter
from tests.support import free_port, fresh_database, inwoner_context
from vault.app.main import create_app
from vault.audit.runtime import open_runtime
from vault.consent.access import AccessContext
from vault.consent.decision import _CACHE as _DECISION_CACHE
from vault.kernel.config import Settings
from vault.kernel.crypto import MasterKey
from vault.kernel.db import Database
from vault.kernel.errors import Unauthorized
from vault.kernel.runtime import Runtime
from vault.migrations import upgrade
from vault.oauth import accounts

FHIR_JSON = {"content-type": "application/fhir+json"}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """``REGIEKLUIS_MUTATE_TESTS="path ..."`` keeps only the tests under those paths.

    For ``make mutate-compile`` and the like: mutmut takes its test selection from
    pyproject.toml alone, and this narrows it per target (deselected tests are reported
    as such, so mutmut drops them from its test-to-function map).
    """
    prefixes = tuple(os.environ.get("REGIEKLUIS_MUTATE_TESTS", "").split())
    if not prefixes:
        return
    keep = [item for item in items if item.nodeid.startswith(prefixes)]
    dropped = [item for item in items if not item.nodeid.startswith(prefixes)]
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = keep


@pytest.fixture(scope="session", autouse=True)
def _lighter_password_hashes() -> Iterator[None]:
    """Accounts made in this process hash with scrypt at N = 2**10, not the vault's 2**14.

    The work factor is there to slow down someone guessing passwords, not the tests: the
    stop property test makes and logs in two accounts per example, and at the real factor
    scrypt was a third of its CPU. Every login still checks the password against its
    hash (the hash carries its own factor). ``vault`` child processes, and so every page
    test in Chromium, keep the real factor; ``tests/unit/oauth/test_accounts.py`` pins it.
    """
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(accounts, "SCRYPT_N", 2**10)
        yield


@pytest.fixture(autouse=os.environ.get("MUTANT_UNDER_TEST") is not None)
def _forget_built_decisions() -> None:
    """Under mutmut: every test builds the access decision afresh.

    ``consent/decision.py`` builds each condition once per process. mutmut runs its
    workers in processes forked after the whole selection ran, and records which tests
    call a function: with the cache warm, a mutant of ``enforce.granted`` or ``not_erased``
    would never run, and only the first test to build a condition would count as testing
    it. Outside mutmut the cache stays, as in use.
    """
    _DECISION_CACHE.clear()


def test_access(request: Request) -> AccessContext:
    value = request.headers.get("x-test-access", "")
    if value == "full":
        return AccessContext.full("test")
    if value.startswith("patient:"):
        patient = value.split(":", 1)[1]
        return inwoner_context(patient)
    raise Unauthorized("no test access", headers={"WWW-Authenticate": "Bearer"})


@pytest.fixture(scope="session")
def database_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A fresh, empty database for this test process."""
    with fresh_database(tmp_path_factory.mktemp("db")) as url:
        yield url


def make_settings(data_dir: Path, database_url: str) -> Settings:
    # The development switch lets test key servers listen on http://127.0.0.1 (netguard).
    return Settings(
        data_dir=data_dir,
        database_url=database_url,
        sqlite_checkpoint_interval=0.2,
        notify_allow_local_http=True,
    )


def initialise(settings: Settings) -> None:
    """What `vault init` does, in process."""
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    if not settings.master_key_path.exists():
        MasterKey.generate().write(settings.master_key_path)
    db = Database(settings.database_url)
    try:
        upgrade(db.write_engine)
    finally:
        db.dispose()
    open_runtime(settings, bootstrap=True).close()


@pytest.fixture(scope="session")
def settings(tmp_path_factory: pytest.TempPathFactory, database_url: str) -> Settings:
    result = make_settings(tmp_path_factory.mktemp("vault"), database_url)
    initialise(result)
    return result


@pytest.fixture(scope="session")
def runtime(settings: Settings) -> Iterator[Runtime]:
    rt = open_runtime(settings)
    yield rt
    rt.close()


class ServerThread:
    """uvicorn serving an app on 127.0.0.1 in a background thread."""

    def __init__(self, app: object) -> None:
        self.port = free_port()
        config = uvicorn.Config(
            app,
            host="127.0.0.1",
            port=self.port,
            log_level="warning",
            access_log=False,
            lifespan="on",
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> ServerThread:
        self.thread.start()
        deadline = time.monotonic() + 15
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("test server did not start")
            time.sleep(0.01)
        return self

    def __exit__(self, *_exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


@pytest.fixture(scope="session")
def server(settings: Settings, runtime: Runtime) -> Iterator[ServerThread]:
    app = create_app(settings, access_resolver=test_access, runtime=runtime)
    with ServerThread(app) as running:
        yield running


@pytest.fixture
def client(server: ServerThread) -> Iterator[httpx.Client]:
    """An operator-level client of /fhir (full access)."""
    with httpx.Client(
        base_url=server.url + "/fhir", headers={"x-test-access": "full"}, timeout=30
    ) as http:
        yield http


@pytest.fixture
def anonymous(server: ServerThread) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url + "/fhir", timeout=30) as http:
        yield http


def create(client: httpx.Client, resource: dict[str, object]) -> dict[str, object]:
    """POST a resource and return the stored JSON; fails the test on any error."""
    response = client.post(f"/{resource['resourceType']}", json=resource, headers=FHIR_JSON)
    assert response.status_code == 201, response.text
    body: dict[str, object] = response.json()
    return body


@pytest.fixture
def sink(tmp_path: Path) -> Iterator[SinkAdapter]:
    """A partner's own database, as the sink adapter keeps it (SQLite in ``tmp_path``)."""
    adapter = SinkAdapter({"database_url": f"sqlite:///{tmp_path / 'partner.db'}"})
    yield adapter
    adapter.close()
