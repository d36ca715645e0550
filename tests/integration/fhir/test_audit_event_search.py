"""Searches of the access log on its single values.

An AuditEvent's ``date``, ``type``, ``action`` and ``outcome`` have one value each, kept in
one row per record (``search_audit_event``, ``SearchParam.single``) instead of a row each
in ``search_token`` and ``search_date``. Each search here is held against the same filter
worked out in Python over the AuditEvents themselves, for records stored every way the log
stores them: settled later, stored at once, and the generic path of a record of another
shape.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from tests.support.audit import new_inwoner
from vault.audit.log import AuditRecord
from vault.audit.record import record_id
from vault.kernel.fhirdata import parse_date_range
from vault.kernel.runtime import Runtime
from vault.store.models import ResourceRow, SearchAuditEvent, SearchDate, SearchToken
from vault.store.writes import write_internal

DAY = 86_400_000_000
NEW_YEAR = 1_767_225_600_000_000  # 2026-01-01T00:00:00Z
TYPE_SYSTEM = "http://terminology.hl7.org/CodeSystem/audit-event-type"
Event = dict[str, Any]


def _records(inwoner: str) -> list[AuditRecord]:
    """Eight records on eight days: reads, writes and refusals by two parties."""
    kinds = [("read", True), ("update", True), ("read", False), ("create", True)]
    return [
        AuditRecord(
            patient_id=inwoner,
            interaction=kinds[n % 4][0],
            permitted=kinds[n % 4][1],
            client_id=f"client-{n % 2}",
            organization=f"Organization/party-{n % 2}",
            account_id=None,
            entities=[f"Goal/goal-{n}"],
            recorded=NEW_YEAR + n * DAY + n * 1000,
        )
        for n in range(8)
    ]


@pytest.fixture(scope="module")
def inwoner(runtime: Runtime) -> str:
    """An inwoner whose log holds the eight records, stored the three ways there are."""
    inwoner = new_inwoner(runtime)
    records = _records(inwoner)
    with runtime.db.write() as conn:
        runtime.audit.append(conn, records[:3])  # waiting, settled when she reads
    with runtime.db.write() as conn:
        runtime.audit.append(conn, records[3:7], settled=True)  # a busy writer's way
    # A record the direct reading does not know (an element more): the generic path.
    other = records[7].to_fhir(resource_id=record_id())
    other["period"] = {"start": "2026-01-08"}
    with runtime.db.write() as conn:
        write_internal(runtime, conn, "AuditEvent", other, patient_id=inwoner)
    return inwoner


def _bundle(client: httpx.Client, url: str, params: Any = None) -> dict[str, Any]:
    response = client.get(url, params=params)
    assert response.status_code == 200, response.text
    found: dict[str, Any] = response.json()
    return found


def _search(client: httpx.Client, inwoner: str, params: dict[str, str]) -> list[str]:
    """The ids a search of her log finds, in order, page after page of two."""
    url: str | None = "/AuditEvent"
    query: Any = {"patient": inwoner, "_count": "2", **params}
    found: list[str] = []
    while url is not None:
        bundle = _bundle(client, url, query)
        found += [e["resource"]["id"] for e in bundle.get("entry", [])]
        url = next((x["url"] for x in bundle["link"] if x["relation"] == "next"), None)
        query = None
        assert len(found) < 100
    return found


def _events(client: httpx.Client, inwoner: str) -> list[Event]:
    bundle = _bundle(client, "/AuditEvent", {"patient": inwoner, "_count": "500"})
    return [e["resource"] for e in bundle["entry"]]


def _at(event: Event) -> int:
    return parse_date_range(event["recorded"])[0]


def _day(iso: str) -> tuple[int, int]:
    return parse_date_range(iso)


FILTERS: list[tuple[dict[str, str], Callable[[Event], bool]]] = [
    ({"action": "R"}, lambda e: e["action"] == "R"),
    ({"action": "C,U"}, lambda e: e["action"] in ("C", "U")),
    ({"action": "|R"}, lambda e: e["action"] == "R"),  # a code has no system
    ({"action": "http://any.example|R"}, lambda e: False),
    ({"outcome": "4"}, lambda e: e["outcome"] == "4"),
    ({"outcome": "0", "action": "R"}, lambda e: e["outcome"] == "0" and e["action"] == "R"),
    ({"type": "rest"}, lambda e: e["type"]["code"] == "rest"),
    ({"type": f"{TYPE_SYSTEM}|rest"}, lambda e: e["type"]["code"] == "rest"),
    ({"type": f"{TYPE_SYSTEM}|"}, lambda e: True),
    ({"type": "|rest"}, lambda e: False),  # its type has a system
    ({"type": "http://other.example|rest"}, lambda e: False),
    ({"type": "login"}, lambda e: False),
    ({"date": "ge2026-01-04"}, lambda e: _at(e) >= _day("2026-01-04")[0]),
    ({"date": "lt2026-01-04"}, lambda e: _at(e) < _day("2026-01-04")[0]),
    ({"date": "2026-01-03"}, lambda e: _day("2026-01-03")[0] <= _at(e) < _day("2026-01-03")[1]),
    (
        {"date": "ne2026-01-03"},
        lambda e: not _day("2026-01-03")[0] <= _at(e) < _day("2026-01-04")[0],
    ),
    (
        {"date": "ge2026-01-02", "action": "R", "outcome": "0"},
        lambda e: _at(e) >= _day("2026-01-02")[0] and e["action"] == "R" and e["outcome"] == "0",
    ),
]


@pytest.mark.parametrize(("params", "keep"), FILTERS, ids=[str(p) for p, _ in FILTERS])
def test_a_search_on_single_values_finds_what_the_records_say(
    client: httpx.Client, inwoner: str, params: dict[str, str], keep: Callable[[Event], bool]
) -> None:
    events = _events(client, inwoner)
    assert len(events) >= 8  # hers, and the record of her Patient's creation
    expected = sorted(e["id"] for e in events if keep(e))
    assert sorted(_search(client, inwoner, params)) == expected


@pytest.mark.parametrize("sort", ["date", "-date"])
def test_her_log_sorts_and_pages_by_date(client: httpx.Client, inwoner: str, sort: str) -> None:
    events = _events(client, inwoner)
    newest_first = sort == "-date"
    expected = [e["id"] for e in sorted(events, key=_at, reverse=newest_first)]
    assert _search(client, inwoner, {"_sort": sort}) == expected
    # And a page of the log as the consent page asks for it: refusals, newest first.
    refused = [e["id"] for e in sorted(events, key=_at, reverse=True) if e["outcome"] == "4"]
    assert _search(client, inwoner, {"_sort": "-date", "outcome": "4"}) == refused


def test_a_record_is_one_row_of_single_values_and_no_token_or_date_rows(
    client: httpx.Client, runtime: Runtime, inwoner: str
) -> None:
    ids = [e["id"] for e in _events(client, inwoner)]  # every record settled now
    r = ResourceRow.__table__.c
    with runtime.db.read() as conn:
        pks = list(
            conn.scalars(
                select(r.pk).where(r.resource_type == "AuditEvent", r.resource_id.in_(ids))
            )
        )
        assert len(pks) == len(ids)

        def rows(table: Any) -> int:
            c = table.__table__.c
            return int(conn.scalar(select(func.count()).where(c.resource_pk.in_(pks))) or 0)

        assert rows(SearchAuditEvent) == len(ids)
        assert rows(SearchToken) == 0 and rows(SearchDate) == 0
