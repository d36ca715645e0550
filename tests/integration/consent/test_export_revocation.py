"""Export files hold only what is granted at the moment of each download, and every
download is in the inwoner's access log.

Issue 11 item 4: after MEE's Consent was revoked, a live read was 404 but the ndjson files of
an export made before still downloaded for up to an hour, and no download was logged. Every
step goes over HTTP: the partner with its real token, the inwoner with her own app.
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from typing import Any

import httpx

from tests.conftest import FHIR_JSON
from tests.factories import goal, patient
from tests.integration.consent.bulk import download, export_manifest, lines
from tests.integration.consent.conftest import Operator, Partner, grant

App = Callable[[str], httpx.Client]


def _downloads_logged(app: httpx.Client, inwoner: str) -> list[dict[str, Any]]:
    """The inwoner's AuditEvents about a download of an export file, as her app sees them."""
    found = app.get("/AuditEvent", params={"patient": inwoner, "_count": "200"})
    assert found.status_code == 200, found.text
    events = [e["resource"] for e in found.json().get("entry", [])]
    return [
        event
        for event in events
        if any(
            base64.b64decode(entity["query"]).startswith(b"$export-file/")
            for entity in event.get("entity", [])
            if "query" in entity
        )
    ]


def _named(event: dict[str, Any]) -> set[str]:
    return {e["what"]["reference"] for e in event.get("entity", []) if "what" in e}


def test_a_revoked_grant_holds_for_export_files_made_before_and_the_download_is_logged(
    operator: Operator, inwoner: str, partner: Partner, make_inwoner_app: App
) -> None:
    shared = operator.create(goal(patient_id=inwoner))
    consent_id = operator.create(grant(inwoner, partner.organization, classes=("Goal",)))
    manifest = export_manifest(partner, "Goal")
    assert f"Goal/{shared}" in lines(download(partner, manifest))
    app = make_inwoner_app(inwoner)
    served = _downloads_logged(app, inwoner)
    assert [e["outcome"] for e in served] == ["0"]
    assert f"Goal/{shared}" in _named(served[0])

    body = app.get(f"/Consent/{consent_id}").json()
    revoked = app.put(
        f"/Consent/{consent_id}", json={**body, "status": "inactive"}, headers=FHIR_JSON
    )
    assert revoked.status_code == 200, revoked.text

    assert partner.get(f"/Goal/{shared}").status_code == 404
    assert lines(download(partner, manifest)) == set()
    logged = _downloads_logged(app, inwoner)
    assert sorted(e["outcome"] for e in logged) == ["0", "4"]
    denied = next(e for e in logged if e["outcome"] == "4")
    assert f"Goal/{shared}" in _named(denied)
    assert denied["agent"][0]["who"]["reference"] == partner.organization


def test_a_narrowed_grant_holds_for_export_files_made_before(
    operator: Operator, inwoner: str, partner: Partner
) -> None:
    kept, dropped = (operator.create(goal(patient_id=inwoner, text=t)) for t in ("a", "b"))
    consent_id = operator.create(grant(inwoner, partner.organization, classes=("Goal",)))
    manifest = export_manifest(partner, "Goal")
    assert {f"Goal/{kept}", f"Goal/{dropped}"} <= lines(download(partner, manifest))

    narrowed = grant(inwoner, partner.organization, data=[(f"Goal/{kept}", "instance")])
    operator.update({**narrowed, "id": consent_id})

    assert partner.get(f"/Goal/{dropped}").status_code == 404
    assert lines(download(partner, manifest)) == {f"Goal/{kept}"}


def test_every_download_is_one_access_log_record_per_inwoner_in_the_file(
    operator: Operator, partner: Partner, make_inwoner_app: App
) -> None:
    people = [operator.create(patient()) for _ in range(2)]
    goals = {who: operator.create(goal(patient_id=who)) for who in people}
    for who in people:
        operator.create(grant(who, partner.organization, classes=("Goal",)))
    manifest = export_manifest(partner, "Goal")

    for _ in range(2):
        assert {f"Goal/{g}" for g in goals.values()} <= lines(download(partner, manifest))

    for who in people:
        logged = _downloads_logged(make_inwoner_app(who), who)
        assert len(logged) == 2  # two downloads, one record each in this inwoner's log
        for event in logged:
            assert event["outcome"] == "0"
            assert _named(event) == {f"Patient/{who}", f"Goal/{goals[who]}"}
