"""The demo family: valid FHIR, self-contained, fictional BSNs, every row in a compartment."""

from __future__ import annotations

import importlib
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

from vault.app.demo import DEMO_FAMILY_ID, DEMO_PATIENT_IDS, demo_resources
from vault.fhir.resources import validate_resource
from vault.kernel.fhirdata import split_reference
from vault.store.registry import RESOURCE_TYPES

BSN_SYSTEM = "http://fhir.nl/fhir/NamingSystem/bsn"
LEVENSDOMEIN = "https://regiekluis.nl/fhir/CodeSystem/levensdomein"
DOMAINS = {"financien", "wonen", "relaties", "dagbesteding", "gezondheid", "opvoeding"}

RESOURCES = demo_resources()


def key(resource: dict[str, Any]) -> str:
    return f"{resource['resourceType']}/{resource['id']}"


def references(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for name, value in node.items():
            if name == "reference" and isinstance(value, str):
                yield value
            else:
                yield from references(value)
    elif isinstance(node, list):
        for item in node:
            yield from references(item)


def passes_elfproef(bsn: str) -> bool:
    if len(bsn) != 9 or not bsn.isdigit():
        return False
    weights = (9, 8, 7, 6, 5, 4, 3, 2, -1)
    return sum(int(digit) * weight for digit, weight in zip(bsn, weights)) % 11 == 0


def of_type(resource_type: str) -> list[dict[str, Any]]:
    return [r for r in RESOURCES if r["resourceType"] == resource_type]


def patient_of(resource: dict[str, Any]) -> str:
    element = RESOURCE_TYPES[resource["resourceType"]].compartment
    assert element is not None
    if element == "self":
        return str(resource["id"])
    parsed = split_reference(resource[element]["reference"])
    assert parsed is not None and parsed[0] in ("Patient", "Group")
    return parsed[1]


def in_family(resource: dict[str, Any]) -> bool:
    """Part of the family compartment (docs/family.md section 6), not a member's own."""
    return RESOURCE_TYPES[resource["resourceType"]].compartment is not None and (
        patient_of(resource) == DEMO_FAMILY_ID
    )


@pytest.mark.parametrize("resource", RESOURCES, ids=key)
def test_every_demo_resource_validates_with_its_r4b_model(resource: dict[str, Any]) -> None:
    name = resource["resourceType"]
    model = getattr(importlib.import_module(f"fhir.resources.R4B.{name.lower()}"), name)
    model.model_validate(resource)


@pytest.mark.parametrize("resource", RESOURCES, ids=key)
def test_every_demo_resource_passes_the_vault_write_validation(resource: dict[str, Any]) -> None:
    spec = RESOURCE_TYPES[resource["resourceType"]]
    assert spec.writable
    validate_resource(spec, resource)


def test_demo_ids_are_unique() -> None:
    ids = Counter(resource["id"] for resource in RESOURCES)
    assert [i for i, n in ids.items() if n > 1] == []


def test_every_demo_reference_is_relative_and_points_into_the_demo() -> None:
    known = {key(resource) for resource in RESOURCES}
    dangling = [(key(r), ref) for r in RESOURCES for ref in references(r) if ref not in known]
    assert dangling == []


def test_demo_resources_come_after_what_they_refer_to() -> None:
    seen: set[str] = set()
    for resource in RESOURCES:
        ahead = [ref for ref in references(resource) if ref not in seen]
        assert ahead == [], f"{key(resource)} refers to resources that come later: {ahead}"
        seen.add(key(resource))


def test_every_demo_bsn_is_a_test_number_that_passes_the_elfproef() -> None:
    bsns = [
        i["value"] for p in of_type("Patient") for i in p["identifier"] if i["system"] == BSN_SYSTEM
    ]
    assert len(bsns) == len(DEMO_PATIENT_IDS)
    assert len(set(bsns)) == len(bsns)
    for bsn in bsns:
        assert bsn.startswith("99999")
        assert passes_elfproef(bsn), bsn


def test_elfproef_check_rejects_a_wrong_check_digit() -> None:
    assert passes_elfproef("999990019")
    assert not passes_elfproef("999990018")


def test_demo_patient_ids_are_the_demo_patients() -> None:
    assert tuple(p["id"] for p in of_type("Patient")) == DEMO_PATIENT_IDS
    assert len(DEMO_PATIENT_IDS) >= 3


def test_every_compartment_resource_belongs_to_a_demo_patient() -> None:
    for resource in RESOURCES:
        if RESOURCE_TYPES[resource["resourceType"]].compartment is not None:
            assert patient_of(resource) in (*DEMO_PATIENT_IDS, DEMO_FAMILY_ID), key(resource)


def test_every_inwoner_has_a_plan_team_goals_scores_and_consents() -> None:
    for patient_id in DEMO_PATIENT_IDS:
        mine = Counter(
            r["resourceType"]
            for r in RESOURCES
            if r["resourceType"] not in ("Patient", "Group")
            and RESOURCE_TYPES[r["resourceType"]].compartment is not None
            and patient_of(r) == patient_id
        )
        assert mine["CarePlan"] == 1
        assert mine["CareTeam"] == 1
        assert 2 <= mine["Goal"] <= 4
        assert mine["RelatedPerson"] >= 1
        assert mine["Consent"] >= 1
        dates = {
            o["effectiveDateTime"] for o in of_type("Observation") if patient_of(o) == patient_id
        }
        assert len(dates) >= 2


def test_goals_are_the_inwoners_own_words_per_life_domain() -> None:
    for goal in of_type("Goal"):
        if in_family(goal):
            # A shared goal is the family's: "we", and no one member expressed it alone.
            assert goal["description"]["text"].startswith("We ")
            assert "expressedBy" not in goal
            continue
        assert goal["expressedBy"] == goal["subject"]
        assert goal["description"]["text"].startswith("Ik ")
        codings = [c for concept in goal["category"] for c in concept["coding"]]
        assert any(c["system"] == LEVENSDOMEIN and c["code"] in DOMAINS for c in codings)


def test_scores_are_self_assessed_whole_numbers_from_1_to_10() -> None:
    for observation in of_type("Observation"):
        assert observation["status"] == "final"
        assert observation["category"][0]["coding"][0]["code"] == "survey"
        coding = observation["code"]["coding"][0]
        assert (coding["system"], coding["code"] in DOMAINS) == (LEVENSDOMEIN, True)
        assert 1 <= observation["valueInteger"] <= 10
        assert observation["performer"] == [observation["subject"]]


def test_plans_hold_what_i_do_myself_and_what_professionals_agreed() -> None:
    for plan in of_type("CarePlan"):
        assert (plan["status"], plan["intent"]) == ("active", "plan")
        performers = {
            ref.split("/", 1)[0]
            for activity in plan["activity"]
            for ref in references(activity["detail"]["performer"])
        }
        assert "Patient" in performers
        # The family plan's agreements are the family's and its partners'; the network of
        # each member is in that member's own plan.
        assert "RelatedPerson" in performers or in_family(plan)
        assert performers & {"Organization", "Practitioner"}
        for activity in plan["activity"]:
            assert {"status", "scheduledPeriod", "description"} <= activity["detail"].keys()


def test_consents_permit_access_for_an_organization_until_an_end_date() -> None:
    for consent in of_type("Consent"):
        assert consent["status"] == "active"
        assert consent["scope"]["coding"][0]["code"] == "patient-privacy"
        provision = consent["provision"]
        assert provision["type"] == "permit"
        assert provision["period"]["end"]
        grantees = [a["reference"]["reference"].split("/")[0] for a in provision["actor"]]
        # One per organisation; Lotte (17) also lets her mother see her plan.
        assert grantees == ["Organization"] or consent["id"] == "demo-toestemming-lotte-sanne"
        assert [a["coding"][0]["code"] for a in provision["action"]] == ["access"]
        if consent["id"].startswith("demo-gezinsplan-"):
            (item,) = provision["data"]  # a member's grant of (part of) the family plan
            assert item["reference"]["reference"] in {key(r) for r in RESOURCES if in_family(r)}
            assert "class" not in provision
            continue
        assert all(c["code"] in RESOURCE_TYPES for c in provision["class"])


def test_demo_resources_are_built_fresh_on_every_call() -> None:
    first, second = demo_resources(), demo_resources()
    assert first == second
    first[0]["name"] = "changed"
    assert demo_resources() == second


def test_the_childrens_consents_are_signed_as_their_ages_ask() -> None:
    """Issue 17 (docs/family.md): on 4 December 2026 Mila is 8, Daan 13 and Lotte 17. Under
    12 a parent signs, 12 to 15 the child and a parent, from 16 the child alone; on Mila's
    12th birthday the demo signs her Consents with her too."""
    at = int(datetime(2026, 12, 4, 12, tzinfo=UTC).timestamp()) * 1_000_000
    signed = {
        c["id"]: [p["reference"] for p in c["performer"]]
        for c in demo_resources(at)
        if c["resourceType"] == "Consent"
    }
    assert signed["demo-toestemming-mila-sociaal-team"] == ["RelatedPerson/demo-netwerk-mila-sanne"]
    assert signed["demo-toestemming-daan-mee"] == [
        "Patient/demo-inwoner-daan",
        "RelatedPerson/demo-netwerk-daan-sanne",
    ]
    assert signed["demo-toestemming-lotte-ggz"] == ["Patient/demo-inwoner-lotte"]
    assert signed["demo-toestemming-lotte-sanne"] == ["Patient/demo-inwoner-lotte"]
    assert signed["demo-toestemming-sanne-sociaal-team"] == ["Patient/demo-inwoner-sanne"]
    twelve = int(datetime(2030, 4, 14, 22, tzinfo=UTC).timestamp()) * 1_000_000
    later = {c["id"]: c for c in demo_resources(twelve) if c["resourceType"] == "Consent"}
    assert [p["reference"] for p in later["demo-toestemming-mila-sociaal-team"]["performer"]] == [
        "Patient/demo-inwoner-mila",
        "RelatedPerson/demo-netwerk-mila-sanne",
    ]


def test_the_family_has_one_plan_with_shared_goals_a_regisseur_and_members_grants() -> None:
    """Issue 17 item 1 and 5 (docs/family.md section 6): the Group of all five, the family
    CarePlan, its shared goals and agreements, the regisseur the family chose, and who
    lets whom see it: Sanne, Erik and Daan (signed with his mother, 13) the sociaal team;
    Lotte nothing of it."""
    at = int(datetime(2026, 12, 4, 12, tzinfo=UTC).timestamp()) * 1_000_000
    resources = demo_resources(at)
    (group,) = [r for r in resources if r["resourceType"] == "Group"]
    assert group["id"] == DEMO_FAMILY_ID
    assert [m["entity"]["reference"] for m in group["member"]] == [
        f"Patient/{p}" for p in DEMO_PATIENT_IDS
    ]
    family = [r for r in resources if in_family(r) and r["resourceType"] != "Group"]
    assert Counter(r["resourceType"] for r in family) == {"Goal": 3, "CareTeam": 1, "CarePlan": 1}
    (plan,) = [r for r in family if r["resourceType"] == "CarePlan"]
    assert plan["subject"] == {"reference": f"Group/{DEMO_FAMILY_ID}"}
    goals = [g["reference"] for g in plan["goal"]]
    shared = [key(r) for r in family if r["resourceType"] == "Goal"]
    assert goals[:3] == shared
    # One own goal of each member, in the member's own compartment.
    assert len(goals) == 3 + len(DEMO_PATIENT_IDS)
    assert len(plan["activity"]) >= 3 and plan["note"]
    (team,) = [r for r in family if r["resourceType"] == "CareTeam"]
    regisseurs = [p for p in team["participant"] if p["role"][0]["text"] == "regisseur"]
    assert [p["member"]["reference"] for p in regisseurs] == ["Practitioner/demo-regisseur-anouk"]
    grants = {
        c["id"]: c
        for c in resources
        if c["resourceType"] == "Consent" and c["id"].startswith("demo-gezinsplan-")
    }
    assert sorted(grants) == [
        "demo-gezinsplan-daan-sociaal-team",
        "demo-gezinsplan-erik-sociaal-team",
        "demo-gezinsplan-sanne-sociaal-team",
    ]
    assert [p["reference"] for p in grants["demo-gezinsplan-daan-sociaal-team"]["performer"]] == [
        "Patient/demo-inwoner-daan",
        "RelatedPerson/demo-netwerk-daan-sanne",
    ]
    assert grants["demo-gezinsplan-sanne-sociaal-team"]["provision"]["data"] == [
        {"meaning": "related", "reference": {"reference": "CarePlan/demo-gezinsplan"}}
    ]
