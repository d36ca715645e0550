"""Every error is an OperationOutcome with the right status, and bad input changes nothing."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import httpx
import pytest

from tests.conftest import FHIR_JSON, create
from tests.factories import goal, new_id
from tests.factories import patient as patient_resource

ONE_MIB = 1024 * 1024


def assert_outcome(response: httpx.Response, status: int) -> dict[str, object]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/fhir+json")
    body: dict[str, object] = response.json()
    assert body["resourceType"] == "OperationOutcome"
    issues = body["issue"]
    assert isinstance(issues, list) and issues
    assert all(issue["severity"] in ("error", "fatal") for issue in issues)
    assert all(issue.get("code") for issue in issues)
    assert "Traceback" not in response.text
    assert 'File "' not in response.text
    return body


def expressions(body: dict[str, object]) -> list[str]:
    issues = body["issue"]
    assert isinstance(issues, list)
    return [e for issue in issues for e in issue.get("expression", [])]


@pytest.fixture
def pid(client: httpx.Client) -> str:
    return str(create(client, patient_resource())["id"])


def count_goals(client: httpx.Client, pid: str) -> int:
    response = client.get("/Goal", params={"patient": pid, "_summary": "count"})
    assert response.status_code == 200
    total: int = response.json()["total"]
    return total


# -- bad bodies ---------------------------------------------------------------------------


@pytest.mark.parametrize("body", [b"{", b"", b"not json", b'{"resourceType": "Goal",}', b"\xff"])
def test_invalid_json_is_400(client: httpx.Client, body: bytes) -> None:
    assert_outcome(client.post("/Goal", content=body, headers=FHIR_JSON), 400)


@pytest.mark.parametrize("body", [b"[]", b"42", b'"Goal"', b"null"])
def test_json_that_is_not_an_object_is_400(client: httpx.Client, body: bytes) -> None:
    assert_outcome(client.post("/Goal", content=body, headers=FHIR_JSON), 400)


def test_invalid_resource_is_400_naming_the_element(client: httpx.Client, pid: str) -> None:
    bad = goal(patient_id=pid, description={"text": 12})
    body = assert_outcome(client.post("/Goal", json=bad, headers=FHIR_JSON), 400)
    assert expressions(body) == ["Goal.description.text"]


def test_unknown_element_is_400_naming_it(client: httpx.Client, pid: str) -> None:
    body = assert_outcome(
        client.post("/Goal", json=goal(patient_id=pid, mood="blij"), headers=FHIR_JSON), 400
    )
    assert expressions(body) == ["Goal.mood"]


def test_code_outside_the_required_value_set_is_400(client: httpx.Client, pid: str) -> None:
    body = assert_outcome(
        client.post("/Goal", json=goal(patient_id=pid, status="bezig"), headers=FHIR_JSON), 400
    )
    assert expressions(body) == ["Goal.lifecycleStatus"]


def test_body_of_another_type_is_400(client: httpx.Client) -> None:
    body = assert_outcome(client.post("/Goal", json=patient_resource(), headers=FHIR_JSON), 400)
    assert expressions(body) == ["resourceType"]


def test_body_over_the_limit_is_413(client: httpx.Client) -> None:
    response = client.post("/Patient", content=b" " * (ONE_MIB + 1), headers=FHIR_JSON)
    assert_outcome(response, 413)


def test_streamed_body_over_the_limit_is_413(client: httpx.Client) -> None:
    def chunks() -> Iterator[bytes]:
        for _ in range(16):
            yield b" " * (64 * 1024)
        yield b" "

    response = client.post("/Patient", content=chunks(), headers=FHIR_JSON)
    assert "content-length" not in response.request.headers
    assert_outcome(response, 413)


def test_body_at_the_limit_is_accepted(client: httpx.Client) -> None:
    resource = httpx.Request("POST", "/", json=patient_resource()).content
    padded = resource + b" " * (ONE_MIB - len(resource))
    assert len(padded) == ONE_MIB
    assert client.post("/Patient", content=padded, headers=FHIR_JSON).status_code == 201


@pytest.mark.parametrize(
    "content_type", ["text/plain", "application/xml", "application/fhir+xml", "multipart/form-data"]
)
def test_wrong_content_type_is_415(client: httpx.Client, content_type: str) -> None:
    content = httpx.Request("POST", "/", json=patient_resource()).content
    response = client.post("/Patient", content=content, headers={"content-type": content_type})
    assert_outcome(response, 415)
    pid = new_id("p")
    response = client.put(
        f"/Patient/{pid}", content=content, headers={"content-type": content_type}
    )
    assert_outcome(response, 415)
    assert client.get(f"/Patient/{pid}").status_code == 404


def test_json_content_types_with_parameters_are_accepted(client: httpx.Client) -> None:
    response = client.post(
        "/Patient",
        json=patient_resource(),
        headers={"content-type": "application/fhir+json; charset=utf-8"},
    )
    assert response.status_code == 201


# -- formats -----------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/Patient", "/metadata", "/Patient/x", "/Patient/_history"])
def test_format_xml_is_406(client: httpx.Client, path: str) -> None:
    assert_outcome(client.get(path, params={"_format": "xml"}), 406)
    assert_outcome(client.get(path, headers={"accept": "application/fhir+xml"}), 406)


@pytest.mark.parametrize(
    "accept", ["application/fhir+json", "application/json", "*/*", "application/fhir+xml, */*"]
)
def test_json_accept_headers_are_served(client: httpx.Client, accept: str) -> None:
    assert client.get("/metadata", headers={"accept": accept}).status_code == 200


# -- addresses ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/Unknown"),
        ("GET", "/Unknown/x"),
        ("GET", "/Unknown/x/_history"),
        ("GET", "/Unknown/x/_history/1"),
        ("GET", "/Unknown/_history"),
        ("POST", "/Unknown/_search"),
        ("DELETE", "/Unknown/x"),
        ("GET", "/patient"),
        ("GET", "/Bundle"),
    ],
)
def test_unknown_type_is_404(client: httpx.Client, method: str, path: str) -> None:
    assert_outcome(client.request(method, path), 404)


def test_unknown_type_is_404_on_write(client: httpx.Client) -> None:
    body = {"resourceType": "Unknown"}
    assert_outcome(client.post("/Unknown", json=body, headers=FHIR_JSON), 404)
    assert_outcome(client.put("/Unknown/x", json={**body, "id": "x"}, headers=FHIR_JSON), 404)


@pytest.mark.parametrize(
    "path",
    [
        "/Patient/does-not-exist",
        "/Patient/does-not-exist/_history",
        "/Patient/does-not-exist/_history/1",
        "/Patient/not%20an%20id",
        "/Patient/" + "x" * 65,
    ],
)
def test_unknown_id_is_404(client: httpx.Client, path: str) -> None:
    assert_outcome(client.get(path), 404)


@pytest.mark.parametrize("version", ["0", "99", "x", "²", "99999999999999999999999"])
def test_unknown_version_is_404(client: httpx.Client, pid: str, version: str) -> None:
    assert_outcome(client.get(f"/Patient/{pid}/_history/{version}"), 404)


def test_unknown_path_is_an_outcome(client: httpx.Client) -> None:
    assert_outcome(client.get("/Patient/a/b/c/d/e"), 404)


def test_unsupported_method_is_an_outcome(client: httpx.Client, pid: str) -> None:
    assert_outcome(client.patch(f"/Patient/{pid}", json={}), 405)


# -- updates -------------------------------------------------------------------------------


def test_id_mismatch_on_put_is_400_and_changes_nothing(client: httpx.Client, pid: str) -> None:
    stored = create(client, goal(patient_id=pid, text="Oud"))
    url = f"/Goal/{stored['id']}"
    changed = {**stored, "id": new_id(), "description": {"text": "Nieuw"}}
    body = assert_outcome(client.put(url, json=changed, headers=FHIR_JSON), 400)
    assert expressions(body) == ["Goal.id"]
    missing = {k: v for k, v in changed.items() if k != "id"}
    assert_outcome(client.put(url, json=missing, headers=FHIR_JSON), 400)
    current = client.get(url).json()
    assert current["meta"]["versionId"] == "1"
    assert current["description"]["text"] == "Oud"
    assert client.get(f"/Goal/{changed['id']}").status_code == 404


# b"\xb2" is "²" in the latin-1 that HTTP header bytes are read as: a digit to str.isdigit.
@pytest.mark.parametrize(
    "etag",
    [
        b'W/"x"',
        b"*",
        b'W/"\xb2"',
        b"",
        pytest.param(b'W/"' + b"9" * 5000 + b'"', id="5000-digits"),
    ],
)
def test_malformed_if_match_is_400(client: httpx.Client, pid: str, etag: bytes) -> None:
    stored = create(client, goal(patient_id=pid))
    response = client.put(
        f"/Goal/{stored['id']}",
        json=stored,
        headers=[(b"content-type", b"application/fhir+json"), (b"if-match", etag)],
    )
    assert_outcome(response, 400)
    assert client.get(f"/Goal/{stored['id']}").json()["meta"]["versionId"] == "1"


def test_failed_update_leaves_the_old_version(client: httpx.Client, pid: str) -> None:
    stored = create(client, goal(patient_id=pid, text="Blijft staan"))
    url = f"/Goal/{stored['id']}"
    attempts = [
        (b"{", FHIR_JSON),
        (httpx.Request("PUT", "/", json={**stored, "lifecycleStatus": "x"}).content, FHIR_JSON),
        (httpx.Request("PUT", "/", json={**stored, "note": "geen lijst"}).content, FHIR_JSON),
        (httpx.Request("PUT", "/", json=stored).content, {"content-type": "text/plain"}),
        (
            httpx.Request(
                "PUT", "/", json={**stored, "subject": {"reference": "Patient/nobody"}}
            ).content,
            FHIR_JSON,
        ),
    ]
    for content, headers in attempts:
        response = client.put(url, content=content, headers=headers)
        assert response.status_code in (400, 415, 422), response.text
    current = client.get(url)
    assert current.json() == stored
    assert current.headers["etag"] == 'W/"1"'
    assert len(client.get(f"{url}/_history").json()["entry"]) == 1


def test_moving_a_resource_to_another_inwoner_is_refused(client: httpx.Client, pid: str) -> None:
    other = str(create(client, patient_resource())["id"])
    stored = create(client, goal(patient_id=pid))
    moved = {**stored, "subject": {"reference": f"Patient/{other}"}}
    assert_outcome(client.put(f"/Goal/{stored['id']}", json=moved, headers=FHIR_JSON), 422)
    assert count_goals(client, other) == 0
    assert client.get(f"/Goal/{stored['id']}").json() == stored


# -- vault rules -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path"),
    [("POST", "/AuditEvent"), ("PUT", "/AuditEvent/a1"), ("DELETE", "/AuditEvent/a1")],
)
def test_writing_audit_events_is_405(client: httpx.Client, method: str, path: str) -> None:
    audit = {
        "resourceType": "AuditEvent",
        "id": "a1",
        "type": {"code": "rest"},
        "recorded": "2026-11-01T10:00:00Z",
        "agent": [{"requestor": True}],
        "source": {"observer": {"display": "x"}},
    }
    kwargs = {} if method == "DELETE" else {"json": audit, "headers": FHIR_JSON}
    assert_outcome(client.request(method, path, **kwargs), 405)
    assert client.get("/AuditEvent/a1").status_code == 404


def test_goal_for_a_patient_the_vault_does_not_hold_is_422(client: httpx.Client) -> None:
    missing = new_id("p")
    domain = new_id("d")
    response = client.post("/Goal", json=goal(patient_id=missing, domain=domain), headers=FHIR_JSON)
    body = assert_outcome(response, 422)
    assert expressions(body) == ["Goal.subject"]
    assert client.get("/Goal", params={"category": domain}).json()["total"] == 0


def test_goal_for_a_deleted_patient_is_422(client: httpx.Client) -> None:
    pid = str(create(client, patient_resource())["id"])
    assert client.delete(f"/Patient/{pid}").status_code == 204
    assert_outcome(client.post("/Goal", json=goal(patient_id=pid), headers=FHIR_JSON), 422)
    assert count_goals(client, pid) == 0


def test_goal_without_subject_is_refused(client: httpx.Client, pid: str) -> None:
    resource = goal(patient_id=pid)
    del resource["subject"]
    response = client.post("/Goal", json=resource, headers=FHIR_JSON)
    assert response.status_code in (400, 422)
    assert_outcome(response, response.status_code)


def test_failed_create_changes_nothing(client: httpx.Client, pid: str) -> None:
    before = count_goals(client, pid)
    bad = [
        goal(patient_id=pid, description={"text": 1}),
        goal(patient_id=pid, status="misschien"),
        goal(patient_id=pid, subject={"reference": "Patient/nobody"}),
        goal(patient_id=pid, subject={"reference": f"Patient/{pid}"}, target="x"),
    ]
    for resource in bad:
        response = client.post("/Goal", json=resource, headers=FHIR_JSON)
        assert response.status_code in (400, 422), response.text
    assert count_goals(client, pid) == before


def test_failed_conditional_create_changes_nothing(client: httpx.Client, pid: str) -> None:
    domain = new_id("d")
    response = client.post(
        "/Goal",
        json=goal(patient_id=pid, domain=domain),
        headers={**FHIR_JSON, "if-none-exist": "colour=blue"},
    )
    assert_outcome(response, 400)
    assert client.get("/Goal", params={"category": domain}).json()["total"] == 0


# -- search and access ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "params",
    [
        {"colour": "blue"},
        {"_count": "many"},
        {"_count": "²"},
        {"_count": "9" * 5000},
        {"_sort": "colour"},
        {"date": "gisteren"},
        {"_cursor": "!!"},
        {"patient:Organization": "x"},
    ],
)
def test_bad_search_is_400(client: httpx.Client, params: dict[str, str]) -> None:
    assert_outcome(client.get("/CarePlan", params=params), 400)


@pytest.mark.parametrize(
    "params",
    [
        {"_count": "²"},
        {"_count": "9" * 5000},
        {"_since": "gisteren"},
        {"_cursor": "!!"},
        {"colour": "blue"},
    ],
)
def test_bad_history_parameters_are_400(
    client: httpx.Client, pid: str, params: dict[str, str]
) -> None:
    assert_outcome(client.get(f"/Patient/{pid}/_history", params=params), 400)
    assert_outcome(client.get("/Patient/_history", params=params), 400)


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/Patient"),
        ("GET", "/Patient/x"),
        ("GET", "/Patient/x/_history"),
        ("GET", "/Patient/_history"),
        ("POST", "/Patient/_search"),
        ("POST", "/Patient"),
        ("PUT", "/Patient/x"),
        ("DELETE", "/Patient/x"),
    ],
)
def test_no_access_is_401_with_a_challenge(
    anonymous: httpx.Client, client: httpx.Client, method: str, path: str
) -> None:
    kwargs = (
        {"json": patient_resource(id="x"), "headers": FHIR_JSON}
        if method in ("POST", "PUT")
        else {}
    )
    response = anonymous.request(method, path, **kwargs)
    assert_outcome(response, 401)
    assert response.headers["www-authenticate"].startswith("Bearer")
    assert client.get("/Patient/x").status_code in (404, 410)


def test_another_inwoners_resource_is_404_for_every_interaction(
    client: httpx.Client, pid: str
) -> None:
    stored = create(client, goal(patient_id=pid))
    url = f"/Goal/{stored['id']}"
    other = str(create(client, patient_resource())["id"])
    stranger = {"x-test-access": f"patient:{other}"}
    unknown = f"/Goal/{new_id()}"
    for path in (url, unknown):
        assert_outcome(client.get(path, headers=stranger), 404)
        assert_outcome(client.get(f"{path}/_history", headers=stranger), 404)
        assert_outcome(client.get(f"{path}/_history/1", headers=stranger), 404)
        assert_outcome(client.delete(path, headers=stranger), 404)
    hidden = client.put(url, json=stored, headers={**FHIR_JSON, **stranger})
    missing = client.get(unknown, headers=stranger)
    assert_outcome(hidden, 404)
    assert hidden.json()["issue"][0]["code"] == missing.json()["issue"][0]["code"]
    assert client.get(url).json() == stored


def test_an_app_cannot_create_by_put_and_learns_nothing_about_taken_ids(
    client: httpx.Client, pid: str
) -> None:
    """Issue 12 B9: a free id and another inwoner's id answer alike; apps create by POST."""
    other = str(create(client, patient_resource())["id"])
    taken = create(client, goal(patient_id=other))
    app = {**FHIR_JSON, "x-test-access": f"patient:{pid}"}
    free_id = str(uuid.uuid4())  # the same length as the server-assigned id of ``taken``
    answers = []
    for goal_id in (free_id, str(taken["id"])):
        body = {**goal(patient_id=pid), "id": goal_id}
        answers.append(client.put(f"/Goal/{goal_id}", json=body, headers=app))
        # With If-Match too: no 412 for "does not exist" against 404 for "not yours".
        answers.append(
            client.put(f"/Goal/{goal_id}", json=body, headers={**app, "if-match": 'W/"1"'})
        )
    for response, goal_id in zip(answers, [free_id, free_id, taken["id"], taken["id"]]):
        assert_outcome(response, 404)
        assert response.text.replace(str(goal_id), "X") == answers[0].text.replace(free_id, "X")
        # Both ids are UUIDs of one length: every header but Date is the same.
        assert {k: v for k, v in response.headers.items() if k != "date"} == {
            k: v for k, v in answers[0].headers.items() if k != "date"
        }
    assert client.get(f"/Goal/{free_id}").status_code == 404
    assert client.get(f"/Goal/{taken['id']}").json() == taken
