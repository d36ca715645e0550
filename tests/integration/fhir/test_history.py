"""Instance and type history (https://hl7.org/fhir/R4/http.html#history)."""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest

from tests.conftest import FHIR_JSON, create
from tests.factories import goal, new_id
from tests.factories import patient as patient_resource


def get(client: httpx.Client, url: str, params: Any = None) -> dict[str, Any]:
    response = client.get(url, params=params)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/fhir+json")
    bundle: dict[str, Any] = response.json()
    assert bundle["resourceType"] == "Bundle"
    assert bundle["type"] == "history"
    return bundle


def link(bundle: dict[str, Any], relation: str) -> str | None:
    return next((x["url"] for x in bundle["link"] if x["relation"] == relation), None)


def versions(bundle: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(id, version, method) of each entry, in bundle order."""
    out = []
    for entry in bundle.get("entry", []):
        resource_id = entry["fullUrl"].rsplit("/", 1)[1]
        if "resource" in entry:
            version = entry["resource"]["meta"]["versionId"]
            assert entry["response"]["etag"] == f'W/"{version}"'
        else:
            version = "-"
        out.append((resource_id, version, entry["request"]["method"]))
    return out


def walk(client: httpx.Client, url: str, params: Any) -> list[list[tuple[str, str, str]]]:
    bundle = get(client, url, params)
    pages = [versions(bundle)]
    while (next_url := link(bundle, "next")) is not None:
        bundle = get(client, next_url)
        pages.append(versions(bundle))
        assert len(pages) < 100, "history paging does not end"
    return pages


@pytest.fixture
def pid(client: httpx.Client) -> str:
    return str(create(client, patient_resource())["id"])


def update(client: httpx.Client, resource_id: str, **changes: Any) -> dict[str, Any]:
    current = client.get(f"/Goal/{resource_id}").json()
    response = client.put(f"/Goal/{resource_id}", json={**current, **changes}, headers=FHIR_JSON)
    assert response.status_code in (200, 201), response.text
    body: dict[str, Any] = response.json()
    return body


def test_instance_history_is_newest_first_with_deletions(client: httpx.Client, pid: str) -> None:
    gid = str(create(client, goal(patient_id=pid, text="een"))["id"])
    update(client, gid, description={"text": "twee"})
    update(client, gid, description={"text": "drie"})
    assert client.delete(f"/Goal/{gid}").status_code == 204
    bundle = get(client, f"/Goal/{gid}/_history")
    entries = bundle["entry"]
    assert [e["request"]["method"] for e in entries] == ["DELETE", "PUT", "PUT", "POST"]
    deletion = entries[0]
    assert "resource" not in deletion
    assert deletion["request"]["url"] == f"Goal/{gid}"
    assert deletion["response"]["status"] == "204"
    texts = [e["resource"]["description"]["text"] for e in entries[1:]]
    assert texts == ["drie", "twee", "een"]
    assert [e["resource"]["meta"]["versionId"] for e in entries[1:]] == ["3", "2", "1"]
    assert [e["response"]["status"] for e in entries[1:]] == ["200", "200", "201"]
    stamps = [e["response"]["lastModified"] for e in entries]
    assert stamps == sorted(stamps, reverse=True)
    assert all(e["fullUrl"].endswith(f"/Goal/{gid}") for e in entries)


def test_history_continues_after_a_deletion(client: httpx.Client, pid: str) -> None:
    gid = str(create(client, goal(patient_id=pid))["id"])
    assert client.delete(f"/Goal/{gid}").status_code == 204
    revived = goal(patient_id=pid, text="terug", id=gid)
    response = client.put(f"/Goal/{gid}", json=revived, headers=FHIR_JSON)
    assert response.status_code in (200, 201)
    assert response.json()["meta"]["versionId"] == "3"
    history = versions(get(client, f"/Goal/{gid}/_history"))
    assert history == [(gid, "3", "PUT"), (gid, "-", "DELETE"), (gid, "1", "POST")]


def test_instance_history_holds_only_that_resource(client: httpx.Client, pid: str) -> None:
    a = str(create(client, goal(patient_id=pid))["id"])
    b = str(create(client, goal(patient_id=pid))["id"])
    update(client, b)
    assert {i for i, _, _ in versions(get(client, f"/Goal/{a}/_history"))} == {a}
    assert versions(get(client, f"/Goal/{b}/_history")) == [(b, "2", "PUT"), (b, "1", "POST")]


def test_type_history_holds_every_version_of_the_type(client: httpx.Client, pid: str) -> None:
    since = create(client, goal(patient_id=pid))["meta"]["lastUpdated"]  # type: ignore[index]
    a = str(create(client, goal(patient_id=pid))["id"])
    b = str(create(client, goal(patient_id=pid))["id"])
    update(client, a)
    assert client.delete(f"/Goal/{b}").status_code == 204
    create(client, patient_resource())  # another type: not in Goal's history
    bundle = get(client, "/Goal/_history", {"_since": since, "_count": "500"})
    mine = [v for v in versions(bundle) if v[0] in (a, b)]
    assert mine == [(b, "-", "DELETE"), (a, "2", "PUT"), (b, "1", "POST"), (a, "1", "POST")]
    assert all(e["fullUrl"].split("/")[-2] == "Goal" for e in bundle["entry"])


def test_since_leaves_out_older_versions(client: httpx.Client, pid: str) -> None:
    a = str(create(client, goal(patient_id=pid))["id"])
    time.sleep(0.002)  # the instant below is shown to the millisecond
    since = update(client, a)["meta"]["lastUpdated"]
    b = str(create(client, goal(patient_id=pid))["id"])
    assert versions(get(client, f"/Goal/{a}/_history", {"_since": since})) == [(a, "2", "PUT")]
    typed = versions(get(client, "/Goal/_history", {"_since": since}))
    assert (a, "2", "PUT") in typed
    assert (b, "1", "POST") in typed
    assert (a, "1", "POST") not in typed
    later = get(client, f"/Goal/{a}/_history", {"_since": "2999-01-01T00:00:00Z"})
    assert "entry" not in later
    self_link = str(link(later, "self"))
    assert "_since=2999-01-01T00%3A00%3A00Z" in self_link


def test_count_pages_through_every_version_once(client: httpx.Client, pid: str) -> None:
    gid = str(create(client, goal(patient_id=pid))["id"])
    for n in range(6):
        update(client, gid, description={"text": f"versie {n + 2}"})
    pages = walk(client, f"/Goal/{gid}/_history", {"_count": "3"})
    assert [[v for _, v, _ in page] for page in pages] == [
        ["7", "6", "5"],
        ["4", "3", "2"],
        ["1"],
    ]


def test_type_history_pages_through_every_version_once(client: httpx.Client, pid: str) -> None:
    since = create(client, goal(patient_id=pid))["meta"]["lastUpdated"]  # type: ignore[index]
    made = [str(create(client, goal(patient_id=pid))["id"]) for _ in range(3)]
    for gid in made:
        update(client, gid)
    update(client, made[0])
    pages = walk(client, "/Goal/_history", {"_since": since, "_count": "2"})
    assert all(len(page) <= 2 for page in pages)
    seen = [v for page in pages for v in page]
    assert len(seen) == len(set(seen)), "a version was repeated"
    mine = [(i, v) for i, v, _ in seen if i in made]
    assert sorted(mine) == sorted(
        [(gid, "1") for gid in made] + [(gid, "2") for gid in made] + [(made[0], "3")]
    )
    # Newest first across pages: the last versions written come first.
    assert mine[0] == (made[0], "3")


def test_history_of_an_unknown_resource_is_404(client: httpx.Client) -> None:
    for url in (f"/Goal/{new_id()}/_history", "/Unknown/_history", "/Unknown/x/_history"):
        response = client.get(url)
        assert response.status_code == 404
        assert response.json()["resourceType"] == "OperationOutcome"


def test_history_of_a_resource_with_few_versions_has_no_next(
    client: httpx.Client, pid: str
) -> None:
    gid = str(create(client, goal(patient_id=pid))["id"])
    bundle = get(client, f"/Goal/{gid}/_history", {"_count": "1"})
    assert link(bundle, "next") is None
    assert versions(bundle) == [(gid, "1", "POST")]


def test_each_history_page_links_to_itself(client: httpx.Client, pid: str) -> None:
    gid = str(create(client, goal(patient_id=pid))["id"])
    for _ in range(3):
        update(client, gid)
    first = get(client, f"/Goal/{gid}/_history", {"_count": "2"})
    second = get(client, str(link(first, "next")))
    assert link(second, "self") == link(first, "next")
    assert get(client, str(link(second, "self"))) == second
    assert "_count=2" in str(link(second, "self"))


def test_count_of_one_pages_through_two_versions(client: httpx.Client, pid: str) -> None:
    gid = str(create(client, goal(patient_id=pid))["id"])
    update(client, gid)
    pages = walk(client, f"/Goal/{gid}/_history", {"_count": "1"})
    assert pages == [[(gid, "2", "PUT")], [(gid, "1", "POST")]]
