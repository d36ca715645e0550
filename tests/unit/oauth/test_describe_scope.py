"""describe_scope: each scope in plain Dutch, for the page where the inwoner says yes or no."""

from __future__ import annotations

import pytest

from vault.oauth.router import describe_scope
from vault.store.registry import RESOURCE_TYPES


@pytest.mark.parametrize(
    ("scope", "words"),
    [
        ("patient/Goal.r", "je doelen bekijken"),
        ("patient/Goal.s", "je doelen bekijken"),
        ("patient/Goal.rs", "je doelen bekijken"),
        ("patient/Goal.c", "je doelen toevoegen"),
        ("patient/Goal.u", "je doelen veranderen"),
        ("patient/Goal.d", "je doelen weghalen"),
        ("patient/Goal.cu", "je doelen toevoegen en veranderen"),
        ("patient/Goal.cruds", "je doelen bekijken, toevoegen, veranderen en weghalen"),
        ("patient/CarePlan.rs", "je plan bekijken"),
        ("patient/Observation.rs", "je scores bekijken"),
    ],
)
def test_v2_permissions_become_dutch_verbs_in_cruds_order(scope: str, words: str) -> None:
    assert describe_scope(scope) == words


def test_v1_read_and_write_say_the_same_as_their_v2_letters() -> None:
    assert describe_scope("patient/Goal.read") == describe_scope("patient/Goal.rs")
    assert describe_scope("patient/Goal.write") == describe_scope("patient/Goal.cud")
    assert describe_scope("patient/Goal.*") == describe_scope("patient/Goal.cruds")


def test_wildcard_type_means_all_your_data() -> None:
    assert describe_scope("patient/*.rs") == "al je gegevens bekijken"
    assert describe_scope("patient/*.cruds") == (
        "al je gegevens bekijken, toevoegen, veranderen en weghalen"
    )


def test_granular_scope_says_it_is_only_a_part() -> None:
    line = describe_scope("patient/Observation.rs?category=survey")
    assert line == "je scores (een deel daarvan) bekijken"
    assert line != describe_scope("patient/Observation.rs")


@pytest.mark.parametrize("type_name", sorted(RESOURCE_TYPES))
def test_every_resource_type_is_named_in_dutch_not_by_its_fhir_name(type_name: str) -> None:
    line = describe_scope(f"patient/{type_name}.rs")
    assert line is not None
    assert line.endswith(" bekijken")
    assert type_name not in line


def test_identity_scopes_that_matter_to_the_inwoner_are_explained() -> None:
    assert describe_scope("openid") == "weten wie je bent"
    offline = describe_scope("offline_access")
    assert offline is not None
    assert "niet bent ingelogd" in offline


@pytest.mark.parametrize("scope", ["fhirUser", "launch/patient", "online_access"])
def test_scopes_that_add_no_access_of_their_own_get_no_line(scope: str) -> None:
    assert describe_scope(scope) is None


@pytest.mark.parametrize(
    "scope",
    ["", "launch", "patient/Unknown.rs", "patient/Goal.sr", "patient/Goal.", "admin/Goal.rs"],
)
def test_what_is_not_a_supported_scope_gets_no_line(scope: str) -> None:
    assert describe_scope(scope) is None
