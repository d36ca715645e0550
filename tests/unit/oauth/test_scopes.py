"""SMART scopes: grammar, narrowing to a client's registration, and permissions."""

from __future__ import annotations

import pytest

from vault.oauth.scopes import (
    InvalidScope,
    ResourceScope,
    grant_scopes,
    parse_scope,
    permissions_from,
)
from vault.store.registry import RESOURCE_TYPES

TYPES = tuple(RESOURCE_TYPES)


@pytest.mark.parametrize(
    ("text", "letters"),
    [
        ("patient/Goal.read", "rs"),
        ("patient/Goal.write", "cud"),
        ("system/CarePlan.rs", "rs"),
        ("patient/*.cruds", "cruds"),
        ("patient/Observation.r", "r"),
        ("user/Goal.*", "cruds"),
    ],
)
def test_v1_and_v2_permissions_are_read_as_letters(text: str, letters: str) -> None:
    scope = parse_scope(text, known_types=TYPES)
    assert isinstance(scope, ResourceScope)
    assert scope.permissions == frozenset(letters)


@pytest.mark.parametrize(
    "text",
    [
        "patient/Goal.sr",
        "patient/Goal.",
        "patient/Unknown.rs",
        "admin/Goal.rs",
        "Goal.rs",
        "patient/*.rs?category=x",
        "patient/Goal.rs?",
        "launch",
    ],
)
def test_scopes_outside_the_grammar_are_refused(text: str) -> None:
    with pytest.raises(InvalidScope):
        parse_scope(text, known_types=TYPES)


def test_identity_scopes_pass_as_strings() -> None:
    for text in ("openid", "fhirUser", "launch/patient", "offline_access"):
        assert parse_scope(text, known_types=TYPES) == text


def test_granular_query_is_kept_sorted() -> None:
    scope = parse_scope("patient/Observation.rs?code=b&category=survey", known_types=TYPES)
    assert isinstance(scope, ResourceScope)
    assert scope.query == (("category", "survey"), ("code", "b"))


@pytest.mark.parametrize(
    "text",
    [
        "system/Goal.rs?_count=5",
        "patient/Observation.rs?category=survey&_include=Observation:patient",
        "system/Goal.rs?_revinclude:iterate=Provenance:target",
        "system/Goal.rs?_sort=-date&_summary=count",
    ],
)
def test_a_scopes_query_takes_search_parameters_only(text: str) -> None:
    """``_count`` or ``_include`` would narrow nothing: the scope would let every resource
    of its type through while reading as a restriction."""
    with pytest.raises(InvalidScope, match="search parameters only"):
        parse_scope(text, known_types=TYPES)


def test_a_scope_granted_before_the_rule_grants_nothing_now() -> None:
    """A token or registration from before a scope's query had to hold search parameters
    only: that scope is left out (deny by default), the others still count."""
    permissions = permissions_from(
        ["system/Goal.rs?_count=5", "system/CarePlan.rs"], context="system", known_types=TYPES
    )
    assert not permissions.allows("r", "Goal")
    assert permissions.allows("r", "CarePlan")


def test_a_token_is_never_wider_than_the_registration() -> None:
    registered = ["system/Goal.rs", "system/CarePlan.read"]
    assert grant_scopes(["system/Goal.rs", "system/CarePlan.s"], registered, known_types=TYPES) == [
        "system/Goal.rs",
        "system/CarePlan.s",
    ]
    with pytest.raises(InvalidScope):
        grant_scopes(["system/Goal.cruds"], registered, known_types=TYPES)
    with pytest.raises(InvalidScope):
        grant_scopes(["system/*.rs"], registered, known_types=TYPES)
    with pytest.raises(InvalidScope):
        grant_scopes(["patient/Goal.rs"], registered, known_types=TYPES)
    with pytest.raises(InvalidScope):
        grant_scopes(["offline_access"], registered, known_types=TYPES)


def test_wildcard_registration_covers_one_type_and_granular_queries() -> None:
    registered = ["patient/*.rs"]
    assert grant_scopes(
        ["patient/Observation.rs?category=survey"], registered, known_types=TYPES
    ) == ["patient/Observation.rs?category=survey"]


def test_a_granular_registration_does_not_cover_the_whole_type() -> None:
    with pytest.raises(InvalidScope):
        grant_scopes(
            ["patient/Observation.rs"],
            ["patient/Observation.rs?category=survey"],
            known_types=TYPES,
        )


def test_permissions_fold_scopes_of_one_context() -> None:
    perms = permissions_from(
        ["patient/Goal.rs", "patient/Goal.u", "system/CarePlan.rs", "openid"],
        context="patient",
        known_types=TYPES,
    )
    assert perms.allows("r", "Goal")
    assert perms.allows("u", "Goal")
    assert not perms.allows("d", "Goal")
    assert not perms.allows("r", "CarePlan")
    assert perms.types_with("r") == frozenset({"Goal"})


def test_wildcard_permissions_cover_every_type() -> None:
    perms = permissions_from(["patient/*.rs"], context="patient", known_types=TYPES)
    assert perms.allows("s", "Consent")
    assert perms.types_with("r") is None


def test_granular_reads_carry_their_queries_unless_an_open_scope_covers_the_type() -> None:
    narrow = permissions_from(
        ["patient/Observation.rs?category=survey"], context="patient", known_types=TYPES
    )
    assert narrow.queries == {"Observation": ((("category", "survey"),),)}
    widened = permissions_from(
        ["patient/Observation.rs?category=survey", "patient/*.rs"],
        context="patient",
        known_types=TYPES,
    )
    assert widened.queries == {}
