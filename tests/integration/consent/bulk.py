"""A partner's Bulk Data export over HTTP: kick-off, poll, download (no SDK in between)."""

from __future__ import annotations

import time
from typing import Any

import httpx
import orjson

from tests.integration.consent.conftest import Partner

__all__ = ["download", "export_manifest", "lines", "wait_for_manifest"]

ASYNC = {"prefer": "respond-async", "accept": "application/fhir+json"}


def export_manifest(partner: Partner, *types: str) -> dict[str, Any]:
    """Kick off a system-level export of ``types`` and wait for its manifest."""
    kick = partner.fhir.get("/$export", params={"_type": ",".join(types)}, headers=ASYNC)
    assert kick.status_code == 202, kick.text
    return wait_for_manifest(partner.fhir, kick.headers["content-location"])


def wait_for_manifest(client: httpx.Client, status_url: str) -> dict[str, Any]:
    """Poll an export's status with ``client``'s token until its manifest is there."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        status = client.get(status_url)
        if status.status_code != 202:
            assert status.status_code == 200, status.text
            manifest: dict[str, Any] = status.json()
            return manifest
        time.sleep(0.05)
    raise AssertionError("the export did not finish")


def download(partner: Partner, manifest: dict[str, Any]) -> list[httpx.Response]:
    """Every output file of ``manifest``, downloaded with the partner's token."""
    return [partner.fhir.get(item["url"]) for item in manifest["output"]]


def lines(responses: list[httpx.Response]) -> set[str]:
    """``Type/id`` of every line of the downloaded files (each must have been served)."""
    found = set()
    for response in responses:
        assert response.status_code == 200, response.text
        for line in response.content.splitlines():
            if line.strip():
                item = orjson.loads(line)
                found.add(f"{item['resourceType']}/{item['id']}")
    return found
