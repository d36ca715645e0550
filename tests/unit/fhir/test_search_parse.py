"""Parsing FHIR search parameters into a SearchQuery, without a database."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Sequence

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sqlalchemy.sql import ClauseElement

from vault.fhir.search import Cursor, SearchQuery, cursor_secret, parse_search
from vault.kernel.crypto import BlindIndex
from vault.kernel.errors import BadRequest
from vault.store.registry import RESOURCE_TYPES

BLIND = BlindIndex(b"k" * 32)
SECRET = cursor_secret(BLIND)


def parse(
    type_name: str, params: Sequence[tuple[str, str]], *, lenient: bool = False
) -> SearchQuery:
    return parse_search(
        RESOURCE_TYPES[type_name],
        params,
        blind=BLIND,
        lenient=lenient,
        default_count=20,
        max_count=500,
        registry=RESOURCE_TYPES,
    )


def bound_values(query: SearchQuery) -> list[object]:
    """The values bound into the query's conditions, in order."""
    values: list[object] = []
    for condition in query.where():
        assert isinstance(condition, ClauseElement)
        values.extend(condition.compile().params.values())
    return values


def refused(type_name: str, params: Sequence[tuple[str, str]], **kw: bool) -> BadRequest:
    with pytest.raises(BadRequest) as raised:
        parse(type_name, params, **kw)
    return raised.value


def test_token_code_is_matched_by_its_blind_hash_never_in_clear() -> None:
    values = bound_values(parse("Patient", [("identifier", "999990019")]))
    assert BLIND.token("999990019") in values
    assert "999990019" not in values


def test_token_system_and_code() -> None:
    values = bound_values(parse("Goal", [("category", "http://s|financien")]))
    assert "http://s" in values
    assert BLIND.token("financien") in values


def test_escaped_comma_is_part_of_the_value() -> None:
    values = bound_values(parse("Goal", [("category", r"a\,b")]))
    assert BLIND.token("a,b") in values
    assert BLIND.token("a") not in values


def test_unescaped_comma_means_or() -> None:
    query = parse("Goal", [("category", "a,b")])
    assert len(query.where()) == 1
    values = bound_values(query)
    assert BLIND.token("a") in values
    assert BLIND.token("b") in values


def test_escaped_pipe_is_part_of_the_code() -> None:
    values = bound_values(parse("Patient", [("identifier", r"urn:x|a\|b")]))
    assert "urn:x" in values
    assert BLIND.token("a|b") in values


def test_escaped_comma_after_a_system() -> None:
    values = bound_values(parse("Goal", [("category", r"http://s|a\,b,c")]))
    assert BLIND.token("a,b") in values
    assert BLIND.token("c") in values


def test_escaped_backslash_is_one_backslash() -> None:
    values = bound_values(parse("Goal", [("category", "a\\\\,b")]))
    assert BLIND.token("a\\") in values
    assert BLIND.token("b") in values


def test_repeated_parameter_means_and() -> None:
    query = parse("Goal", [("category", "a"), ("category", "b")])
    assert len(query.where()) == 2


@pytest.mark.parametrize("value", ["", "a,", ",a", "a,,b"])
def test_empty_token_values_are_refused(value: str) -> None:
    assert refused("Goal", [("category", value)]).expression == ["category"]


def test_a_token_with_two_pipes_is_refused() -> None:
    assert refused("Goal", [("category", "a|b|c")]).expression == ["category"]


@pytest.mark.parametrize("modifier", ["not", "text", "missing", "exact"])
def test_token_modifiers_are_refused(modifier: str) -> None:
    assert "category" in refused("Goal", [(f"category:{modifier}", "a")]).expression


def test_unknown_parameter_is_refused_and_named() -> None:
    error = refused("Goal", [("colour", "blue")])
    assert error.expression == ["colour"]
    assert "colour" in error.diagnostics


def test_unknown_result_parameter_is_refused() -> None:
    assert refused("Goal", [("_contained", "true")]).expression == ["_contained"]


def test_lenient_handling_ignores_unknown_parameters() -> None:
    query = parse(
        "Goal", [("colour", "blue"), ("status:x", "y"), ("_contained", "true")], lenient=True
    )
    assert query.ignored == ["colour", "status:x", "_contained"]
    assert query.applied == []
    assert query.where() == []


def test_lenient_handling_still_refuses_a_bad_value_of_a_known_parameter() -> None:
    refused("Goal", [("start-date", "soon")], lenient=True)
    refused("Goal", [("_count", "many")], lenient=True)
    refused("Goal", [("category:not", "a")], lenient=True)


def test_applied_parameters_are_kept_in_order_for_the_links() -> None:
    params = [("patient", "p1"), ("_count", "5"), ("category", "a,b"), ("_sort", "-_lastUpdated")]
    assert parse("Goal", params).applied == params


def test_format_and_pretty_are_accepted_and_left_out() -> None:
    query = parse("Goal", [("_format", "json"), ("_pretty", "true")])
    assert query.applied == []


@pytest.mark.parametrize(
    ("value", "expected"),
    [("0", 0), ("7", 7), ("007", 7), ("500", 500), ("100000", 500), ("9" * 18, 500)],
)
def test_count_is_capped_at_the_maximum(value: str, expected: int) -> None:
    assert parse("Goal", [("_count", value)]).count == expected


def test_count_defaults_to_the_page_size() -> None:
    assert parse("Goal", []).count == 20


@pytest.mark.parametrize(
    "value", ["-1", "1.5", "x", "", "²", "١٢", pytest.param("9" * 5000, id="5000-digits")]
)
def test_count_must_be_a_whole_number(value: str) -> None:
    assert refused("Goal", [("_count", value)]).expression == ["_count"]


@pytest.mark.parametrize(
    ("value", "key", "descending"),
    [
        ("_lastUpdated", "_lastUpdated", False),
        ("-_lastUpdated", "_lastUpdated", True),
        ("date", "date", False),
        ("-date", "date", True),
        ("_id", "_id", False),
    ],
)
def test_sort_keys(value: str, key: str, descending: bool) -> None:
    query = parse("CarePlan", [("_sort", value)])
    assert (query.sort, query.descending) == (key, descending)


@pytest.mark.parametrize(
    ("type_name", "value"),
    [
        ("CarePlan", "status"),
        ("CarePlan", "date,_id"),
        ("CarePlan", ""),
        ("CarePlan", "--date"),
        ("Goal", "date"),  # Goal has no date parameter
        ("CarePlan", "+date"),
    ],
)
def test_sort_errors(type_name: str, value: str) -> None:
    assert refused(type_name, [("_sort", value)]).expression == ["_sort"]


def test_total_and_summary() -> None:
    assert parse("Goal", [("_total", "none")]).total == "none"
    assert parse("Goal", [("_summary", "count")]).summary_count is True
    assert parse("Goal", [("_summary", "false")]).summary_count is False
    refused("Goal", [("_total", "some")])
    refused("Goal", [("_summary", "some")])
    assert parse("Goal", [("_summary", "text")]).subset.summary == "text"


def test_elements_names_top_level_elements_of_the_type() -> None:
    query = parse("Observation", [("_elements", "status,value, subject")])
    assert query.subset.elements == {"status", "value", "subject"}
    assert refused("Observation", [("_elements", "colour")]).expression == ["_elements"]
    refused("Observation", [("_elements", ",")])
    # A known parameter with a wrong value is an error under lenient handling too.
    refused("Observation", [("_elements", "colour")], lenient=True)
    refused("Goal", [("_elements", "id"), ("_summary", "true")])
    # fhirpy's .elements() always adds resourceType; it is kept anyway.
    assert parse("Goal", [("_elements", "resourceType,id")]).subset.elements == {
        "resourceType",
        "id",
    }


def test_includes_name_a_reference_parameter() -> None:
    query = parse(
        "CarePlan",
        [("_include", "CarePlan:goal"), ("_include", "CarePlan:care-team:CareTeam")],
    )
    assert [(i.param.name, i.target_type) for i in query.includes] == [
        ("goal", None),
        ("care-team", "CareTeam"),
    ]
    query = parse("Goal", [("_revinclude", "Provenance:target")])
    assert [(i.source_type, i.param.name) for i in query.revincludes] == [("Provenance", "target")]


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("_include", "Goal:patient"),  # not the searched type
        ("_include", "CarePlan:status"),  # not a reference
        ("_include", "CarePlan:nothing"),
        ("_include", "CarePlan"),
        ("_include", "CarePlan:goal:Patient"),  # goal never points at a Patient
        ("_include", "Unknown:goal"),
        ("_include:iterate", "CarePlan:goal"),
        ("_revinclude", "Provenance"),
    ],
)
def test_include_errors(name: str, value: str) -> None:
    refused("CarePlan", [(name, value)])


def test_a_compartment_condition_waits_until_asked_for() -> None:
    """``Goal?patient=`` answers its first page with a compiled statement: the parse keeps
    the inwoner's id, and builds ``patient_id = id`` only in ``where()``."""
    query = parse("Goal", [("patient", "Patient/p-1")])
    assert (query.built, query.inwoners, query.compartment) == ([], ["p-1"], "p-1")
    assert bound_values(query) == ["p-1"]
    with_id = parse("Goal", [("patient", "p-1"), ("_id", "g-1")])
    assert with_id.compartment is None  # two conditions: the generic search
    assert len(with_id.where()) == 2


def test_reference_forms_are_accepted() -> None:
    for value in ["p-1", "Patient/p-1", "https://x.example/fhir/Patient/p-1"]:
        assert len(parse("Goal", [("patient", value)]).where()) == 1
    parse("CarePlan", [("care-team:CareTeam", "ct-1")])


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("patient:Organization", "p-1"),  # not a target of patient
        ("care-team:Goal", "x"),
        ("care-team:CareTeam", "Goal/x"),  # modifier and type disagree
        ("patient", "not an id!"),
        ("patient:missing", "true"),
    ],
)
def test_reference_errors(name: str, value: str) -> None:
    refused("CarePlan", [(name, value)])


@pytest.mark.parametrize(
    "value", ["2026", "ge2026-11", "lt2026-11-01", "sa2026-11-01T10:00:00Z", "ap2026", "ne2026"]
)
def test_date_values_with_prefixes(value: str) -> None:
    assert len(parse("CarePlan", [("date", value)]).where()) == 1


@pytest.mark.parametrize("value", ["2026-02-30", "xx2026", "gt", "soon", "2026-11-01T10"])
def test_invalid_dates_are_refused(value: str) -> None:
    assert refused("CarePlan", [("date", value)]).expression == ["date"]
    refused("CarePlan", [("_lastUpdated", value)])


@pytest.mark.parametrize("value", ["", "a b", "x" * 65, "a,b/c"])
def test_invalid_ids_are_refused(value: str) -> None:
    if value == "":
        # An empty _id matches nothing rather than everything.
        assert len(parse("Goal", [("_id", value)]).where()) == 1
        return
    refused("Goal", [("_id", value)])


@pytest.mark.parametrize(
    "cursor",
    [
        Cursor(key=None, pk=17, backward=False),
        Cursor(key=1_790_000_000_000_000, pk=3, backward=True),
        Cursor(key="goal-1", pk=2**40, backward=False),
    ],
)
def test_cursor_round_trip(cursor: Cursor) -> None:
    text = cursor.encode(secret=SECRET)
    assert text.isascii() and "=" not in text and "/" not in text and "+" not in text
    assert Cursor.decode(text, secret=SECRET) == cursor
    # Opaque: the row number is not readable from the cursor (issue 12 B9).
    assert str(cursor.pk).encode() not in base64.urlsafe_b64decode(text + "==")
    assert Cursor.decode(cursor.encode(secret=SECRET), secret=SECRET) == cursor


def _raw(value: object) -> str:
    """``value`` sealed as the vault seals a cursor: only its content is wrong."""
    raw = json.dumps(value).encode()
    nonce = hmac.new(SECRET, raw, hashlib.sha256).digest()[:12]
    sealed = nonce + AESGCM(SECRET).encrypt(nonce, raw, b"_cursor")
    return base64.urlsafe_b64encode(sealed).decode().rstrip("=")


@pytest.mark.parametrize(
    "text",
    [
        "",
        "!!!",
        "bm9wZQ",  # "nope"
        _raw({"key": 1, "pk": 2, "backward": 0}),
        _raw([1, 2]),
        _raw([1, "2", 0]),
        _raw([1.5, 2, 0]),
        _raw([[1], 2, 0]),
        _raw([True, 2, 0]),
        _raw([1, True, 0]),
        _raw([1, 2**63, 0]),
        _raw([1, 2**64 - 1, 0]),
        _raw([2**63, 2, 0]),
        _raw([1, 2**70, 0]),
        _raw(["x" * 1000, 2, 0]),
        "é",
        Cursor(key=None, pk=1, backward=False).encode(secret=bytes(32)),  # another vault's
        base64.urlsafe_b64encode(b"[1, 2, 0]").decode(),  # the old, readable form
    ],
)
def test_a_tampered_cursor_is_refused(text: str) -> None:
    with pytest.raises(BadRequest) as raised:
        Cursor.decode(text, secret=SECRET)
    assert raised.value.expression == ["_cursor"]


@pytest.mark.parametrize(
    ("sort", "key"),
    [("_lastUpdated", "text"), ("_id", 5), (None, 5), ("date", None), ("-_lastUpdated", None)],
)
def test_a_cursor_must_fit_the_sort(sort: str | None, key: object) -> None:
    cursor = Cursor(key=key, pk=1, backward=False).encode(secret=SECRET)  # type: ignore[arg-type]
    params = [("_cursor", cursor)] + ([("_sort", sort)] if sort else [])
    assert refused("CarePlan", params).expression == ["_cursor"]


def test_a_cursor_that_fits_the_sort_is_taken() -> None:
    cursor = Cursor(key=5, pk=1, backward=True)
    query = parse("CarePlan", [("_sort", "date"), ("_cursor", cursor.encode(secret=SECRET))])
    assert query.cursor == cursor
    assert ("_cursor", cursor.encode(secret=SECRET)) not in query.applied


@pytest.mark.parametrize(
    "name",
    [
        "_id:not",
        "_id:missing",
        "_lastUpdated:missing",
        "_count:x",
        "_sort:desc",
        "_revinclude:iterate",
    ],
)
def test_modifiers_on_result_parameters_are_refused(name: str) -> None:
    value = {"_count": "1", "_sort": "_id", "_revinclude": "Provenance:target"}.get(
        name.split(":")[0], "x"
    )
    assert refused("Goal", [(name, value)]).expression == [name.split(":")[0]]
    refused("Goal", [(name, value)], lenient=True)
