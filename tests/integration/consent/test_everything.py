"""Patient/$everything goes through the same access decision as every other read."""

from __future__ import annotations

import httpx
from sqlalchemy import select

from tests.conftest import ServerThread, create
from tests.factories import careplan, consent, goal, observation
from tests.factories import patient as patient_resource
from tests.support.smart import register_backend
from vault.kernel.runtime import Runtime
from vault.oauth.models import OAuthClient


def _organization_of(runtime: Runtime, client_id: str) -> str:
    with runtime.db.read() as conn:
        org = conn.execute(
            select(OAuthClient.organization_id).where(OAuthClient.client_id == client_id)
        ).scalar_one()
    return f"Organization/{org}"


def test_everything_returns_only_what_the_consent_grants(
    runtime: Runtime, vault: ServerThread, client: httpx.Client
) -> None:
    pid = str(create(client, patient_resource())["id"])
    goals = {str(create(client, goal(patient_id=pid))["id"]) for _ in range(2)}
    create(client, careplan(patient_id=pid))
    create(client, observation(patient_id=pid))
    partner = register_backend(
        runtime,
        vault.url,
        organization="Everything Test Org",
        scopes=[
            "system/Goal.rs",
            "system/CarePlan.rs",
            "system/Observation.rs",
            "system/Patient.rs",
        ],
    )
    with httpx.Client(timeout=30) as http:
        headers = {"authorization": f"Bearer {partner.token(http)}"}
        url = f"{vault.url}/fhir/Patient/{pid}/$everything"
        before = http.get(url, headers=headers)
        missing = http.get(f"{vault.url}/fhir/Patient/does-not-exist/$everything", headers=headers)
        assert before.status_code == missing.status_code == 404
        assert before.json()["issue"][0]["code"] == missing.json()["issue"][0]["code"]
        create(
            client,
            consent(
                patient_id=pid,
                actors=[_organization_of(runtime, partner.client_id)],
                classes=("Goal",),
            ),
        )
        after = http.get(url, headers=headers)
        assert after.status_code == 200
        bundle = after.json()
        assert bundle["total"] == 2
        assert {e["resource"]["id"] for e in bundle["entry"]} == goals
        assert {e["resource"]["resourceType"] for e in bundle["entry"]} == {"Goal"}


def test_everything_for_the_operator_holds_the_whole_compartment(client: httpx.Client) -> None:
    pid = str(create(client, patient_resource())["id"])
    create(client, goal(patient_id=pid))
    create(client, careplan(patient_id=pid))
    response = client.get(f"/Patient/{pid}/$everything")
    assert response.status_code == 200
    kinds = sorted(e["resource"]["resourceType"] for e in response.json()["entry"])
    assert kinds == ["CarePlan", "Goal", "Patient"]
