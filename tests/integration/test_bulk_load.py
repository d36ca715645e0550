"""A bulk-loaded vault answers like one written through the API (issue 13).

The same inwoners go into two vaults: one through the repository's write path, one resource
at a time, with the partner's reads logged by the running server; the other through
``vault.app.bulk_load`` with the same access-log records. A partner then reads and searches
both over HTTP and gets the same answers (only ``meta.lastUpdated`` differs: the moment of
writing), the chains are as long, and ``vault audit verify`` finds both intact.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from adapters.sdk.errors import RequestRejected
from tests.factories import consent, goal, observation, organization, patient
from tests.support import fresh_database, vault, vault_env
from vault.app.bulk_load import Inwoner, bulk_load
from vault.audit.log import AuditRecord, verify_chains
from vault.audit.models import AuditChain, AuditChainHead
from vault.kernel.errors import Unprocessable
from vault.store.models import ResourceRow
from vault.testing import RegisteredClient, ThrowawayVault

PARTNER = "MEE Bulk"
SCOPES = ("system/Goal.rs", "system/Observation.rs", "system/Patient.rs")
READS = 3  # partner reads per inwoner, before the comparison


def _inwoners() -> list[dict[str, Any]]:
    """Three inwoners: a Patient, two Goals, an Observation each; Goals shared with PARTNER."""
    people = []
    for n in range(3):
        pid = f"bulk-p{n}"
        goals = [
            goal(patient_id=pid, text=f"Doel {i} van {n}") | {"id": f"bulk-g{n}-{i}"}
            for i in range(2)
        ]
        people.append(
            {
                "patient": patient(id=pid, family=f"Bulk-{n}"),
                "resources": [
                    *goals,
                    observation(patient_id=pid) | {"id": f"bulk-o{n}"},
                    consent(patient_id=pid, actors=["Organization/org-bulk"], classes=("Goal",))
                    | {"id": f"bulk-c{n}"},
                ],
            }
        )
    return people


def _start(directory: Path, url: str) -> ThrowawayVault:
    running = ThrowawayVault(directory, database_url=url, demo=False).start()
    running.write(organization(name=PARTNER) | {"id": "org-bulk"})
    return running


@pytest.fixture
def vaults(tmp_path: Path) -> Iterator[tuple[ThrowawayVault, ThrowawayVault]]:
    (tmp_path / "api").mkdir()
    (tmp_path / "bulk").mkdir()
    with (
        fresh_database(tmp_path / "api") as api_url,
        fresh_database(tmp_path / "bulk") as bulk_url,
    ):
        through_api = _start(tmp_path / "api", api_url)
        try:
            bulk = _start(tmp_path / "bulk", bulk_url)
            try:
                yield through_api, bulk
            finally:
                bulk.stop()
        finally:
            through_api.stop()


def _heads(running: ThrowawayVault) -> dict[str, int]:
    assert running.runtime is not None
    with running.runtime.db.read() as conn:
        return {row.chain: row.seq for row in conn.execute(select(AuditChainHead))}


def _answers(running: ThrowawayVault, partner: RegisteredClient) -> dict[str, Any]:
    """Everything the partner sees of the three inwoners, with the write instant removed."""
    seen: dict[str, Any] = {}
    with running.client(partner) as client:
        for n in range(3):
            for i in range(2):
                body = client.read_json("Goal", f"bulk-g{n}-{i}")
                del body["meta"]["lastUpdated"]
                seen[f"Goal/bulk-g{n}-{i}"] = body
            bundle = client.get_json("Goal", {"patient": f"bulk-p{n}", "_total": "accurate"})
            seen[f"Goal?patient=bulk-p{n}"] = (
                bundle.get("total"),
                sorted(e["resource"]["id"] for e in bundle.get("entry", [])),
            )
            for hidden in (f"Observation/bulk-o{n}", f"Patient/bulk-p{n}"):
                resource_type, resource_id = hidden.split("/")
                with pytest.raises(RequestRejected) as refused:
                    client.read_json(resource_type, resource_id)
                seen[hidden] = refused.value.status
    return seen


def test_bulk_loaded_vault_answers_like_one_written_through_the_api(
    vaults: tuple[ThrowawayVault, ThrowawayVault],
) -> None:
    through_api, bulk = vaults
    people = _inwoners()
    partner_api = through_api.register_client(organization=PARTNER, scopes=SCOPES)
    partner_bulk = bulk.register_client(organization=PARTNER, scopes=SCOPES)

    for person in people:
        through_api.write(person["patient"])
        for body in person["resources"]:
            through_api.write(body)
    with through_api.client(partner_api) as client:
        for n in range(3):
            for _ in range(READS):
                client.read_json("Goal", f"bulk-g{n}-0")

    assert bulk.runtime is not None
    loaded = bulk_load(
        bulk.runtime,
        [
            Inwoner(
                person["patient"],
                person["resources"],
                [
                    AuditRecord(
                        patient_id=person["patient"]["id"],
                        interaction="read",
                        permitted=True,
                        client_id=partner_bulk.client_id,
                        organization="Organization/org-bulk",
                        account_id=None,
                        entities=[f"Goal/bulk-g{n}-0"],
                        recorded=1_790_000_000_000_000 + n,
                    )
                    for _ in range(READS)
                ],
            )
            for n, person in enumerate(people)
        ],
        batch=2,  # two transactions: the second inwoner batch finds the first's rows
    )
    assert (loaded.inwoners, loaded.resources, loaded.access_records) == (3, 15, 3 * READS)

    # The same chains, as long, before anyone reads for the comparison.
    heads_api, heads_bulk = _heads(through_api), _heads(bulk)
    assert {p: heads_api[p] for p in ("bulk-p0", "bulk-p1", "bulk-p2")} == {
        p: READS for p in ("bulk-p0", "bulk-p1", "bulk-p2")
    }
    assert {p: heads_bulk[p] for p in ("bulk-p0", "bulk-p1", "bulk-p2")} == {
        p: READS for p in ("bulk-p0", "bulk-p1", "bulk-p2")
    }
    # ... and the loader's records are stored as AuditEvents, as a vault that ran has them.
    assert bulk.runtime is not None
    with bulk.runtime.db.read() as conn:
        waiting = conn.execute(
            select(func.count()).select_from(AuditChain).where(AuditChain.resource_pk.is_(None))
        ).scalar_one()
    assert waiting == 0

    answers_api = _answers(through_api, partner_api)
    answers_bulk = _answers(bulk, partner_bulk)
    assert answers_bulk == answers_api
    assert answers_bulk["Goal?patient=bulk-p1"] == (2, ["bulk-g1-0", "bulk-g1-1"])
    assert answers_bulk["Observation/bulk-o1"] == 404

    for running in (through_api, bulk):
        assert running.runtime is not None
        assert verify_chains(running.runtime) == []
    out, _ = vault(
        "audit",
        "verify",
        "--data-dir",
        str(bulk.settings.data_dir),
        env=vault_env(bulk.settings.database_url),
    )
    assert "intact" in out


@pytest.fixture
def one_vault(tmp_path: Path) -> Iterator[ThrowawayVault]:
    with fresh_database(tmp_path) as url:
        running = _start(tmp_path, url)
        try:
            yield running
        finally:
            running.stop()


def _count(running: ThrowawayVault, resource_type: str) -> int:
    assert running.runtime is not None
    with running.runtime.db.read() as conn:
        return conn.execute(
            select(func.count())
            .select_from(ResourceRow)
            .where(ResourceRow.resource_type == resource_type)
        ).scalar_one()


def test_a_batch_with_a_resource_of_a_patient_the_vault_does_not_hold_is_refused_whole(
    one_vault: ThrowawayVault,
) -> None:
    """The loader checks every compartment's owner in one statement per batch
    (``Repository.prepare_many``): a Goal of a Patient that is not there, or one that was
    deleted, refuses the batch as a write through the API refuses the Goal (422)."""
    assert one_vault.runtime is not None
    one_vault.write(patient(id="bulk-gone", family="Weg"))
    one_vault.delete("Patient", "bulk-gone")
    fine = goal(patient_id="bulk-q0") | {"id": "bulk-q0-goal"}
    for owner in ("bulk-nobody", "bulk-gone"):
        stray = goal(patient_id=owner) | {"id": f"bulk-stray-{owner}"}
        with pytest.raises(Unprocessable, match="does not hold"):
            bulk_load(
                one_vault.runtime,
                [Inwoner(patient(id="bulk-q0", family="Q"), [fine, stray])],
            )
        # Nothing of the batch stays: not the Patient, not the Goal that was in order.
        assert (_count(one_vault, "Patient"), _count(one_vault, "Goal")) == (1, 0)

    loaded = bulk_load(one_vault.runtime, [Inwoner(patient(id="bulk-q0", family="Q"), [fine])])
    assert (loaded.inwoners, loaded.resources) == (1, 2)
    assert _count(one_vault, "Goal") == 1
