"""The SDK's Bulk Data client against httpx.MockTransport: kick-off, polling, download."""

from __future__ import annotations

from typing import Any

import httpx
import orjson
import pytest

from adapters.sdk import ExportFailed
from tests.unit.adapters.test_sdk_client import FakeVault, goal, make_client

STATUS = "https://vault.test/fhir/$export-status/job1"
FILE = "https://vault.test/fhir/$export-file/job1/7"


def exporting(polls_running: int, final: httpx.Response) -> tuple[FakeVault, list[str]]:
    seen: list[str] = []
    remaining = [polls_running]

    def fhir(request: httpx.Request) -> httpx.Response:
        seen.append(f"{request.method} {request.url.path}")
        if request.url.path == "/fhir/$export":
            assert request.headers["prefer"] == "respond-async"
            assert request.url.params["_type"] == "Goal"
            return httpx.Response(202, headers={"content-location": STATUS})
        if request.url.path.startswith("/fhir/$export-status") and request.method == "GET":
            if remaining[0] > 0:
                remaining[0] -= 1
                return httpx.Response(202, headers={"retry-after": "2"})
            return final
        if request.method == "DELETE":
            return httpx.Response(202)
        assert str(request.url) == FILE
        lines = b"\n".join(orjson.dumps(goal(g)) for g in ("a", "b"))
        return httpx.Response(200, content=lines + b"\n")

    return FakeVault(fhir), seen


MANIFEST: dict[str, Any] = {
    "transactionTime": "2026-11-01T10:00:00.000Z",
    "requiresAccessToken": True,
    "output": [{"type": "Goal", "url": FILE, "count": 2}],
    "error": [],
}


def test_bulk_export_polls_with_retry_after_downloads_and_deletes() -> None:
    vault, seen = exporting(2, httpx.Response(200, json=MANIFEST))
    client, slept = make_client(vault)
    found = list(client.bulk_export(types=["Goal"]))
    assert [r.id for r in found] == ["a", "b"]
    assert slept == [2.0, 2.0]
    assert seen[-1] == "DELETE /fhir/$export-status/job1"
    download = next(r for r in vault.requests if str(r.url) == FILE)
    assert download.headers["authorization"].startswith("Bearer ")


def test_a_failed_export_raises_export_failed_without_retrying() -> None:
    outcome = {"resourceType": "OperationOutcome", "issue": [{"diagnostics": "boom"}]}
    vault, seen = exporting(0, httpx.Response(500, json=outcome))
    client, slept = make_client(vault)
    with pytest.raises(ExportFailed, match="boom"):
        client.bulk_export_manifest(types=["Goal"])
    assert seen.count("GET /fhir/$export-status/job1") == 1 and slept == []


def test_an_export_that_takes_too_long_raises_export_failed() -> None:
    vault, _ = exporting(100, httpx.Response(200, json=MANIFEST))
    client, slept = make_client(vault)
    with pytest.raises(ExportFailed, match="did not finish"):
        client.bulk_export_manifest(types=["Goal"], timeout=5)
    assert sum(slept) <= 5
