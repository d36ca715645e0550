"""A search too large for one SQL statement is refused with a 400 that names the limit
(issue 12 B8), on SQLite and PostgreSQL alike, instead of failing inside the database."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.conftest import create
from tests.factories import goal
from tests.factories import patient as patient_resource
from vault.fhir.search import MAX_ALTERNATIVES, MAX_INCLUDES, MAX_PARAMETERS, MAX_VALUES


def _ids(n: int) -> str:
    return ",".join(f"ghost-{i}" for i in range(n))


def _too_costly(response: httpx.Response, limit: int) -> None:
    assert response.status_code == 400, response.text
    outcome: dict[str, Any] = response.json()
    assert outcome["resourceType"] == "OperationOutcome"
    assert outcome["issue"][0]["code"] == "too-costly"
    assert f"at most {limit} " in outcome["issue"][0]["diagnostics"]


@pytest.mark.parametrize(
    ("path", "params", "limit"),
    [
        ("/Goal", [("patient", _ids(1000))], MAX_ALTERNATIVES),
        ("/Goal", [("lifecycle-status", _ids(1000))], MAX_ALTERNATIVES),
        ("/Goal", [("_id", _ids(1000))], MAX_ALTERNATIVES),
        ("/Observation", [("date", ",".join(["ge2024-01-01"] * 1000))], MAX_ALTERNATIVES),
        ("/Goal", [("patient", _ids(MAX_ALTERNATIVES))] * 5, MAX_VALUES),
        ("/Goal", [("lifecycle-status", "active")] * (MAX_PARAMETERS + 1), MAX_PARAMETERS),
        ("/Patient", [("_revinclude", "Goal:patient")] * (MAX_INCLUDES + 1), MAX_INCLUDES),
    ],
    ids=["or-reference", "or-token", "id-list", "or-date", "values", "parameters", "includes"],
)
def test_a_search_over_a_limit_is_refused_with_the_limit(
    client: httpx.Client, path: str, params: list[tuple[str, str]], limit: int
) -> None:
    _too_costly(client.get(path, params=params), limit)
    # Lenient handling ignores unknown parameters, never the size of a search.
    _too_costly(client.get(path, params=params, headers={"prefer": "handling=lenient"}), limit)
    form = httpx.QueryParams(params)
    _too_costly(
        client.post(
            f"{path}/_search",
            content=str(form),
            headers={"content-type": "application/x-www-form-urlencoded"},
        ),
        limit,
    )


def test_a_search_at_the_limits_is_answered(client: httpx.Client) -> None:
    pid = str(create(client, patient_resource())["id"])
    mine = create(client, goal(patient_id=pid))
    alternatives = ",".join([pid, *(f"ghost-{i}" for i in range(MAX_ALTERNATIVES - 1))])
    response = client.get("/Goal", params={"patient": alternatives})
    assert response.status_code == 200, response.text
    assert [e["resource"]["id"] for e in response.json()["entry"]] == [mine["id"]]


def test_the_capability_statement_states_the_limits(client: httpx.Client) -> None:
    text = client.get("/metadata").json()["rest"][0]["documentation"]
    assert f"at most {MAX_PARAMETERS} parameters" in text
    assert f"{MAX_ALTERNATIVES} comma-separated values per parameter" in text
    assert f"{MAX_INCLUDES} _include/_revinclude" in text
