"""Bulk Data export against a real vault: only granted data, only for the client that asked."""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
import orjson
import pytest
from sqlalchemy import insert, select, update

from adapters.sdk import VaultClient
from tests.factories import careplan, goal, patient
from tests.support.partners import share
from vault.consent.access import AccessContext
from vault.fhir import export
from vault.fhir.export_models import ExportFile, ExportJob
from vault.fhir.repository import Repository
from vault.kernel.runtime import Runtime, now_micros
from vault.oauth.clients import is_registered
from vault.oauth.models import OAuthClient
from vault.testing import RegisteredClient, ThrowawayVault

ASYNC = {"prefer": "respond-async", "accept": "application/fhir+json"}


@pytest.fixture
def client(throwaway_vault: ThrowawayVault, partner: RegisteredClient) -> Iterator[VaultClient]:
    with throwaway_vault.client(partner) as made:
        yield made


def bearer(client: VaultClient) -> dict[str, str]:
    return {"authorization": f"Bearer {client.access_token()}"}


def finished(http: httpx.Client, status_url: str, headers: dict[str, str]) -> httpx.Response:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        response = http.get(status_url, headers=headers)
        if response.status_code != 202:
            return response
        assert response.headers["retry-after"].isdigit()
        time.sleep(0.05)
    raise AssertionError("the export did not finish")


def test_export_contains_only_granted_data(
    throwaway_vault: ThrowawayVault, partner: RegisteredClient, client: VaultClient
) -> None:
    vault = throwaway_vault
    sharing = vault.write(patient())["id"]
    private = vault.write(patient())["id"]
    granted = {vault.write(goal(patient_id=sharing))["id"] for _ in range(3)}
    vault.write(goal(patient_id=private))
    vault.write(careplan(patient_id=sharing))  # not in the Consent: Goals only
    share(vault, sharing, partner, "Goal")

    exported = list(client.bulk_export(types=["Goal", "CarePlan"]))
    assert {(r.get_resource_type(), r.id) for r in exported} == {("Goal", g) for g in granted}

    patient_level = list(client.bulk_export(level="patient", types=["Goal"]))
    assert {r.id for r in patient_level} == granted


def test_export_since_returns_only_later_changes(
    throwaway_vault: ThrowawayVault, partner: RegisteredClient, client: VaultClient, inwoner: str
) -> None:
    old = throwaway_vault.write(goal(patient_id=inwoner))
    share(throwaway_vault, inwoner, partner, "Goal")
    since = old["meta"]["lastUpdated"]
    time.sleep(0.01)
    new = throwaway_vault.write(goal(patient_id=inwoner, text="Later"))
    assert [r.id for r in client.bulk_export(types=["Goal"], since=since)] == [new["id"]]


def test_export_is_in_the_inwoners_access_log(
    throwaway_vault: ThrowawayVault, partner: RegisteredClient, client: VaultClient, inwoner: str
) -> None:
    shared = throwaway_vault.write(goal(patient_id=inwoner))
    share(throwaway_vault, inwoner, partner, "Goal")
    list(client.bulk_export(types=["Goal"]))
    runtime = throwaway_vault.runtime
    assert runtime is not None
    repo = Repository(runtime, AccessContext.full("test"))
    runtime.audit.settle_all()  # a store-level search: the log's waiting records first
    with runtime.db.read() as conn:
        query = repo.parse("AuditEvent", [("patient", inwoner), ("_count", "100")], lenient=False)
        events = [orjson.loads(s.body or b"{}") for s in repo.search(conn, query).matches]
    exports = [e for e in events if any(s.get("code") == "export" for s in e.get("subtype", []))]
    assert exports, "no AuditEvent with interaction export"
    assert any(
        entity.get("what", {}).get("reference") == f"Goal/{shared['id']}"
        for event in exports
        for entity in event.get("entity", [])
    )
    assert all(e["agent"][0]["altId"] == partner.client_id for e in exports)


def test_only_the_same_client_can_poll_and_download(
    throwaway_vault: ThrowawayVault, partner: RegisteredClient, client: VaultClient, inwoner: str
) -> None:
    throwaway_vault.write(goal(patient_id=inwoner))
    share(throwaway_vault, inwoner, partner, "Goal")
    other_partner = throwaway_vault.register_client(organization=partner.organization)
    with throwaway_vault.client(other_partner) as other, httpx.Client(timeout=30) as http:
        kick = http.get(
            f"{client.fhir_base}/$export", params={"_type": "Goal"}, headers=ASYNC | bearer(client)
        )
        assert kick.status_code == 202, kick.text
        status_url = kick.headers["content-location"]
        done = finished(http, status_url, bearer(client))
        assert done.status_code == 200, done.text
        manifest = done.json()
        assert manifest["requiresAccessToken"] is True
        [output] = manifest["output"]
        assert output["type"] == "Goal" and output["count"] == 1

        own = http.get(output["url"], headers=bearer(client))
        assert own.status_code == 200
        assert own.headers["content-type"].startswith("application/fhir+ndjson")
        assert orjson.loads(own.text.splitlines()[0])["resourceType"] == "Goal"

        # Same organisation, another client: still not its export.
        assert http.get(status_url, headers=bearer(other)).status_code == 404
        assert http.get(output["url"], headers=bearer(other)).status_code == 404
        assert http.delete(status_url, headers=bearer(other)).status_code == 404
        assert http.get(output["url"]).status_code == 401

        assert http.delete(status_url, headers=bearer(client)).status_code == 202
        assert http.get(status_url, headers=bearer(client)).status_code == 404
        assert http.get(output["url"], headers=bearer(client)).status_code == 404


def test_files_are_sealed_and_deleted_after_expiry(
    throwaway_vault: ThrowawayVault, partner: RegisteredClient, client: VaultClient, inwoner: str
) -> None:
    text = f"Geheim doel {inwoner}"
    throwaway_vault.write(goal(patient_id=inwoner, text=text))
    share(throwaway_vault, inwoner, partner, "Goal")
    found = client.bulk_export_manifest(types=["Goal"])
    job_id = found.status_url.rsplit("/", 1)[1]
    runtime = throwaway_vault.runtime
    assert runtime is not None
    with runtime.db.write() as conn:
        bodies = list(conn.scalars(select(ExportFile.body).where(ExportFile.job_id == job_id)))
        assert bodies and all(text.encode() not in body for body in bodies)
        conn.execute(update(ExportJob).where(ExportJob.id == job_id).values(expires_at=1))
    with httpx.Client(timeout=30) as http:
        assert http.get(found.status_url, headers=bearer(client)).status_code == 404
    client.bulk_export_manifest(types=["Goal"])  # any new kick-off purges expired jobs
    with runtime.db.read() as conn:
        assert conn.scalar(select(ExportJob.id).where(ExportJob.id == job_id)) is None
        assert conn.scalar(select(ExportFile.pk).where(ExportFile.job_id == job_id)) is None


def test_kick_off_rules(throwaway_vault: ThrowawayVault, client: VaultClient) -> None:
    base = client.fhir_base
    with httpx.Client(timeout=30) as http:
        no_prefer = http.get(f"{base}/$export", headers=bearer(client))
        assert no_prefer.status_code == 400
        wrong_format = http.get(
            f"{base}/$export", params={"_outputFormat": "text/csv"}, headers=ASYNC | bearer(client)
        )
        assert wrong_format.status_code == 400
        unknown = http.get(
            f"{base}/$export", params={"_type": "Nonsense"}, headers=ASYNC | bearer(client)
        )
        assert unknown.status_code == 400
        no_scope = http.get(
            f"{base}/$export", params={"_type": "Observation"}, headers=ASYNC | bearer(client)
        )
        assert no_scope.status_code == 403
        group = http.get(f"{base}/Group/g1/$export", headers=ASYNC | bearer(client))
        assert group.status_code == 404
        assert http.get(f"{base}/$export", headers=ASYNC).status_code == 401
        statement = http.get(f"{base}/metadata").json()
        assert statement["rest"][0]["operation"][0]["name"] == "export"
        patient_entry = next(r for r in statement["rest"][0]["resource"] if r["type"] == "Patient")
        assert patient_entry["operation"][0]["name"] == "export"
        # Group is a stored type (the family plan, docs/family.md), but Group-level export
        # is not offered: the statement lists no export operation for it.
        group_entry = next(r for r in statement["rest"][0]["resource"] if r["type"] == "Group")
        assert not any(op["name"] == "export" for op in group_entry.get("operation", []))


# -- a worker that dies does not strand its export ------------------------------------------


def _strand(runtime: Runtime, job_id: str, *, types_done: int) -> None:
    """Make a finished job look like one whose worker died after ``types_done`` types."""
    with runtime.db.write() as conn:
        conn.execute(
            update(ExportJob)
            .where(ExportJob.id == job_id)
            .values(
                status="running",
                types_done=types_done,
                finished_at=None,
                expires_at=now_micros() + 3_600_000_000,
                lease_owner="a-worker-that-died",
                lease_expires_at=1,
            )
        )


def _files(runtime: Runtime, job_id: str) -> list[tuple[int, str, int]]:
    with runtime.db.read() as conn:
        rows = conn.execute(
            select(ExportFile.pk, ExportFile.resource_type, ExportFile.count)
            .where(ExportFile.job_id == job_id)
            .order_by(ExportFile.pk)
        ).all()
    return [(int(pk), str(kind), int(count)) for pk, kind, count in rows]


def test_a_poll_takes_over_a_job_whose_worker_died_and_it_completes_once(
    throwaway_vault: ThrowawayVault, partner: RegisteredClient, client: VaultClient, inwoner: str
) -> None:
    vault = throwaway_vault
    runtime = vault.runtime
    assert runtime is not None
    goals = {vault.write(goal(patient_id=inwoner))["id"] for _ in range(3)}
    plans = {vault.write(careplan(patient_id=inwoner))["id"] for _ in range(2)}
    share(vault, inwoner, partner, "Goal", "CarePlan")
    found = client.bulk_export_manifest(types=["Goal", "CarePlan"])
    job_id = found.status_url.rsplit("/", 1)[1]
    [goal_file, plan_file] = _files(runtime, job_id)
    # The dead worker had finished Goal and written part of CarePlan: a half file remains.
    with runtime.db.write() as conn:
        body = conn.scalar(select(ExportFile.body).where(ExportFile.pk == plan_file[0]))
        conn.execute(
            insert(ExportFile).values(job_id=job_id, resource_type="CarePlan", count=1, body=body)
        )
    _strand(runtime, job_id, types_done=1)

    with httpx.Client(timeout=30) as http:
        done = finished(http, found.status_url, bearer(client))
    assert done.status_code == 200, done.text
    files = _files(runtime, job_id)
    assert files[0] == goal_file  # the finished type is not exported again
    assert [(kind, count) for _, kind, count in files] == [("Goal", 3), ("CarePlan", 2)]
    exported = {
        (r["resourceType"], r["id"])
        for o in done.json()["output"]
        for r in client.bulk_download(o["url"])
    }
    assert exported == {("Goal", g) for g in goals} | {("CarePlan", p) for p in plans}
    with runtime.db.read() as conn:
        job = conn.execute(select(ExportJob.__table__).where(ExportJob.id == job_id)).one()
    assert job.status == "complete"
    assert job.lease_owner == export.worker_id()


def test_stranded_jobs_are_taken_over_at_start_up_but_a_live_lease_is_left_alone(
    throwaway_vault: ThrowawayVault, partner: RegisteredClient, client: VaultClient, inwoner: str
) -> None:
    vault = throwaway_vault
    runtime = vault.runtime
    assert runtime is not None
    vault.write(goal(patient_id=inwoner))
    share(vault, inwoner, partner, "Goal")
    stranded = client.bulk_export_manifest(types=["Goal"]).status_url.rsplit("/", 1)[1]
    alive = client.bulk_export_manifest(types=["Goal"]).status_url.rsplit("/", 1)[1]
    _strand(runtime, stranded, types_done=0)
    _strand(runtime, alive, types_done=0)
    with runtime.db.write() as conn:  # another worker is still busy with this one
        conn.execute(
            update(ExportJob)
            .where(ExportJob.id == alive)
            .values(lease_owner="a-busy-worker", lease_expires_at=now_micros() + 3_600_000_000)
        )

    # What the app's lifespan runs when a worker starts; other tests' jobs are complete.
    assert export.reclaim_stranded(runtime, client_registered=is_registered) == 1

    with httpx.Client(timeout=30) as http:
        done = finished(http, f"{client.fhir_base}/$export-status/{stranded}", bearer(client))
        assert done.status_code == 200, done.text
        assert [o["count"] for o in done.json()["output"]] == [1]
        busy = http.get(f"{client.fhir_base}/$export-status/{alive}", headers=bearer(client))
        assert busy.status_code == 202  # not taken from a worker that still renews its lease
    assert export.reclaim(runtime, alive, client_registered=is_registered) is False


def test_a_stranded_job_of_a_removed_client_ends_in_an_error_not_a_restart(
    throwaway_vault: ThrowawayVault, partner: RegisteredClient, client: VaultClient, inwoner: str
) -> None:
    runtime = throwaway_vault.runtime
    assert runtime is not None
    throwaway_vault.write(goal(patient_id=inwoner))
    share(throwaway_vault, inwoner, partner, "Goal")
    job_id = client.bulk_export_manifest(types=["Goal"]).status_url.rsplit("/", 1)[1]
    _strand(runtime, job_id, types_done=0)
    with runtime.db.write() as conn:  # as `vault client remove` does
        conn.execute(
            update(OAuthClient)
            .where(OAuthClient.client_id == partner.client_id)
            .values(removed_at=now_micros())
        )

    assert export.reclaim(runtime, job_id, client_registered=is_registered) is False
    with runtime.db.read() as conn:
        job = conn.execute(select(ExportJob.__table__).where(ExportJob.id == job_id)).one()
    assert (job.status, job.error) == ("error", "ClientRemoved")
