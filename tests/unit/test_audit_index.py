"""An access-log record's index rows, read directly (``store/audit_index.py``), are the rows
the generic extraction (``store/index.index_rows``) gives, or there are none and the
generic path runs: a search of the log finds the same records either way. Its tokens and
date are single values (``SearchParam.single``): one row of ``search_audit_event``."""

from __future__ import annotations

import copy
from types import SimpleNamespace
from typing import Any

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from vault.audit.record import _ACTIONS, AuditRecord
from vault.kernel.crypto import BlindIndex
from vault.kernel.fhirdata import format_instant, parse_date_range
from vault.store.audit_index import audit_event_rows, recorded_range
from vault.store.index import REFERENCE_COLUMNS, SINGLE_COLUMNS, index_rows
from vault.store.registry import RESOURCE_TYPES
from vault.store.writes import Prepared

RUNTIME = SimpleNamespace(blind=BlindIndex(b"k" * 32))
SPEC = RESOURCE_TYPES["AuditEvent"]

ids = st.text("abcdef0123456789-", min_size=1, max_size=12)
references = st.one_of(
    st.builds(lambda t, i: f"{t}/{i}", st.sampled_from(["Patient", "CarePlan", "Goal"]), ids),
    st.sampled_from(["", "Patient/", "urn:uuid:x", "http://elders.example/fhir/Goal/7", "x/y"]),
)


def _generic(data: dict[str, Any], pk: int, patient_id: str | None) -> tuple[list, list, list]:
    tokens, refs, dates, singles = index_rows(RUNTIME, Prepared(SPEC, data, patient_id), pk)  # type: ignore[arg-type]
    assert not tokens and not dates  # an AuditEvent's tokens and date are all single values
    return (
        sorted(tuple(row[c] for c in REFERENCE_COLUMNS) for row in refs),
        [tuple(row[c] for c in SINGLE_COLUMNS) for row in singles],
    )


def _direct(data: dict[str, Any], pk: int, patient_id: str | None) -> tuple[list, list, list]:
    found = audit_event_rows(RUNTIME, data, pk, patient_id)  # type: ignore[arg-type]
    assert found is not None
    return sorted(found[0]), [found[1]]  # type: ignore[type-var]


records = st.builds(
    AuditRecord,
    patient_id=st.one_of(st.none(), ids),
    interaction=st.sampled_from([*_ACTIONS, "operation"]),
    permitted=st.booleans(),
    client_id=st.one_of(st.none(), ids),
    organization=st.one_of(st.none(), references.map(lambda r: r.replace("Patient", "Org"))),
    account_id=st.one_of(st.none(), ids),
    entities=st.lists(references, max_size=5),
    query=st.one_of(st.none(), st.text(max_size=20)),
    purposes=st.lists(st.sampled_from(["TREAT", "HRESCH"]), max_size=2),
    representative=st.one_of(st.none(), references),
    recorded=st.integers(0, 4_102_444_800_000_000),
)


@settings(max_examples=300, deadline=None)
@given(records, st.sampled_from(["Patient", "Group"]), st.integers(1, 2**40))
def test_every_record_the_log_writes_is_read_directly_to_the_same_rows(
    record: AuditRecord, owner_type: str, pk: int
) -> None:
    # As settling reads it: the sealed JSON, parsed again.
    data = orjson.loads(orjson.dumps(record.to_fhir(resource_id="r1", owner_type=owner_type)))
    assert _direct(data, pk, record.patient_id) == _generic(data, pk, record.patient_id)


# Changes to a written record that the direct reading cannot follow: each must send it to
# the generic path (None), never to other rows.
CHANGES = [
    lambda d: d.update(period={"start": "2024"}),
    lambda d: d.update(meta={"security": [{"system": "s", "code": "R"}]}),
    lambda d: d.update(meta=[{"security": []}]),
    lambda d: d.update(entity={"what": {"reference": "Patient/p"}}),
    lambda d: d.update(entity=[{"what": [{"reference": "Patient/p"}]}]),
    lambda d: d.update(entity=["Patient/p"]),
    lambda d: d.update(agent=[{"who": "Organization/o"}]),
    lambda d: d.update(agent={"who": {"reference": "Organization/o"}}),
    lambda d: d.update(type={"coding": [{"system": "s", "code": "rest"}]}),
    lambda d: d.update(type={"system": "http://other.example", "code": "rest"}),
    lambda d: d["type"].update(code="login"),
    lambda d: d["type"].update(version="1"),
    lambda d: d.update(action="X"),
    lambda d: d.update(action=["R"]),
    lambda d: d.update(outcome=4),
    lambda d: d.pop("outcome", None),
    lambda d: d.update(recorded={"start": "2024-01-01"}),
    lambda d: d.pop("recorded", None),
]


@settings(max_examples=300, deadline=None)
@given(records, st.lists(st.sampled_from(range(len(CHANGES))), min_size=1, max_size=3, unique=True))
def test_a_record_of_another_shape_takes_the_generic_path(
    record: AuditRecord, changes: list[int]
) -> None:
    data = orjson.loads(orjson.dumps(record.to_fhir(resource_id="r1")))
    changed = copy.deepcopy(data)
    for change in changes:
        CHANGES[change](changed)
    assert audit_event_rows(RUNTIME, changed, 7, record.patient_id) is None  # type: ignore[arg-type]


def test_meta_without_labels_and_an_entity_without_what_are_read_directly() -> None:
    record = AuditRecord(
        patient_id="p1",
        interaction="search-type",
        permitted=False,
        client_id="c",
        organization="Organization/o",
        account_id=None,
        entities=["Goal/g1", "Patient/p1"],
        query="patient=p1",
        recorded=1_700_000_000_123_456,
    )
    data = record.to_fhir(resource_id="r1")
    data["meta"] = {"versionId": "1", "lastUpdated": "2024-01-01T00:00:00Z"}
    data["entity"].append({"what": None})
    direct = _direct(data, 3, "p1")
    assert direct == _generic(data, 3, "p1")
    refs, (single,) = direct
    assert sorted((row[3], row[4], row[5]) for row in refs) == [
        ("agent", "Organization", "o"),
        ("entity", "Goal", "g1"),
        ("entity", "Patient", "p1"),
        ("patient", "Patient", "p1"),
    ]
    values = dict(zip(SINGLE_COLUMNS, single, strict=True))
    assert values == {
        "resource_pk": 3,
        "patient_id": "p1",
        "date_low": 1_700_000_000_123_000,
        "date_high": 1_700_000_000_124_000,
        "type_system": "http://terminology.hl7.org/CodeSystem/audit-event-type",
        "type_hash": RUNTIME.blind.token("rest"),
        "action_hash": RUNTIME.blind.token("E"),
        "outcome_hash": RUNTIME.blind.token("4"),
    }


def test_a_code_is_hashed_as_any_token() -> None:
    blind = BlindIndex(b"q" * 32)
    assert blind.token_of_code("R") == blind.token("R")
    assert blind.token_of_code("R") == blind.token("R")  # kept, and still the same


instants = st.integers(0, 253_402_300_799_999_999).map(format_instant)
# Texts near the access log's form that it never writes: each must be parsed in full.
near_instants = st.one_of(
    instants,
    instants.map(lambda t: t[:-1] + "+00:00"),
    instants.map(lambda t: t[:20] + "5" + t[21:]),
    instants.map(lambda t: t[:17] + "60" + t[19:]),  # a leap second, read as 59
    instants.map(lambda t: t[:20] + "1٣4Z"),  # not ASCII digits
    instants.map(lambda t: t[:19] + "Z"),
    instants.map(lambda t: t[:20] + "12Z"),
    st.sampled_from(["2024", "2024-03", "2024-03-01", "2024-03-01T10:00Z"]),
)


@settings(max_examples=500, deadline=None)
@given(st.lists(near_instants, min_size=1, max_size=8))
def test_a_recorded_instant_has_the_range_a_full_parse_gives(texts: list[str]) -> None:
    # In sequence, so a text may fall in the second the one before it left behind.
    for text in texts:
        for same_second in (text, text[:20] + "999Z" if len(text) == 24 else text):
            try:
                expected = parse_date_range(same_second)
            except ValueError:
                continue
            assert recorded_range(same_second) == expected
