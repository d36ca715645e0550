"""The CapabilityStatement at /fhir/metadata claims only what the server really does."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from vault.store.registry import RESOURCE_TYPES

# A value of the right kind for each search parameter type: enough to prove that the
# server accepts the parameter (any 200), not what it finds.
SAMPLE = {"token": "x", "reference": "x", "date": "ge2026-01-01", "string": "x"}


@pytest.fixture
def statement(client: httpx.Client) -> dict[str, Any]:
    response = client.get("/metadata")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/fhir+json")
    body: dict[str, Any] = response.json()
    return body


def resources(statement: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The stored types; Subscription (vault/notify) has tests of its own."""
    (rest,) = statement["rest"]
    return {r["type"]: r for r in rest["resource"] if r["type"] in RESOURCE_TYPES}


def test_metadata_is_an_r4_capability_statement(statement: dict[str, Any]) -> None:
    assert statement["resourceType"] == "CapabilityStatement"
    assert statement["fhirVersion"] == "4.0.1"
    assert statement["kind"] == "instance"
    assert statement["status"] == "active"
    assert "application/fhir+json" in statement["format"]
    assert not any("xml" in f for f in statement["format"])
    assert statement["rest"][0]["mode"] == "server"


def test_metadata_lists_exactly_the_registry_types(statement: dict[str, Any]) -> None:
    listed = [r["type"] for r in statement["rest"][0]["resource"]]
    assert sorted(listed) == sorted([*RESOURCE_TYPES, "Subscription", "Measure"])
    assert len(listed) == len(set(listed))


def test_metadata_is_public(anonymous: httpx.Client) -> None:
    # SMART on FHIR clients read /metadata before they have a token.
    response = anonymous.get("/metadata")
    assert response.status_code == 200
    assert response.json()["resourceType"] == "CapabilityStatement"


def test_every_declared_search_parameter_is_accepted(
    client: httpx.Client, statement: dict[str, Any]
) -> None:
    refused = []
    checked = 0
    for type_name, resource in resources(statement).items():
        for param in resource["searchParam"]:
            value = SAMPLE[param["type"]]
            response = client.get(f"/{type_name}", params={param["name"]: value})
            checked += 1
            if response.status_code != 200:
                refused.append((type_name, param["name"], response.status_code))
    assert refused == []
    assert checked > 2 * len(RESOURCE_TYPES)


def test_every_declared_search_parameter_is_accepted_by_post(
    client: httpx.Client, statement: dict[str, Any]
) -> None:
    for type_name, resource in resources(statement).items():
        form = {p["name"]: SAMPLE[p["type"]] for p in resource["searchParam"]}
        response = client.post(f"/{type_name}/_search", data=form)
        assert response.status_code == 200, (type_name, response.text)


def test_declared_search_parameters_match_the_registry(statement: dict[str, Any]) -> None:
    for type_name, resource in resources(statement).items():
        declared = {(p["name"], p["type"]) for p in resource["searchParam"]}
        spec = RESOURCE_TYPES[type_name]
        expected = {(p.name, p.type) for p in spec.params} | {
            ("_id", "token"),
            ("_lastUpdated", "date"),
        }
        assert declared == expected, type_name


def test_every_declared_include_is_accepted(
    client: httpx.Client, statement: dict[str, Any]
) -> None:
    refused = []
    for type_name, resource in resources(statement).items():
        for include in resource.get("searchInclude", []):
            response = client.get(f"/{type_name}", params={"_include": include})
            if response.status_code != 200:
                refused.append((type_name, include, response.status_code))
        for revinclude in resource.get("searchRevInclude", []):
            response = client.get(f"/{type_name}", params={"_revinclude": revinclude})
            if response.status_code != 200:
                refused.append((type_name, revinclude, response.status_code))
    assert refused == []


def test_the_required_includes_are_declared(statement: dict[str, Any]) -> None:
    declared = resources(statement)
    assert {"CarePlan:goal", "CarePlan:care-team"} <= set(declared["CarePlan"]["searchInclude"])
    assert "CareTeam:participant" in declared["CareTeam"]["searchInclude"]
    assert "Provenance:target" in declared["Goal"]["searchRevInclude"]


def test_audit_event_cannot_be_written(statement: dict[str, Any]) -> None:
    audit = resources(statement)["AuditEvent"]
    codes = {i["code"] for i in audit["interaction"]}
    assert codes.isdisjoint({"create", "update", "delete", "patch"})
    assert {"read", "search-type"} <= codes
    assert audit["updateCreate"] is False
    assert audit["conditionalCreate"] is False


def test_writable_types_declare_every_interaction(statement: dict[str, Any]) -> None:
    expected = {
        "read",
        "vread",
        "search-type",
        "history-instance",
        "history-type",
        "create",
        "update",
        "delete",
    }
    for type_name, resource in resources(statement).items():
        if type_name == "AuditEvent":
            continue
        assert {i["code"] for i in resource["interaction"]} == expected, type_name
        assert resource["versioning"] == "versioned-update"
        assert resource["conditionalCreate"] is True


def test_declared_interactions_are_routed(client: httpx.Client, statement: dict[str, Any]) -> None:
    # An interaction the server lacks would answer 404/405 from routing, not from the store.
    for type_name, resource in resources(statement).items():
        codes = {i["code"] for i in resource["interaction"]}
        if "history-type" in codes:
            assert client.get(f"/{type_name}/_history", params={"_count": "1"}).status_code == 200
        if "search-type" in codes:
            assert client.get(f"/{type_name}", params={"_count": "1"}).status_code == 200
        if "read" in codes:
            response = client.get(f"/{type_name}/unknown-id")
            assert response.status_code == 404
            assert "is not known" in response.json()["issue"][0]["diagnostics"]


def test_implementation_url_is_the_fhir_base(
    client: httpx.Client, statement: dict[str, Any]
) -> None:
    assert statement["implementation"]["url"] == str(client.base_url).rstrip("/")
