"""More than one process on one database (issue 13): ``vault serve --workers 2`` and a second
``vault serve`` beside it. A write-and-read storm goes through both with real tokens, a grant
revoked through one is refused through the other at once, every acknowledged write is still
there afterwards, and ``vault audit verify`` finds every per-inwoner chain linear although
writers in different processes appended to it at the same time."""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import orjson
import pytest
from sqlalchemy import select

from tests.conftest import FHIR_JSON
from tests.factories import consent, goal, patient
from tests.support import ServerProcess, fresh_database, run_vault, vault_command, vault_env
from tests.support.smart import inwoner_account, register_app, register_backend
from vault.audit.runtime import open_runtime
from vault.consent.access import AccessContext
from vault.fhir.repository import Repository
from vault.kernel.config import Settings
from vault.kernel.runtime import Runtime
from vault.oauth.models import OAuthClient

INWONERS = 2
WRITERS = 4  # threads, two per inwoner: writes of one inwoner's chain come from both processes
WRITES = 10  # per thread: 40 acknowledged creates and 40 cross-process reads in all
APP_SCOPES = ["launch/patient", "openid", "fhirUser", "patient/*.rs", "patient/Consent.cruds",
              "patient/Goal.cruds"]  # fmt: skip


@pytest.fixture
def two_servers(tmp_path: Path) -> Iterator[tuple[ServerProcess, ServerProcess, Runtime, str]]:
    data_dir = tmp_path / "vault"
    with fresh_database(tmp_path) as url:
        env = vault_env(url)
        done = run_vault("init", "--data-dir", str(data_dir), env=env)
        assert done.returncode == 0, done.stderr

        def serve(*extra: str) -> ServerProcess:
            def command(port: int) -> list[str]:
                return [*vault_command(), "serve", "--data-dir", str(data_dir),
                        "--port", str(port), *extra]  # fmt: skip

            # A generous start: a loaded CI machine imports slowly; nothing here is timed.
            return ServerProcess(
                command, env=env, log_path=tmp_path / f"serve{len(extra)}.log", start_timeout=120
            )

        runtime = open_runtime(Settings(data_dir=data_dir, database_url=url))
        try:
            with serve("--workers", "2") as first, serve() as second:
                yield first, second, runtime, str(data_dir)
        finally:
            runtime.close()
        verified = run_vault("audit", "verify", "--data-dir", str(data_dir), env=env)
        assert verified.returncode == 0, verified.stdout + verified.stderr


def test_two_processes_storm_revoke_and_keep_every_write(
    two_servers: tuple[ServerProcess, ServerProcess, Runtime, str],
) -> None:
    first, second, runtime, _ = two_servers
    servers = (first, second)
    operator = Repository(runtime, AccessContext.full("test"))
    with runtime.db.write() as conn:
        made = [operator.create(conn, "Patient", patient())[0] for _ in range(INWONERS)]
    inwoners = [str(orjson.loads(stored.body or b"{}")["id"]) for stored in made]
    partner = register_backend(runtime, first.url, scopes=["system/Goal.rs"])
    with runtime.db.read() as conn:
        organization = conn.scalar(
            select(OAuthClient.organization_id).where(OAuthClient.client_id == partner.client_id)
        )
    actor = f"Organization/{organization}"

    apps: list[str] = []  # the inwoner's own app token, per inwoner
    consents: list[dict[str, object]] = []
    with httpx.Client(timeout=60, follow_redirects=False) as http:
        partner_token = partner.token(http)
        for inwoner in inwoners:
            app = register_app(runtime, first.url, scopes=APP_SCOPES)
            username, password = inwoner_account(runtime, inwoner)
            tokens = app.full_flow(http, username=username, password=password)
            apps.append(str(tokens["access_token"]))
            # The inwoner shares her Goals with the partner, through the second process.
            answer = http.post(
                f"{second.url}/fhir/Consent",
                json=consent(patient_id=inwoner, actors=[actor], classes=("Goal",)),
                headers={**FHIR_JSON, "authorization": f"Bearer {apps[-1]}"},
            )
            assert answer.status_code == 201, answer.text
            consents.append(answer.json())

    def storm(worker: int) -> list[tuple[int, str, str]]:
        which = worker % INWONERS
        acknowledged: list[tuple[int, str, str]] = []
        with httpx.Client(timeout=60) as http:
            for number in range(WRITES):
                writer, reader = servers[(worker + number) % 2], servers[(worker + number + 1) % 2]
                text = f"Doel {worker}-{number}"
                body = goal(patient_id=inwoners[which]) | {"description": {"text": text}}
                answer = http.post(
                    f"{writer.url}/fhir/Goal",
                    json=body,
                    headers={**FHIR_JSON, "authorization": f"Bearer {apps[which]}"},
                )
                assert answer.status_code == 201, answer.text
                goal_id = str(answer.json()["id"])
                acknowledged.append((which, goal_id, text))
                # Read-your-write across processes, by the partner the inwoner shared with.
                seen = http.get(
                    f"{reader.url}/fhir/Goal/{goal_id}",
                    headers={"authorization": f"Bearer {partner_token}"},
                )
                assert seen.status_code == 200, seen.text
                assert seen.json()["description"]["text"] == text
        return acknowledged

    with ThreadPoolExecutor(WRITERS) as pool:
        written = [entry for batch in pool.map(storm, range(WRITERS)) for entry in batch]
    assert len(written) == WRITERS * WRITES

    with httpx.Client(timeout=60) as http:
        # The first inwoner stops sharing, through the first process ...
        revoked = consents[0] | {"status": "inactive"}
        answer = http.put(
            f"{first.url}/fhir/Consent/{revoked['id']}",
            json=revoked,
            headers={**FHIR_JSON, "authorization": f"Bearer {apps[0]}"},
        )
        assert answer.status_code == 200, answer.text
        # ... and the very next partner read through the second process is refused, as missing.
        mine = next(goal_id for which, goal_id, _ in written if which == 0)
        theirs = next(goal_id for which, goal_id, _ in written if which == 1)
        for server in servers:
            refused = http.get(
                f"{server.url}/fhir/Goal/{mine}",
                headers={"authorization": f"Bearer {partner_token}"},
            )
            assert refused.status_code == 404, refused.text
            still = http.get(
                f"{server.url}/fhir/Goal/{theirs}",
                headers={"authorization": f"Bearer {partner_token}"},
            )
            assert still.status_code == 200, still.text

        # No acknowledged write was lost: every 201 reads back, as written, through both.
        for index, (which, goal_id, text) in enumerate(written):
            server = servers[index % 2]
            answer = http.get(
                f"{server.url}/fhir/Goal/{goal_id}",
                headers={"authorization": f"Bearer {apps[which]}"},
            )
            assert answer.status_code == 200, answer.text
            assert answer.json()["description"]["text"] == text


def _workers_of(parent: int) -> list[int]:
    children = Path(f"/proc/{parent}/task/{parent}/children").read_text().split()
    found = []
    for child in children:
        command = Path(f"/proc/{child}/cmdline").read_bytes()
        if b"resource_tracker" not in command:
            found.append(int(child))
    return found


@pytest.mark.skipif(not Path("/proc/self/task").exists(), reason="reads worker ids from /proc")
def test_a_worker_starved_for_seconds_is_not_killed(tmp_path: Path) -> None:
    """A busy machine can keep a worker off the CPU for seconds; uvicorn's default answered
    that by killing it (and its requests in flight, and again while it imported: the
    test_workers start failures under load). SIGSTOP is that starvation, made sure."""
    data_dir = tmp_path / "vault"
    with fresh_database(tmp_path) as url:
        env = vault_env(url)
        done = run_vault("init", "--data-dir", str(data_dir), env=env)
        assert done.returncode == 0, done.stderr

        def command(port: int) -> list[str]:
            return [*vault_command(), "serve", "--data-dir", str(data_dir), "--port", str(port),
                    "--workers", "2"]  # fmt: skip

        log = tmp_path / "serve.log"
        with ServerProcess(command, env=env, log_path=log, start_timeout=120) as served:
            assert served.process is not None
            workers = _workers_of(served.process.pid)
            assert len(workers) == 2
            os.kill(workers[0], signal.SIGSTOP)
            try:
                # Longer than uvicorn's 5 s default health check, well inside the vault's 60 s.
                time.sleep(8)
            finally:
                with contextlib.suppress(ProcessLookupError):  # the old code had killed it
                    os.kill(workers[0], signal.SIGCONT)
            assert httpx.get(served.url + "/healthz", timeout=30).status_code == 200
            assert sorted(_workers_of(served.process.pid)) == sorted(workers)
