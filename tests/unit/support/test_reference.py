"""The independent reference (``tests/support/reference.py``) on hand-picked cases.

The property tests compare the vault with the reference; these cases pin down what the
reference itself says, from FHIR R4 Consent and SMART scopes, so that the two cannot drift
apart together.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.support.reference import Caller, Record, World, scope_letters

NOW = 1_800_000_000_000_000  # 2027-01-15, microseconds
CONF = "http://terminology.hl7.org/CodeSystem/v3-Confidentiality"
MEE = "Organization/mee"
GGZ = "Organization/ggz"


def _actor(ref: str) -> dict[str, Any]:
    return {"reference": {"reference": ref}}


def _consent(provision: dict[str, Any], *, status: str = "active") -> dict[str, Any]:
    return {"resourceType": "Consent", "status": status, "provision": provision}


def _world(*consents: dict[str, Any]) -> World:
    world = World()
    world.add(Record("Patient", "p", "p", [{"resourceType": "Patient", "id": "p"}]))
    world.add(Record("Goal", "g", "p", [{"resourceType": "Goal", "id": "g"}]))
    labelled = {
        "resourceType": "Goal",
        "id": "r",
        "meta": {"security": [{"system": CONF, "code": "R"}]},
    }
    world.add(Record("Goal", "r", "p", [labelled]))
    plan = {"resourceType": "CarePlan", "id": "c", "goal": [{"reference": "Goal/g"}]}
    world.add(Record("CarePlan", "c", "p", [plan]))
    world.add(Record("Goal", "other", "q", [{"resourceType": "Goal", "id": "other"}]))
    world.add(Record("Organization", "mee", None, [{"resourceType": "Organization"}]))
    for n, body in enumerate(consents):
        world.add(Record("Consent", f"k{n}", "p", [body]))
    return world


MEE_CALLER = Caller("mee", "system", grantees=frozenset({MEE}), scopes=("system/*.rs",))
PERMIT_GOALS = {
    "type": "permit",
    "actor": [_actor(MEE)],
    "action": [{"coding": [{"code": "access"}]}],
    "class": [{"code": "Goal"}],
}


def _sees(world: World, ref: str, caller: Caller = MEE_CALLER) -> bool:
    record = world.get(ref)
    assert record is not None
    return world.sees(caller, record, now=NOW)


def test_deny_by_default_and_the_shared_directory() -> None:
    world = _world()
    assert not _sees(world, "Goal/g")
    assert _sees(world, "Organization/mee")


def test_a_class_permit_covers_that_type_of_that_inwoner_only() -> None:
    world = _world(_consent(PERMIT_GOALS))
    assert _sees(world, "Goal/g") and _sees(world, "Goal/r")
    assert not _sees(world, "CarePlan/c")
    assert not _sees(world, "Goal/other")


def test_an_inactive_consent_grants_nothing_but_still_names_its_actor() -> None:
    world = _world(_consent(PERMIT_GOALS, status="inactive"))
    assert not _sees(world, "Goal/g")
    assert _sees(world, "Consent/k0")


def test_a_nested_deny_by_label_cuts_out_of_its_own_consent_only() -> None:
    deny = {"type": "deny", "securityLabel": [{"system": CONF, "code": "R"}]}
    world = _world(_consent({**PERMIT_GOALS, "provision": [deny]}))
    assert _sees(world, "Goal/g") and not _sees(world, "Goal/r")
    both = _world(_consent({**PERMIT_GOALS, "provision": [deny]}), _consent(PERMIT_GOALS))
    assert _sees(both, "Goal/r")


def test_related_data_is_the_named_resource_and_what_it_refers_to() -> None:
    permit = {
        **PERMIT_GOALS,
        "data": [{"meaning": "related", "reference": {"reference": "CarePlan/c"}}],
    }
    permit.pop("class")
    world = _world(_consent(permit))
    assert _sees(world, "CarePlan/c") and _sees(world, "Goal/g")
    assert not _sees(world, "Goal/r")
    plan = world.get("CarePlan/c")
    assert plan is not None
    plan.versions.append(None)  # deleted: what it referred to no longer counts
    assert not _sees(world, "Goal/g")


def test_related_data_never_grows_by_a_later_write_of_the_named_resource() -> None:
    permit = {
        **PERMIT_GOALS,
        "data": [{"meaning": "related", "reference": {"reference": "CarePlan/c"}}],
    }
    permit.pop("class")
    world = _world(_consent(permit))
    plan = world.get("CarePlan/c")
    assert plan is not None
    widened = {**plan.last_live(), "goal": [{"reference": "Goal/g"}, {"reference": "Goal/r"}]}
    plan.versions.append(widened)
    world.written(plan)
    assert _sees(world, "Goal/g") and not _sees(world, "Goal/r")
    consent = world.get("Consent/k0")
    assert consent is not None
    consent.versions.append(dict(consent.last_live()))  # she writes her Consent again
    world.written(consent)
    assert _sees(world, "Goal/r")


@pytest.mark.parametrize(
    ("period", "visible"),
    [
        ({"end": "2027-01-14"}, False),
        ({"end": "2027-01-15"}, True),  # a date ends at the end of that day
        ({"start": "2027-01-16"}, False),
        ({"start": "2027-01-14", "end": "2027-01-20T00:00:00Z"}, True),
    ],
)
def test_periods(period: dict[str, str], visible: bool) -> None:
    world = _world(_consent({**PERMIT_GOALS, "period": period}))
    assert _sees(world, "Goal/g") is visible


def test_a_purpose_must_be_the_callers() -> None:
    world = _world(_consent({**PERMIT_GOALS, "purpose": [{"code": "TREAT"}]}))
    assert not _sees(world, "Goal/g")
    treating = Caller(
        "mee",
        "system",
        grantees=frozenset({MEE}),
        purposes=frozenset({"TREAT"}),
        scopes=("system/*.rs",),
    )
    assert _sees(world, "Goal/g", treating)


def test_another_organisation_and_missing_scopes_see_nothing() -> None:
    world = _world(_consent(PERMIT_GOALS))
    ggz = Caller("ggz", "system", grantees=frozenset({GGZ}), scopes=("system/*.rs",))
    narrow = Caller("mee", "system", grantees=frozenset({MEE}), scopes=("system/CarePlan.rs",))
    assert not _sees(world, "Goal/g", ggz)
    assert not _sees(world, "Goal/g", narrow)


def test_an_app_sees_its_own_compartment_within_its_scopes() -> None:
    world = _world()
    app = Caller("app", "patient", patient_id="p", scopes=("patient/Goal.read",))
    assert _sees(world, "Goal/r", app) and not _sees(world, "Goal/other", app)
    assert not _sees(world, "CarePlan/c", app)


def test_scope_letters_read_v1_v2_and_granular_scopes() -> None:
    found = scope_letters(
        ["patient/Goal.read", "patient/CarePlan.cruds", "patient/Observation.rs?category=x|y"],
        context="patient",
    )
    assert found == {
        "Goal": ("rs", None),
        "CarePlan": ("cdrsu", None),
        "Observation": ("rs", "category=x|y"),
    }
