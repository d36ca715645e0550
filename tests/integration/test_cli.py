"""The `vault` command as an operator runs it: init, keys rotate, serve, key refusals.

Each test runs the installed console script in a fresh data folder and a fresh database
(PostgreSQL when the suite runs with VAULT_DATABASE_URL).
"""

from __future__ import annotations

import os
import signal
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine, inspect, select, text
from typer.testing import CliRunner

from tests.conftest import FHIR_JSON, initialise
from tests.factories import goal, organization
from tests.factories import patient as patient_resource
from tests.support import (
    ServerProcess,
    free_port,
    fresh_database,
    vault,
    vault_command,
    vault_env,
)
from vault.app import cli
from vault.audit.runtime import open_runtime
from vault.consent.access import AccessContext
from vault.fhir.repository import Repository
from vault.kernel.config import Settings
from vault.kernel.crypto import MasterKey, pending_key_path
from vault.kernel.db import Database
from vault.kernel.errors import KeyUnavailable
from vault.migrations import alembic_config
from vault.store.keys import signing_key_owner
from vault.store.models import DataKey, SigningKey, VaultMeta

pytestmark = pytest.mark.slow


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "vault"


@pytest.fixture
def database_url(data_dir: Path) -> Iterator[str]:
    """A fresh database for each test (this overrides the suite's per-process one)."""
    with fresh_database(data_dir) as url:
        yield url


@pytest.fixture
def env(database_url: str) -> dict[str, str]:
    return vault_env(database_url)


@pytest.fixture
def settings(data_dir: Path, database_url: str) -> Settings:
    return Settings(data_dir=data_dir, database_url=database_url)


def init(data_dir: Path, env: dict[str, str]) -> None:
    vault("init", "--data-dir", str(data_dir), env=env)


def rotate(data_dir: Path, env: dict[str, str]) -> str:
    out, _ = vault("keys", "rotate", "--data-dir", str(data_dir), env=env)
    return out


def table_names(url: str) -> list[str]:
    if url.startswith("sqlite:///") and not Path(url.removeprefix("sqlite:///")).exists():
        return []
    engine = create_engine(url)
    try:
        return inspect(engine).get_table_names()
    finally:
        engine.dispose()


Plan = dict[tuple[str, str, int], bytes]


def store_plan(settings: Settings) -> Plan:
    """Write two inwoners' data and a shared Organization in process; return every version."""
    rt = open_runtime(settings)
    stored: Plan = {}
    try:
        repo = Repository(rt, AccessContext.full())
        with rt.db.write() as conn:
            for family in ("Visser", "de Boer"):
                person, _ = repo.create(conn, "Patient", patient_resource(family=family))
                first, _ = repo.create(
                    conn, "Goal", goal(patient_id=person.resource_id, text=f"Doel van {family}")
                )
                changed = {
                    **goal(patient_id=person.resource_id, text="Bijgesteld"),
                    "id": first.resource_id,
                }
                second, _ = repo.update(conn, "Goal", first.resource_id, changed)
                for item in (person, first, second):
                    assert item.body is not None
                    stored[item.resource_type, item.resource_id, item.version_id] = item.body
            org, _ = repo.create(conn, "Organization", organization(name="Sociaal team"))
            assert org.body is not None
            stored["Organization", org.resource_id, 1] = org.body
    finally:
        rt.close()
    return stored


def read_plan(settings: Settings, plan: Plan) -> Plan:
    rt = open_runtime(settings)
    try:
        repo = Repository(rt, AccessContext.full())
        found: Plan = {}
        with rt.db.read() as conn:
            for resource_type, resource_id, version in plan:
                item = repo.vread(conn, resource_type, resource_id, str(version))
                assert item.body is not None
                found[resource_type, resource_id, version] = item.body
        return found
    finally:
        rt.close()


def wrapped_keys(url: str) -> list[tuple[str, bytes, str | None]]:
    db = Database(url)
    try:
        with db.read() as conn:
            rows: list[Any] = [
                *conn.execute(select(DataKey.owner, DataKey.wrapped, DataKey.master_key_id)),
                # Rows without a master key id hold no wrapped key (the current key's id).
                *conn.execute(
                    select(VaultMeta.name, VaultMeta.value, VaultMeta.master_key_id).where(
                        VaultMeta.master_key_id.is_not(None)
                    )
                ),
                *(
                    (signing_key_owner(row.kid), row.private_sealed, row.master_key_id)
                    for row in conn.execute(select(SigningKey))
                ),
            ]
    finally:
        db.dispose()
    assert rows
    return [(row[0], row[1], row[2]) for row in rows if row[1] is not None]


def assert_only_opened_by(url: str, new: MasterKey, old: MasterKey) -> None:
    for owner, wrapped, key_id in wrapped_keys(url):
        assert key_id == new.key_id
        new.unwrap(wrapped, owner=owner)
        with pytest.raises(KeyUnavailable):
            old.unwrap(wrapped, owner=owner)


# -- init ------------------------------------------------------------------------------------


def test_init_creates_a_0600_master_key_and_a_database_at_head(
    data_dir: Path, env: dict[str, str], settings: Settings
) -> None:
    out, _ = vault("init", "--data-dir", str(data_dir), env=env)
    key_path = data_dir / "master.key"
    assert "created master key" in out
    assert stat.S_IMODE(key_path.stat().st_mode) == 0o600
    assert stat.S_IMODE(data_dir.stat().st_mode) == 0o700
    MasterKey.read(key_path)

    head = ScriptDirectory.from_config(alembic_config(settings.database_url)).get_current_head()
    engine = create_engine(settings.database_url)
    try:
        with engine.connect() as conn:
            versions = list(conn.execute(text("SELECT version_num FROM alembic_version")).scalars())
    finally:
        engine.dispose()
    assert versions == [head]
    open_runtime(settings).close()  # the vault's own keys are there and open


def test_second_init_keeps_the_master_key(data_dir: Path, env: dict[str, str]) -> None:
    init(data_dir, env)
    key_path = data_dir / "master.key"
    before = key_path.read_bytes()
    out, _ = vault("init", "--data-dir", str(data_dir), env=env)
    assert "keeping the existing master key" in out
    assert key_path.read_bytes() == before
    assert not [p.name for p in data_dir.iterdir() if p.name.startswith(".master.key")]


# -- keys rotate -----------------------------------------------------------------------------


def test_keys_rotate_keeps_everything_readable_and_retires_the_old_key(
    data_dir: Path,
    env: dict[str, str],
    settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    initialise(settings)  # `vault init` itself is tested above
    plan = store_plan(settings)
    key_path = data_dir / "master.key"
    old = MasterKey.read(key_path)

    out = rotate(data_dir, env)

    assert "rotated the master key" in out
    new = MasterKey.read(key_path)
    assert new != old
    assert stat.S_IMODE(key_path.stat().st_mode) == 0o600
    assert not pending_key_path(key_path).exists()
    assert read_plan(settings, plan) == plan
    assert_only_opened_by(settings.database_url, new, old)
    monkeypatch.setenv("VAULT_MASTER_KEY", old.to_text())
    with pytest.raises(KeyUnavailable):
        open_runtime(settings)


def test_rotation_interrupted_before_the_database_changed_is_finished_by_the_next(
    data_dir: Path, env: dict[str, str], settings: Settings
) -> None:
    initialise(settings)
    plan = store_plan(settings)
    key_path = data_dir / "master.key"
    old = MasterKey.read(key_path)
    # What rotate writes first, before it touches the database.
    pending = MasterKey.generate()
    pending.write(pending_key_path(key_path))
    assert read_plan(settings, plan) == plan

    rotate(data_dir, env)

    assert MasterKey.read(key_path) == pending
    assert not pending_key_path(key_path).exists()
    assert read_plan(settings, plan) == plan
    assert_only_opened_by(settings.database_url, pending, old)


def test_rotation_interrupted_after_the_database_changed_is_finished_by_the_next(
    data_dir: Path,
    env: dict[str, str],
    settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    initialise(settings)
    plan = store_plan(settings)
    key_path = data_dir / "master.key"
    old = MasterKey.read(key_path)
    real_replace = os.replace

    def crash_before_retiring_the_old_key(src: Any, dst: Any) -> None:
        if Path(dst) == key_path:
            raise OSError("simulated power cut")
        real_replace(src, dst)

    with monkeypatch.context() as patch:
        patch.setattr(os, "replace", crash_before_retiring_the_old_key)
        patch.setenv("VAULT_DATABASE_URL", settings.database_url)
        patch.delenv("VAULT_MASTER_KEY", raising=False)
        result = CliRunner().invoke(cli.app, ["keys", "rotate", "--data-dir", str(data_dir)])
    assert isinstance(result.exception, OSError), result.output

    # Every data key is now wrapped by the pending key, the old key file is still in place.
    assert MasterKey.read(key_path) == old
    pending = MasterKey.read(pending_key_path(key_path))
    assert {key_id for _, _, key_id in wrapped_keys(settings.database_url)} == {pending.key_id}
    assert read_plan(settings, plan) == plan

    rotate(data_dir, env)

    assert MasterKey.read(key_path) == pending
    assert not pending_key_path(key_path).exists()
    assert read_plan(settings, plan) == plan
    assert_only_opened_by(settings.database_url, pending, old)


def test_rotate_refuses_a_master_key_from_the_environment(
    data_dir: Path, env: dict[str, str], settings: Settings
) -> None:
    initialise(settings)
    before = (data_dir / "master.key").read_bytes()
    key_env = {**env, "VAULT_MASTER_KEY": MasterKey.read(data_dir / "master.key").to_text()}
    _, err = vault("keys", "rotate", "--data-dir", str(data_dir), env=key_env, ok=False)
    assert "VAULT_MASTER_KEY" in err
    assert (data_dir / "master.key").read_bytes() == before


# -- serve -----------------------------------------------------------------------------------


def test_serve_answers_fhir_requests_401_until_oauth_and_stops_on_sigterm(
    data_dir: Path, env: dict[str, str], tmp_path: Path
) -> None:
    init(data_dir, env)

    def command(port: int) -> list[str]:
        return [*vault_command(), "serve", "--data-dir", str(data_dir), "--port", str(port)]

    with ServerProcess(command, env=env, log_path=tmp_path / "serve.log") as server:
        health = httpx.get(server.url + "/healthz", timeout=10)
        assert health.status_code == 200
        assert health.json() == {"status": "ok"}

        for response in (
            httpx.get(server.url + "/fhir/Patient", timeout=10),
            httpx.post(
                server.url + "/fhir/Patient",
                json=patient_resource(),
                headers={**FHIR_JSON, "x-test-access": "full"},
                timeout=10,
            ),
        ):
            assert response.status_code == 401
            assert response.headers["content-type"].startswith("application/fhir+json")
            assert response.headers["www-authenticate"].startswith("Bearer")
            outcome = response.json()
            assert outcome["resourceType"] == "OperationOutcome"
            assert outcome["issue"][0]["code"] == "login"

        server.signal(signal.SIGTERM)
        # uvicorn shuts down gracefully, then re-raises the signal it caught.
        assert server.wait() in (0, -signal.SIGTERM)
        assert "Application shutdown complete" in server.log()


def test_serve_without_init_says_to_run_vault_init(data_dir: Path, env: dict[str, str]) -> None:
    port = str(free_port())
    _, err = vault("serve", "--data-dir", str(data_dir), "--port", port, env=env, ok=False)
    assert "vault init" in err
    assert "Traceback" not in err


# -- placeholder keys ------------------------------------------------------------------------


@pytest.mark.parametrize("command", ["init", "serve"])
def test_placeholder_master_key_is_refused_before_anything_changes(
    command: str, data_dir: Path, env: dict[str, str], database_url: str
) -> None:
    args = [command, "--data-dir", str(data_dir)]
    if command == "serve":
        data_dir.mkdir(parents=True)
        args += ["--port", str(free_port())]
    _, err = vault(*args, env={**env, "VAULT_MASTER_KEY": "changeme"}, ok=False)
    assert "error: the master key is a placeholder value" in err
    assert "Traceback" not in err
    assert not (data_dir / "master.key").exists()
    assert table_names(database_url) == []
