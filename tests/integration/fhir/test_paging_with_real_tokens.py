"""Search, history and their paging with real tokens: a partner with a real grant and the
inwoner's own app (FHIR R4 http.html "Paging"; issue 16, item 5).

The rest of ``tests/integration/fhir`` pages with the test server's full-access header;
here every page comes through the vault's own bearer-token check, and following ``next``
to the end must give exactly the rows the caller may see: none twice, none missing, the
same ``total`` on every page, and nothing of what the Consent leaves out.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest

from tests.factories import consent, goal, patient
from tests.support.harness import BASE, Harness, Party
from vault.kernel.config import Settings
from vault.kernel.runtime import Runtime

CONF = "http://terminology.hl7.org/CodeSystem/v3-Confidentiality"
GOALS = 23


@dataclass
class Scene:
    harness: Harness
    pid: str
    open_goals: set[str]
    restricted: set[str]
    parties: dict[str, Party]


@pytest.fixture(scope="module")
def scene(settings: Settings, runtime: Runtime) -> Iterator[Scene]:
    harness = Harness(runtime, settings)
    pid = harness.create(patient(), patient_id=None).resource_id
    open_goals, restricted = set(), set()
    for n in range(GOALS):
        labelled = n % 3 == 0
        meta = {"security": [{"system": CONF, "code": "R"}]} if labelled else {}
        record = harness.create(goal(patient_id=pid, text=f"doel {n}", meta=meta), patient_id=pid)
        (restricted if labelled else open_goals).add(record.ref)
        if n % 4 == 0:
            body = {k: v for k, v in (record.current or {}).items() if k != "meta"}
            harness.update(record, {**body, "meta": meta, "description": {"text": f"{n}b"}})
    partner = harness.partner("partner", scopes=("system/Goal.rs",))
    (org,) = partner.caller.grantees
    grant = consent(patient_id=pid, actors=[org], classes=("Goal",))
    grant["provision"]["provision"] = [
        {"type": "deny", "securityLabel": [{"system": CONF, "code": "R"}]}
    ]
    harness.create(grant, patient_id=pid)
    app = harness.app("app", patient_id=pid, scopes=("patient/Goal.rs",))
    yield Scene(harness, pid, open_goals, restricted, {"partner": partner, "app": app})
    harness.close()


def _pages(scene: Scene, party: Party, path: str, params: dict[str, str]) -> list[httpx.Response]:
    pages = [scene.harness.fhir(party, "get", path, params=params)]
    while True:
        assert pages[-1].status_code == 200, pages[-1].text
        links = {link["relation"]: link["url"] for link in pages[-1].json().get("link", [])}
        if "next" not in links:
            return pages
        assert links["next"].startswith(f"{BASE}/fhir/")
        pages.append(scene.harness.fhir(party, "get", links["next"][len(f"{BASE}/fhir") :]))
        assert len(pages) <= GOALS * 3, "paging does not end"


def _visible(scene: Scene, who: str) -> set[str]:
    return scene.open_goals if who == "partner" else scene.open_goals | scene.restricted


@pytest.mark.parametrize("who", ["partner", "app"])
@pytest.mark.parametrize("sort", ["_lastUpdated", "-_lastUpdated", "_id"])
def test_paging_a_search_gives_every_visible_goal_once(scene: Scene, who: str, sort: str) -> None:
    params = {"patient": scene.pid, "_count": "4", "_sort": sort, "_total": "accurate"}
    pages = _pages(scene, scene.parties[who], "/Goal", params)
    seen = [f"Goal/{e['resource']['id']}" for page in pages for e in page.json().get("entry", [])]
    assert len(seen) == len(set(seen))
    assert set(seen) == _visible(scene, who)
    assert {page.json()["total"] for page in pages} == {len(_visible(scene, who))}


@pytest.mark.parametrize("who", ["partner", "app"])
def test_paging_type_history_gives_every_visible_version_once(scene: Scene, who: str) -> None:
    pages = _pages(scene, scene.parties[who], "/Goal/_history", {"_count": "5"})
    versions = [
        (e["resource"]["id"], e["resource"]["meta"]["versionId"])
        for page in pages
        for e in page.json().get("entry", [])
        if "resource" in e
    ]
    assert len(versions) == len(set(versions))
    mine = {f"Goal/{ident}" for ident, _ in versions} & (scene.open_goals | scene.restricted)
    assert mine == _visible(scene, who)
    expected = sum(len(scene.harness.world.records[ref].versions) for ref in _visible(scene, who))
    assert len([v for v in versions if f"Goal/{v[0]}" in mine]) == expected


@pytest.mark.parametrize("who", ["partner", "app"])
def test_a_cursor_from_one_caller_shows_another_nothing_more(scene: Scene, who: str) -> None:
    """A next link is no capability: replayed by the other caller it pages that caller's view."""
    other = "app" if who == "partner" else "partner"
    params = {"patient": scene.pid, "_count": "3", "_total": "accurate"}
    first = scene.harness.fhir(scene.parties[who], "get", "/Goal", params=params)
    links = {link["relation"]: link["url"] for link in first.json().get("link", [])}
    replay = scene.harness.fhir(scene.parties[other], "get", links["next"][len(f"{BASE}/fhir") :])
    assert replay.status_code in (200, 400, 404), replay.text
    if replay.status_code == 200:
        got = {f"Goal/{e['resource']['id']}" for e in replay.json().get("entry", [])}
        assert got <= _visible(scene, other)
