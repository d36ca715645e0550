"""``vault serve --workers 2``: the two processes share the outbox and deliver each event once,
in order, to a real receiver; the test writes from a third process on the same database."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import orjson
import pytest
from joserfc.jwk import ECKey
from sqlalchemy import select

from adapters.sdk import VaultClient
from tests.factories import consent, goal, patient
from tests.integration.notify.conftest import SUBSCRIBER_SCOPES, Receiver, subscribe
from tests.support import ServerProcess, fresh_database, run_vault, vault_command, vault_env
from vault.app.clients import register_client
from vault.audit.runtime import open_runtime
from vault.consent.access import AccessContext
from vault.fhir.repository import Repository
from vault.kernel.config import Settings
from vault.kernel.runtime import Runtime
from vault.oauth.models import OAuthClient

CHANGES = 12


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[ServerProcess, Runtime]]:
    data_dir = tmp_path / "vault"
    with fresh_database(tmp_path) as url:
        env = vault_env(
            url,
            VAULT_NOTIFY_ALLOW_LOCAL_HTTP="1",
            VAULT_NOTIFY_POLL_SECONDS="0.05",
            VAULT_NOTIFY_RETRY_SECONDS="0.05",
        )
        done = run_vault("init", "--data-dir", str(data_dir), env=env)
        assert done.returncode == 0, done.stderr

        def command(port: int) -> list[str]:
            return [
                *vault_command(),
                "serve",
                "--data-dir",
                str(data_dir),
                "--port",
                str(port),
                "--workers",
                "2",
            ]

        runtime = open_runtime(Settings(data_dir=data_dir, database_url=url))
        try:
            with ServerProcess(command, env=env, log_path=tmp_path / "serve.log") as server:
                yield server, runtime
        finally:
            runtime.close()


def test_two_workers_deliver_every_event_once_and_in_order(
    served: tuple[ServerProcess, Runtime], receiver: Receiver
) -> None:
    server, runtime = served
    operator = Repository(runtime, AccessContext.full("test"))

    def write(resource: dict[str, object]) -> dict[str, object]:
        with runtime.db.write() as conn:
            if "id" in resource:
                stored, _ = operator.update(
                    conn, str(resource["resourceType"]), str(resource["id"]), resource
                )
            else:
                stored, _ = operator.create(conn, str(resource["resourceType"]), resource)
        body: dict[str, object] = orjson.loads(stored.body or b"{}")
        return body

    key = ECKey.generate_key("P-384", parameters={"alg": "ES384", "use": "sig"})
    organization = f"Partner {uuid.uuid4().hex[:8]}"
    client_id = register_client(
        runtime,
        name=f"{organization} systeem",
        organization_name=organization,
        scopes=list(SUBSCRIBER_SCOPES),
        jwks={"keys": [key.as_dict(private=False) | {"kid": key.thumbprint()}]},
    )
    inwoner = str(write(patient())["id"])
    mine = write(goal(patient_id=inwoner))
    with runtime.db.read() as conn:
        organization_id = conn.scalar(
            select(OAuthClient.organization_id).where(OAuthClient.client_id == client_id)
        )
    actor = f"Organization/{organization_id}"
    write(consent(patient_id=inwoner, actors=[actor], classes=("Goal",)))
    with VaultClient(server.url, client_id, key, scopes=SUBSCRIBER_SCOPES) as client:
        token = client.access_token()
    with httpx.Client(
        base_url=server.url + "/fhir", headers={"authorization": f"Bearer {token}"}, timeout=30
    ) as http:
        subscribe(http, receiver.url, types=("Goal",))

    for number in range(CHANGES):
        write({**mine, "description": {"text": f"Versie {number}"}})

    numbers = [receiver.next().event_number for _ in range(CHANGES)]
    assert numbers == list(range(1, CHANGES + 1))
    write({**mine, "description": {"text": "Laatste"}})
    # A duplicate of any earlier event would have arrived before this one.
    assert receiver.next().event_number == CHANGES + 1
