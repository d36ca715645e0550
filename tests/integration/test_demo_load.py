"""`vault demo`: the demo family loads into a real database, readable and idempotent."""

from __future__ import annotations

import httpx

from tests.conftest import ServerThread
from vault.app.demo import DEMO_PATIENT_IDS, demo_resources, load_demo
from vault.kernel.runtime import Runtime


def test_demo_loads_once_and_a_second_run_writes_nothing(
    runtime: Runtime, server: ServerThread, client: httpx.Client
) -> None:
    load_demo(runtime)
    assert load_demo(runtime) == 0
    for resource in demo_resources():
        read = client.get(f"/{resource['resourceType']}/{resource['id']}")
        assert read.status_code == 200
        assert read.json()["meta"]["versionId"] == "1"
    for patient_id in DEMO_PATIENT_IDS:
        plans = client.get(
            "/CarePlan", params={"patient": patient_id, "_include": "CarePlan:goal"}
        ).json()
        assert plans["total"] == 1
        included = [e for e in plans["entry"] if e["search"]["mode"] == "include"]
        assert included and all(e["resource"]["resourceType"] == "Goal" for e in included)
