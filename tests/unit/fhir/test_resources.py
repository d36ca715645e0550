"""The registry of resource types: date ranges, references, validation and extraction."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vault.fhir.resources import validate_resource
from vault.kernel.errors import BadRequest
from vault.kernel.fhirdata import MAX_MICROS, format_instant, parse_date_range, split_reference
from vault.store.registry import RESOURCE_TYPES, TokenValue


def micros(*args: int, tz: object = UTC) -> int:
    moment = datetime(*args, tzinfo=tz)  # type: ignore[arg-type,misc]
    return int(moment.timestamp()) * 1_000_000 + moment.microsecond


def test_a_year_is_the_whole_year() -> None:
    assert parse_date_range("2026") == (micros(2026, 1, 1), micros(2027, 1, 1))


@pytest.mark.parametrize(
    ("text", "start", "end"),
    [
        ("2026-11", (2026, 11, 1), (2026, 12, 1)),
        ("2026-12", (2026, 12, 1), (2027, 1, 1)),
        ("2024-02", (2024, 2, 1), (2024, 3, 1)),
    ],
)
def test_a_month_is_the_whole_month(
    text: str, start: tuple[int, int, int], end: tuple[int, int, int]
) -> None:
    assert parse_date_range(text) == (micros(*start), micros(*end))


def test_a_day_is_the_whole_day() -> None:
    assert parse_date_range("2024-02-29") == (micros(2024, 2, 29), micros(2024, 3, 1))


def test_a_datetime_with_zone_is_that_second_in_utc() -> None:
    low, high = parse_date_range("2026-11-01T10:00:00+01:00")
    assert low == micros(2026, 11, 1, 9, 0, 0)
    assert high - low == 1_000_000
    assert parse_date_range("2026-11-01T10:00:00Z") == (
        micros(2026, 11, 1, 10),
        micros(2026, 11, 1, 10, 0, 1),
    )
    assert parse_date_range("2026-11-01T10:00:00-02:30")[0] == micros(2026, 11, 1, 12, 30)


def test_a_datetime_without_zone_is_read_as_utc() -> None:
    assert parse_date_range("2026-11-01T10:00:00") == parse_date_range("2026-11-01T10:00:00Z")


def test_a_datetime_without_seconds_is_that_minute() -> None:
    low, high = parse_date_range("2026-11-01T10:00Z")
    assert (low, high) == (micros(2026, 11, 1, 10), micros(2026, 11, 1, 10, 1))


@pytest.mark.parametrize(
    ("text", "width"),
    [
        ("2026-11-01T10:00:00.1Z", 100_000),
        ("2026-11-01T10:00:00.123Z", 1_000),
        ("2026-11-01T10:00:00.123456Z", 1),
        ("2026-11-01T10:00:00.123456789Z", 1),
    ],
)
def test_fractional_seconds_narrow_the_range(text: str, width: int) -> None:
    low, high = parse_date_range(text)
    digits = text.split(".")[1].rstrip("Z")
    assert low == micros(2026, 11, 1, 10) + int((digits + "000000")[:6])
    assert high - low == width


def test_more_than_nine_fractional_digits_are_allowed() -> None:
    # FHIR's instant and dateTime allow any number of digits; R4B models accept them.
    low, high = parse_date_range("2026-11-01T10:00:00.1234567891Z")
    assert (low, high) == (micros(2026, 11, 1, 10) + 123456, micros(2026, 11, 1, 10) + 123457)


def test_a_leap_second_is_a_valid_second() -> None:
    low, high = parse_date_range("2016-12-31T23:59:60Z")
    assert micros(2016, 12, 31, 23, 59, 59) <= low < high <= micros(2017, 1, 1, 0, 0, 1)


@pytest.mark.parametrize(
    "text", ["9999", "9999-12", "9999-12-31", "9999-12-31T23:59:59Z", "9999-12-31T23:59:59-05:00"]
)
def test_the_last_dates_of_the_calendar_end_at_the_open_end(text: str) -> None:
    low, high = parse_date_range(text)
    assert low < high <= MAX_MICROS


@pytest.mark.parametrize(
    "text",
    [
        "2026-02-30",
        "2026-13",
        "2026-00-10",
        "2025-02-29",
        "2026-11-01T25:00:00Z",
        "2026-11-01T10:61:00Z",
        "2026-11-01T10:00:61Z",
        "2026-11-01T10:00:00+25:00",
        "26",
        "2026-1-1",
        "2026-11-01T10",
        "yesterday",
        "",
        "0000",
    ],
)
def test_invalid_dates_raise_value_error(text: str) -> None:
    with pytest.raises(ValueError):
        parse_date_range(text)


def test_format_instant_is_a_fhir_instant_in_milliseconds() -> None:
    value = micros(2026, 11, 1, 10, 0, 0) + 123_456
    assert format_instant(value) == "2026-11-01T10:00:00.123Z"
    assert parse_date_range(format_instant(value))[0] == value - 456


@settings(max_examples=500, deadline=None)
@given(st.lists(st.integers(-(10**16), 2 * 10**17), min_size=1, max_size=4))
def test_format_instant_keeps_the_second_it_formatted_last_correctly(values: list[int]) -> None:
    # Each value, its neighbours in the same second and the next one, in any order.
    for value in [v + step for v in values for step in (0, 1, 999_999, 1_000_000, -1)]:
        moment = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=value)
        expected = moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"
        assert format_instant(value) == expected


@pytest.mark.parametrize(
    ("reference", "expected"),
    [
        ("Patient/p-1", ("Patient", "p-1")),
        ("https://vault.example/fhir/Patient/p-1", ("Patient", "p-1")),
        ("Goal/g.1/_history/3", ("Goal", "g.1")),
        ("p-1", None),
        ("#contained", None),
        ("Patient/", None),
        ("patient/p-1", None),
        (None, None),
        (42, None),
    ],
)
def test_split_reference(reference: object, expected: tuple[str, str] | None) -> None:
    assert split_reference(reference) == expected


def test_validation_names_the_wrong_element() -> None:
    spec = RESOURCE_TYPES["Goal"]
    goal = {
        "resourceType": "Goal",
        "lifecycleStatus": "active",
        "description": {"text": 3},
        "subject": {"reference": "Patient/p"},
        "nickname": "x",
    }
    with pytest.raises(BadRequest) as raised:
        validate_resource(spec, goal)
    assert set(raised.value.expression) == {"Goal.description.text", "Goal.nickname"}
    assert "Goal.nickname" in raised.value.diagnostics


def test_validation_names_list_positions() -> None:
    spec = RESOURCE_TYPES["CareTeam"]
    team = {"resourceType": "CareTeam", "participant": [{}, {"member": "Patient/x"}]}
    with pytest.raises(BadRequest) as raised:
        validate_resource(spec, team)
    assert "CareTeam.participant[1].member" in raised.value.expression


def test_validation_does_not_echo_values() -> None:
    spec = RESOURCE_TYPES["Patient"]
    with pytest.raises(BadRequest) as raised:
        validate_resource(spec, {"resourceType": "Patient", "birthDate": "geheim-123"})
    assert "geheim-123" not in raised.value.diagnostics
    assert raised.value.expression == ["Patient.birthDate"]


@pytest.mark.parametrize("value", [None, "bezig"])
def test_required_codes_are_checked(value: str | None) -> None:
    goal: dict[str, object] = {
        "resourceType": "Goal",
        "description": {"text": "x"},
        "subject": {"reference": "Patient/p"},
    }
    if value is not None:
        goal["lifecycleStatus"] = value
    with pytest.raises(BadRequest) as raised:
        validate_resource(RESOURCE_TYPES["Goal"], goal)
    assert raised.value.expression == ["Goal.lifecycleStatus"]


def test_every_type_in_a_compartment_has_exactly_one_compartment_reference() -> None:
    for spec in RESOURCE_TYPES.values():
        compartment = [p for p in spec.params if p.compartment]
        if spec.compartment in (None, "self"):
            assert compartment == [], spec.name
        else:
            assert {p.name for p in compartment} <= {"patient", "subject"}, spec.name
            assert any(p.name == "patient" for p in compartment), spec.name


def test_only_audit_event_is_read_only() -> None:
    assert [t.name for t in RESOURCE_TYPES.values() if not t.writable] == ["AuditEvent"]


def test_token_extraction_covers_codings_identifiers_codes_and_booleans() -> None:
    params = RESOURCE_TYPES["Patient"].params_by_name
    patient = {
        "resourceType": "Patient",
        "identifier": [{"system": "urn:bsn", "value": "999990019"}, {"value": "x"}],
        "active": False,
    }
    assert set(params["identifier"].extract(patient)) == {
        TokenValue("urn:bsn", "999990019"),
        TokenValue(None, "x"),
    }
    assert list(params["active"].extract(patient)) == [TokenValue(None, "false")]
    goal = {"category": [{"coding": [{"system": "s", "code": "a"}, {"code": "b"}]}]}
    extract = RESOURCE_TYPES["Goal"].params_by_name["category"].extract
    assert set(extract(goal)) == {TokenValue("s", "a"), TokenValue(None, "b")}


def test_period_dates_are_open_where_the_period_is() -> None:
    extract = RESOURCE_TYPES["CarePlan"].params_by_name["date"].extract
    ((low, high),) = extract({"period": {"start": "2026-11-01"}})
    assert (low, high) == (micros(2026, 11, 1), MAX_MICROS)
    ((low, high),) = extract({"period": {"end": "2026-11-01"}})
    assert high == micros(2026, 11, 2)
    assert low < micros(1, 1, 1)


@pytest.mark.parametrize("type_name", ["Provenance", "AuditEvent"])
def test_patient_parameter_extracts_only_patient_references(type_name: str) -> None:
    # The expression is "...where(resolve() is Patient)": other targets are not patients.
    spec = RESOURCE_TYPES[type_name]
    path = "target" if type_name == "Provenance" else "entity"
    refs = [{"reference": "Goal/g1"}, {"reference": "Patient/p1"}]
    resource = {path: refs} if type_name == "Provenance" else {path: [{"what": r} for r in refs]}
    assert list(spec.params_by_name["patient"].extract(resource)) == [("Patient", "p1")]
