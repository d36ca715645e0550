"""Narrative XHTML is stored only as FHIR R4 allows it; anything that could run or fetch
something in a reader's browser is refused with 422 (issue 12 B9)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.conftest import FHIR_JSON, ServerThread, create
from tests.factories import goal
from tests.factories import patient as patient_resource

NS = 'xmlns="http://www.w3.org/1999/xhtml"'

REFUSED = {
    "script": f"<div {NS}><p>Doel</p><script>alert(1)</script></div>",
    "event attribute": f'<div {NS}><p onclick="alert(1)">Doel</p></div>',
    "event attribute on img": f'<div {NS}><img src="#x" onerror="alert(1)"/></div>',
    "javascript link": f'<div {NS}><a href="javascript:alert(1)">klik</a></div>',
    "hidden javascript link": f'<div {NS}><a href="java&#9;script:alert(1)">klik</a></div>',
    "data link": f'<div {NS}><a href="data:text/html,&lt;script&gt;">klik</a></div>',
    "style element": f"<div {NS}><style>p {{color: red}}</style><p>Doel</p></div>",
    "style that fetches": f'<div {NS}><p style="background: url(https://x.example/t)">D</p></div>',
    "iframe": f'<div {NS}><iframe src="https://x.example"></iframe><p>Doel</p></div>',
    "form": f'<div {NS}><form action="https://x.example"><p>Doel</p></form></div>',
    "external image": f'<div {NS}><img src="https://tracker.example/pixel.gif" alt="x"/></div>',
    "svg": f'<div {NS}><svg xmlns="http://www.w3.org/2000/svg"><script>1</script></svg></div>',
    "entity declaration": f'<!DOCTYPE div [<!ENTITY a "aaaa">]><div {NS}>&a;</div>',
    "no namespace": "<div><p>Doel</p></div>",
    "not well-formed": f"<div {NS}><p>Doel</div>",
    "another root": f"<p {NS}>Doel</p>",
    "empty": f"<div {NS}>  </div>",
    "unknown attribute": f'<div {NS}><p formaction="x">Doel</p></div>',
}

ALLOWED = [
    f"<div {NS}><p>Doel: <b>zelf</b> koken</p></div>",
    f'<div {NS} xml:lang="nl" lang="nl"><h2>Plan</h2><ul><li>Een</li><li>Twee</li></ul></div>',
    f'<div {NS}><table border="1"><tbody><tr><td colspan="2" style="color: red">1</td></tr>'
    "</tbody></table></div>",
    f'<div {NS}><a href="https://regiekluis.nl/uitleg">Uitleg</a> <a href="#doel">hier</a>'
    ' <a href="Goal/123">doel</a> <a href="mailto:zorg@example.nl">mail</a></div>',
    f'<div {NS}><img src="#logo" alt="logo"/><img src="data:image/png;base64,iVBORw0KGgo="'
    ' alt="x"/></div>',
]


def _with_text(pid: str, div: str, **extra: Any) -> dict[str, Any]:
    return {**goal(patient_id=pid), "text": {"status": "generated", "div": div}, **extra}


@pytest.fixture(scope="module")
def pid(server: ServerThread) -> str:
    with httpx.Client(
        base_url=server.url + "/fhir", headers={"x-test-access": "full"}, timeout=30
    ) as http:
        return str(create(http, patient_resource())["id"])


@pytest.mark.parametrize("case", sorted(REFUSED))
def test_unsafe_narrative_is_refused_on_create_and_update(
    client: httpx.Client, pid: str, case: str
) -> None:
    body = _with_text(pid, REFUSED[case])
    response = client.post("/Goal", json=body, headers=FHIR_JSON)
    assert response.status_code == 422, response.text
    outcome = response.json()
    assert outcome["resourceType"] == "OperationOutcome"
    assert outcome["issue"][0]["expression"] == ["Goal.text.div"]
    stored = create(client, goal(patient_id=pid))
    update = client.put(
        f"/Goal/{stored['id']}", json={**body, "id": stored["id"]}, headers=FHIR_JSON
    )
    assert update.status_code == 422, update.text
    assert client.get(f"/Goal/{stored['id']}").json()["meta"]["versionId"] == "1"


def test_unsafe_narrative_of_a_contained_resource_is_refused(
    client: httpx.Client, pid: str
) -> None:
    inner = {
        "resourceType": "Practitioner",
        "id": "p1",
        "text": {"status": "generated", "div": REFUSED["script"]},
    }
    response = client.post(
        "/Goal", json={**goal(patient_id=pid), "contained": [inner]}, headers=FHIR_JSON
    )
    assert response.status_code == 422, response.text
    assert response.json()["issue"][0]["expression"] == ["Goal.contained[0].text.div"]


@pytest.mark.parametrize("div", ALLOWED)
def test_narrative_as_fhir_allows_it_is_stored_as_sent(
    client: httpx.Client, pid: str, div: str
) -> None:
    stored = create(client, _with_text(pid, div))
    assert client.get(f"/Goal/{stored['id']}").json()["text"]["div"] == div
