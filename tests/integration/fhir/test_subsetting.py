"""``_summary`` and ``_elements`` on read and search over real HTTP (R4 search.html, sections
3.1.1.5.8-9), and what happens to a parameter the server does not know (section 3.1.1.4)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.conftest import create
from tests.factories import careplan, goal, observation
from tests.factories import patient as patient_resource
from vault.fhir.subsetting import SUBSETTED

NARRATIVE = {"status": "generated", "div": '<div xmlns="http://www.w3.org/1999/xhtml">6</div>'}


@pytest.fixture
def patient_id(client: httpx.Client) -> str:
    return str(create(client, patient_resource())["id"])


@pytest.fixture
def score(client: httpx.Client, patient_id: str) -> dict[str, Any]:
    return create(
        client,
        observation(patient_id=patient_id, text=NARRATIVE, note=[{"text": "goed gesprek"}]),
    )


def subsetted(resource: dict[str, Any]) -> bool:
    return SUBSETTED in resource.get("meta", {}).get("tag", [])


def read(client: httpx.Client, path: str, **params: str) -> dict[str, Any]:
    response = client.get(path, params=params)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def test_read_with_elements_keeps_those_and_the_mandatory_elements(
    client: httpx.Client, score: dict[str, Any]
) -> None:
    body = read(client, f"/Observation/{score['id']}", _elements="value,subject")
    # status and code are mandatory (min 1): kept although not asked for.
    assert set(body) == {"resourceType", "id", "meta", "status", "code", "valueInteger", "subject"}
    assert body["valueInteger"] == 6
    assert subsetted(body)
    assert body["meta"]["versionId"] == score["meta"]["versionId"]


def test_read_with_summary_true_text_data_and_false(
    client: httpx.Client, score: dict[str, Any]
) -> None:
    path = f"/Observation/{score['id']}"
    summary = read(client, path, _summary="true")
    assert "note" not in summary and "text" not in summary and "category" not in summary
    assert summary["valueInteger"] == 6 and summary["effectiveDateTime"]
    assert subsetted(summary)

    text = read(client, path, _summary="text")
    assert set(text) == {"resourceType", "id", "meta", "text", "status", "code"}
    assert text["text"] == NARRATIVE and subsetted(text)

    data = read(client, path, _summary="data")
    assert "text" not in data and data["note"] == [{"text": "goed gesprek"}] and subsetted(data)

    whole = read(client, path, _summary="false")
    assert whole == score and not subsetted(whole)


def test_a_read_refuses_count_a_bad_mode_an_unknown_element_and_both_at_once(
    client: httpx.Client, score: dict[str, Any]
) -> None:
    path = f"/Observation/{score['id']}"
    for params in (
        {"_summary": "count"},
        {"_summary": "short"},
        {"_elements": "colour"},
        {"_elements": "value", "_summary": "true"},
    ):
        response = client.get(path, params=params)
        assert response.status_code == 400, params
        assert response.json()["resourceType"] == "OperationOutcome"


def test_a_read_with_an_unknown_parameter_is_strict_unless_the_client_prefers_lenient(
    client: httpx.Client, score: dict[str, Any]
) -> None:
    path = f"/Observation/{score['id']}"
    refused = client.get(path, params={"colour": "blue"})
    assert refused.status_code == 400
    assert refused.json()["issue"][0]["expression"] == ["colour"]
    strict = client.get(path, params={"colour": "blue"}, headers={"prefer": "handling=strict"})
    assert strict.status_code == 400
    lenient = client.get(
        path,
        params={"colour": "blue", "_elements": "value"},
        headers={"prefer": "handling=lenient"},
    )
    assert lenient.status_code == 200
    assert "note" not in lenient.json() and subsetted(lenient.json())


def test_a_hidden_or_missing_id_answers_404_whatever_the_subset(client: httpx.Client) -> None:
    response = client.get("/Observation/no-such-score", params={"_elements": "value"})
    assert response.status_code == 404


def test_search_with_elements_cuts_the_matches_but_not_the_includes(
    client: httpx.Client, patient_id: str
) -> None:
    first = create(client, goal(patient_id=patient_id, note=[{"text": "samen"}]))
    create(client, careplan(patient_id=patient_id, goals=[str(first["id"])]))
    bundle = read(
        client,
        "/CarePlan",
        patient=patient_id,
        _elements="goal",
        _include="CarePlan:goal",
    )
    (match,) = [e["resource"] for e in bundle["entry"] if e["search"]["mode"] == "match"]
    (included,) = [e["resource"] for e in bundle["entry"] if e["search"]["mode"] == "include"]
    assert set(match) == {"resourceType", "id", "meta", "goal", "status", "intent", "subject"}
    assert subsetted(match)
    assert included == first and not subsetted(included)
    assert "_elements=goal" in bundle["link"][0]["url"]


def test_search_with_summary_marks_every_entry_and_count_still_counts(
    client: httpx.Client, patient_id: str, score: dict[str, Any]
) -> None:
    create(client, observation(patient_id=patient_id, score=8))
    bundle = read(client, "/Observation", patient=patient_id, _summary="true")
    resources = [e["resource"] for e in bundle["entry"]]
    assert len(resources) == 2 and bundle["total"] == 2
    assert all(subsetted(r) and "category" not in r for r in resources)

    counted = read(client, "/Observation", patient=patient_id, _summary="count")
    assert counted["total"] == 2 and "entry" not in counted


def test_search_with_an_unknown_parameter_is_strict_unless_the_client_prefers_lenient(
    client: httpx.Client, patient_id: str, score: dict[str, Any]
) -> None:
    assert client.get("/Observation", params={"colour": "blue"}).status_code == 400
    lenient = client.get(
        "/Observation",
        params={"patient": patient_id, "colour": "blue"},
        headers={"prefer": "handling=lenient"},
    )
    assert lenient.status_code == 200
    (outcome,) = [e for e in lenient.json()["entry"] if e["search"]["mode"] == "outcome"]
    assert "colour" in outcome["resource"]["issue"][0]["diagnostics"]


def test_the_capability_statement_says_strict_is_the_default(client: httpx.Client) -> None:
    statement = read(client, "/metadata")
    (rest,) = statement["rest"]
    assert "handling=lenient" in rest["documentation"]
    assert "_elements" in rest["documentation"] and "_summary" in rest["documentation"]
