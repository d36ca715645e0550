"""The plain read (GET of a type and id, no query) skips the framework: it must answer
exactly as the routed read does, success or error, and take no other route's requests.
The plain search (GET of a stored type) likewise answers as the routed search."""

from __future__ import annotations

import asyncio
import logging

import httpx
import pytest
from starlette.types import Receive, Scope, Send

import vault.fhir.router
from tests.conftest import create
from tests.conftest import test_access as header_access
from tests.factories import goal, new_id
from tests.factories import patient as patient_resource
from vault.app.main import create_app
from vault.fhir.repository import Repository
from vault.kernel.config import Settings
from vault.kernel.runtime import Runtime

COMPARED = ("content-type", "etag", "last-modified", "www-authenticate")


def both(http: httpx.Client, path: str, **options: object) -> tuple[httpx.Response, ...]:
    """The plain read and the same read through the router (a query keeps it off the
    plain path; ``_format=json`` changes nothing else)."""
    plain = http.get(path, **options)  # type: ignore[arg-type]
    routed = http.get(path, params={"_format": "json"}, **options)  # type: ignore[arg-type]
    return plain, routed


def assert_same(plain: httpx.Response, routed: httpx.Response) -> None:
    assert plain.status_code == routed.status_code
    assert plain.content == routed.content
    for name in COMPARED:
        assert plain.headers.get(name) == routed.headers.get(name), name


@pytest.fixture
def goal_id(client: httpx.Client) -> str:
    pid = str(create(client, patient_resource())["id"])
    return str(create(client, goal(patient_id=pid))["id"])


def test_a_read_answers_as_the_routed_read(
    client: httpx.Client, goal_id: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    taken: list[tuple[str, str]] = []
    serve = vault.fhir.router.serve_plain_read

    async def spy(scope: Scope, receive: Receive, send: Send, *target: str) -> None:
        taken.append((target[0], target[1]))
        await serve(scope, receive, send, *target)

    monkeypatch.setattr(vault.fhir.router, "serve_plain_read", spy)
    plain, routed = both(client, f"/Goal/{goal_id}")
    assert taken == [("Goal", goal_id)]  # the plain path, once; the query kept the other off
    assert plain.status_code == 200
    assert plain.json()["id"] == goal_id
    assert plain.headers["etag"] == 'W/"1"'
    assert_same(plain, routed)


def test_errors_answer_as_the_routed_read(
    client: httpx.Client, anonymous: httpx.Client, goal_id: str
) -> None:
    unknown = both(client, f"/Goal/{new_id()}")
    assert unknown[0].status_code == 404
    assert_same(*unknown)

    assert client.delete(f"/Goal/{goal_id}").status_code in (200, 204)
    gone = both(client, f"/Goal/{goal_id}")
    assert gone[0].status_code == 410
    assert_same(*gone)

    no_token = both(anonymous, f"/Goal/{goal_id}")
    assert no_token[0].status_code == 401
    assert no_token[0].headers["www-authenticate"].startswith("Bearer")
    assert_same(*no_token)

    xml = both(client, f"/Goal/{goal_id}", headers={"accept": "application/fhir+xml"})
    assert xml[0].status_code == 406
    assert_same(*xml)


def test_an_unexpected_error_is_a_500_outcome_that_logs_only_its_type(
    client: httpx.Client,
    goal_id: str,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def broken(*_args: object, **_kwargs: object) -> None:
        raise RuntimeError("Ik wil mijn schulden op een rij")  # personal words in a message

    monkeypatch.setattr(Repository, "read_async", broken)
    with caplog.at_level(logging.ERROR, logger="vault.kernel.errors"):
        plain, routed = both(client, f"/Goal/{goal_id}")
    assert_a_500_that_logs_only_its_type(plain, routed, caplog)


def assert_a_500_that_logs_only_its_type(
    plain: httpx.Response, routed: httpx.Response, caplog: pytest.LogCaptureFixture
) -> None:
    assert plain.status_code == 500
    assert plain.json()["resourceType"] == "OperationOutcome"
    assert_same(plain, routed)
    assert "unexpected RuntimeError" in caplog.text
    assert "schulden" not in caplog.text and "schulden" not in plain.text


def test_other_routes_of_the_same_shape_are_not_taken(client: httpx.Client, goal_id: str) -> None:
    history = client.get("/Goal/_history")
    assert history.status_code == 200
    assert history.json()["type"] == "history"
    assert client.head(f"/Goal/{goal_id}").status_code == 405  # not a plain GET: routed
    bad_id = client.get("/Goal/not_a_fhir_id")  # "_" is not allowed in an id
    assert bad_id.status_code == 404
    assert bad_id.json()["resourceType"] == "OperationOutcome"


def under_root_path(
    settings: Settings, runtime: Runtime, path: str, params: dict[str, str] | None = None
) -> httpx.Response:
    """A full-access GET of ``/vault/fhir{path}``, behind a proxy that mounts the vault at
    /vault (uvicorn --root-path)."""
    app = create_app(settings, access_resolver=header_access, runtime=runtime)

    async def get() -> httpx.Response:
        transport = httpx.ASGITransport(app=app, root_path="/vault")
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
            response = await http.get(
                f"/vault/fhir{path}", params=params, headers={"x-test-access": "full"}
            )
        await runtime.db.close_async()  # what the lifespan would do; this app has none
        return response

    return asyncio.run(get())


def test_a_read_under_a_root_path(settings: Settings, runtime: Runtime, goal_id: str) -> None:
    response = under_root_path(settings, runtime, f"/Goal/{goal_id}")
    assert response.status_code == 200
    assert response.json()["id"] == goal_id


def routed_too(
    http: httpx.Client, monkeypatch: pytest.MonkeyPatch, path: str, **options: object
) -> tuple[httpx.Response, httpx.Response]:
    """A search by GET as the plain path answers it, and as the router does with the plain
    path switched off."""
    plain = http.get(path, **options)  # type: ignore[arg-type]
    with monkeypatch.context() as patched:
        patched.setattr(vault.fhir.router, "plain_search", lambda _scope: None)
        routed = http.get(path, **options)  # type: ignore[arg-type]
    return plain, routed


def test_a_search_answers_as_the_routed_search(
    client: httpx.Client, goal_id: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    taken: list[str] = []
    serve = vault.fhir.router.serve_plain_search

    async def spy(scope: Scope, receive: Receive, send: Send, resource_type: str) -> None:
        taken.append(resource_type)
        await serve(scope, receive, send, resource_type)

    monkeypatch.setattr(vault.fhir.router, "serve_plain_search", spy)
    pid = client.get(f"/Goal/{goal_id}").json()["subject"]["reference"]
    plain, routed = routed_too(client, monkeypatch, "/Goal", params={"patient": pid})
    assert taken == ["Goal"]  # the plain path, once; switched off, the router answered
    assert plain.status_code == 200
    assert [e["resource"]["id"] for e in plain.json()["entry"]] == [goal_id]
    assert_same(plain, routed)


def test_search_errors_answer_as_the_routed_search(
    client: httpx.Client,
    anonymous: httpx.Client,
    goal_id: str,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    for http, params, headers, status in (
        (client, {"nonsense": "1"}, {}, 400),
        (client, {"_count": "-1"}, {}, 400),
        (client, {}, {"accept": "application/fhir+xml"}, 406),
        (anonymous, {}, {}, 401),
    ):
        plain, routed = routed_too(http, monkeypatch, "/Goal", params=params, headers=headers)
        assert plain.status_code == status, (params, plain.text)
        assert plain.json()["resourceType"] == "OperationOutcome"
        assert_same(plain, routed)

    def broken(*_args: object, **_kwargs: object) -> None:
        raise RuntimeError("Ik wil mijn schulden op een rij")  # personal words in a message

    monkeypatch.setattr(Repository, "search", broken)
    with caplog.at_level(logging.ERROR, logger="vault.kernel.errors"):
        plain, routed = routed_too(client, monkeypatch, "/Goal")
    assert_a_500_that_logs_only_its_type(plain, routed, caplog)


def test_other_searches_are_routed(client: httpx.Client, goal_id: str) -> None:
    taken: list[object] = []
    for path in ("/Measure", "/Subscription", "/$export", "/metadata", "/Goal/"):
        scope = {"type": "http", "method": "GET", "path": "/fhir" + path, "root_path": ""}
        taken.append(vault.fhir.router.plain_search(scope))
    assert taken == [None] * 5
    assert client.head("/Goal").status_code == 405  # not a plain GET: routed, as before
    assert client.get("/metadata").json()["resourceType"] == "CapabilityStatement"


def test_a_search_under_a_root_path(settings: Settings, runtime: Runtime, goal_id: str) -> None:
    response = under_root_path(settings, runtime, "/Goal", {"_id": goal_id})
    assert response.status_code == 200
    assert [e["resource"]["id"] for e in response.json()["entry"]] == [goal_id]
