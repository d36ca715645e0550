"""Incremental sync against a fake vault (httpx.MockTransport) into the real sink adapter."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from joserfc.jwk import ECKey
from sqlalchemy import select

from adapters.sdk import AccessRevoked, VaultClient
from adapters.sdk.sync import Synchroniser
from adapters.sink import SinkAdapter, records

BASE = "https://vault.test"
KEY = ECKey.generate_key("P-384")


class FakeFhir:
    """Goals of one inwoner, a Consent clock, and a log of the searches made."""

    def __init__(self) -> None:
        self.goals: dict[str, dict[str, Any]] = {}
        self.consent_updated = "2026-01-01T00:00:00.000000Z"
        self.searches: list[httpx.QueryParams] = []
        self.clock = 0

    def put(self, goal_id: str, text: str) -> None:
        self.clock += 1
        version = int(self.goals.get(goal_id, {}).get("meta", {}).get("versionId", "0")) + 1
        self.goals[goal_id] = {
            "resourceType": "Goal",
            "id": goal_id,
            "meta": {
                "versionId": str(version),
                "lastUpdated": f"2026-11-01T10:00:{self.clock:02d}.000000Z",
            },
            "lifecycleStatus": "active",
            "description": {"text": text},
            "subject": {"reference": "Patient/p1"},
        }

    def __call__(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        if path == "/.well-known/smart-configuration":
            return httpx.Response(200, json={"token_endpoint": f"{BASE}/oauth/token"})
        if path == "/oauth/token":
            return httpx.Response(200, json={"access_token": "t", "expires_in": 300})
        params = request.url.params
        self.searches.append(params)
        since = params.get("_lastUpdated", "ge0")[2:]
        if path == "/fhir/Consent":
            total = 1 if self.consent_updated >= since else 0
            return httpx.Response(200, json={"resourceType": "Bundle", "total": total})
        assert path == "/fhir/Goal" and params["patient"] == "p1"
        matches = [g for g in self.goals.values() if g["meta"]["lastUpdated"] >= since]
        if params.get("_summary") == "count":
            return httpx.Response(200, json={"resourceType": "Bundle", "total": len(matches)})
        return httpx.Response(
            200,
            json={
                "resourceType": "Bundle",
                "type": "searchset",
                "entry": [{"resource": g, "search": {"mode": "match"}} for g in matches],
            },
        )


@pytest.fixture
def fake() -> FakeFhir:
    return FakeFhir()


def synchroniser(fake: FakeFhir, sink: SinkAdapter) -> Synchroniser:
    http = httpx.Client(transport=httpx.MockTransport(fake))
    client = VaultClient(BASE, "c", KEY, http=http, scopes=["system/Goal.rs"])
    return Synchroniser(client, sink, types=["Goal"], patients=["p1"])


def rows(sink: SinkAdapter) -> dict[str, tuple[str, str]]:
    with sink.engine.connect() as conn:
        found = conn.execute(select(records.c.resource_id, records.c.version_id, records.c.title))
        return {row.resource_id: (row.version_id, row.title) for row in found}


def test_first_sync_copies_everything_and_stores_a_watermark(
    fake: FakeFhir, sink: SinkAdapter
) -> None:
    fake.put("a", "Schulden op een rij")
    fake.put("b", "Weer naar school")
    result = synchroniser(fake, sink).sync()
    assert sorted(result.upserted) == ["Goal/a", "Goal/b"]
    assert rows(sink) == {"a": ("1", "Schulden op een rij"), "b": ("1", "Weer naar school")}
    assert sink.get_watermark("Goal|p1") == "2026-11-01T10:00:02.000000Z"


def test_next_sync_asks_only_for_changes_since_the_watermark(
    fake: FakeFhir, sink: SinkAdapter
) -> None:
    fake.put("a", "Schulden op een rij")
    sync = synchroniser(fake, sink)
    sync.sync()
    fake.put("a", "Schulden bijna op een rij")
    fake.searches.clear()
    result = sync.sync()
    assert result.upserted == ["Goal/a"]
    assert result.listed == []  # counts agree and no Consent changed: no full listing
    assert rows(sink)["a"] == ("2", "Schulden bijna op een rij")
    change_searches = [p for p in fake.searches if "_lastUpdated" in p and "_summary" not in p]
    # The watermark (10:00:01) minus the five-second overlap.
    assert [p["_lastUpdated"] for p in change_searches] == ["ge2026-11-01T09:59:56.000000Z"]


def test_a_resource_no_longer_returned_is_removed_and_reported(
    fake: FakeFhir, sink: SinkAdapter
) -> None:
    fake.put("a", "Schulden op een rij")
    fake.put("b", "Weer naar school")
    sync = synchroniser(fake, sink)
    sync.sync()
    del fake.goals["b"]  # the inwoner stopped sharing it
    fake.consent_updated = "2026-11-01T10:00:30.000000Z"
    result = sync.sync()
    assert result.removed == ["Goal/b"]
    assert set(rows(sink)) == {"a"}
    with pytest.raises(AccessRevoked) as caught:
        result.raise_for_revoked()
    assert caught.value.references == ["Goal/b"]


def test_a_count_mismatch_alone_triggers_the_id_comparison(
    fake: FakeFhir, sink: SinkAdapter
) -> None:
    fake.put("a", "Schulden op een rij")
    fake.put("b", "Weer naar school")
    sync = synchroniser(fake, sink)
    sync.sync()
    del fake.goals["a"]  # e.g. a Consent period ended: no Consent changed
    result = sync.sync()
    assert result.listed == ["Goal|p1"]
    assert result.removed == ["Goal/a"]


def test_a_newly_granted_old_resource_is_fetched_after_a_consent_change(
    fake: FakeFhir, sink: SinkAdapter
) -> None:
    fake.put("a", "Schulden op een rij")
    sync = synchroniser(fake, sink)
    sync.sync()
    hidden = dict(fake.goals["a"], id="old")
    hidden["meta"] = {"versionId": "1", "lastUpdated": "2020-01-01T00:00:00.000000Z"}
    fake.goals["old"] = hidden
    fake.consent_updated = "2026-11-01T10:00:40.000000Z"
    del fake.goals["a"]  # same count as before: only the Consent says something changed
    result = sync.sync()
    assert result.removed == ["Goal/a"]
    assert "Goal/old" in result.upserted
