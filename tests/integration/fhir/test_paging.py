"""Paging: next and previous links walk every match once, in order, while data changes."""

from __future__ import annotations

import base64
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import orjson
import pytest
from sqlalchemy import event
from sqlalchemy.engine import Engine

from tests.conftest import FHIR_JSON, create
from tests.factories import careplan, goal, new_id
from tests.factories import patient as patient_resource
from vault.fhir.search import Cursor, cursor_secret
from vault.kernel.runtime import Runtime


def get(client: httpx.Client, url: str, params: Any = None) -> dict[str, Any]:
    response = client.get(url, params=params)
    assert response.status_code == 200, response.text
    bundle: dict[str, Any] = response.json()
    return bundle


def ids(bundle: dict[str, Any]) -> list[str]:
    return [e["resource"]["id"] for e in bundle.get("entry", []) if e["search"]["mode"] == "match"]


def link(bundle: dict[str, Any], relation: str) -> str | None:
    return next((x["url"] for x in bundle["link"] if x["relation"] == relation), None)


def walk(
    client: httpx.Client,
    path: str,
    params: dict[str, str],
    *,
    between_pages: Any = None,
) -> tuple[list[list[str]], dict[str, Any]]:
    """Follow next links from the first page; the pages' ids and the last page."""
    bundle = get(client, path, params)
    pages = [ids(bundle)]
    while (url := link(bundle, "next")) is not None:
        if between_pages is not None:
            between_pages()
        bundle = get(client, url)
        pages.append(ids(bundle))
        assert len(pages) < 100, "paging does not end"
    return pages, bundle


def walk_back(client: httpx.Client, bundle: dict[str, Any]) -> list[list[str]]:
    """Follow previous links from ``bundle``; the pages before it, nearest last."""
    pages: list[list[str]] = []
    while (url := link(bundle, "previous")) is not None:
        bundle = get(client, url)
        pages.insert(0, ids(bundle))
        assert len(pages) < 100, "paging does not end"
    return pages


@pytest.fixture
def pid(client: httpx.Client) -> str:
    return str(create(client, patient_resource())["id"])


def make_goals(client: httpx.Client, pid: str, n: int) -> list[str]:
    return [str(create(client, goal(patient_id=pid))["id"]) for _ in range(n)]


def test_next_links_walk_every_match_once_in_order(client: httpx.Client, pid: str) -> None:
    made = make_goals(client, pid, 7)
    pages, last = walk(client, "/Goal", {"patient": pid, "_count": "3"})
    assert pages == [made[0:3], made[3:6], made[6:7]]
    assert link(last, "next") is None
    assert walk_back(client, last) == [made[0:3], made[3:6]]


def test_a_page_that_ends_exactly_at_the_last_match_has_no_next(
    client: httpx.Client, pid: str
) -> None:
    made = make_goals(client, pid, 4)
    pages, _ = walk(client, "/Goal", {"patient": pid, "_count": "2"})
    assert pages == [made[0:2], made[2:4]]


def test_first_page_has_no_previous_and_links_keep_the_query(
    client: httpx.Client, pid: str
) -> None:
    make_goals(client, pid, 3)
    first = get(client, "/Goal", {"patient": pid, "_count": "2", "_sort": "-_lastUpdated"})
    assert link(first, "previous") is None
    for relation in ("self", "next"):
        query = parse_qs(urlsplit(str(link(first, relation))).query)
        assert query["patient"] == [pid]
        assert query["_count"] == ["2"]
        assert query["_sort"] == ["-_lastUpdated"]
    second = get(client, str(link(first, "next")))
    assert second["total"] == 3
    assert link(second, "self") == link(first, "next")
    assert link(second, "previous") is not None


def test_paging_by_last_updated_descending(client: httpx.Client, pid: str) -> None:
    made = make_goals(client, pid, 5)
    pages, last = walk(client, "/Goal", {"patient": pid, "_count": "2", "_sort": "-_lastUpdated"})
    newest_first = made[::-1]
    assert pages == [newest_first[0:2], newest_first[2:4], newest_first[4:5]]
    assert walk_back(client, last) == pages[:-1]


def test_paging_by_date(client: httpx.Client, pid: str) -> None:
    # Equal dates must still page exactly once: the row key breaks the tie.
    starts = ["2026-05-01", "2024-01-01", "2026-05-01", "2025-06-15", "2024-01-01", "2026-05-01"]
    made = [
        (s, str(create(client, careplan(patient_id=pid, start=s, end=s))["id"])) for s in starts
    ]
    pages, last = walk(client, "/CarePlan", {"patient": pid, "_count": "2", "_sort": "date"})
    flat = [i for page in pages for i in page]
    assert sorted(flat) == sorted(i for _, i in made)
    by_id = dict((i, s) for s, i in made)
    assert [by_id[i] for i in flat] == sorted(starts)
    assert [len(p) for p in pages] == [2, 2, 2]
    assert walk_back(client, last) == pages[:-1]
    pages, _ = walk(client, "/CarePlan", {"patient": pid, "_count": "4", "_sort": "-date"})
    flat = [i for page in pages for i in page]
    assert [by_id[i] for i in flat] == sorted(starts, reverse=True)
    assert len(set(flat)) == len(made)


def test_paging_by_id(client: httpx.Client, pid: str) -> None:
    made = sorted(make_goals(client, pid, 5))
    pages, _ = walk(client, "/Goal", {"patient": pid, "_count": "2", "_sort": "_id"})
    assert [i for p in pages for i in p] == made


@contextmanager
def inserting(client: httpx.Client, make: Any) -> Iterator[Any]:
    """A background thread that keeps creating matching resources until the block ends.

    Yields a function that waits until at least one more resource was created, so that
    the data really changes between every two pages.
    """
    created: list[str] = []
    changed = threading.Condition()
    stop = threading.Event()
    errors: list[BaseException] = []

    def run() -> None:
        with httpx.Client(base_url=client.base_url, headers=client.headers, timeout=30) as own:
            n = 0
            while not stop.is_set():
                try:
                    resource = make(n)
                    response = own.post(
                        f"/{resource['resourceType']}", json=resource, headers=FHIR_JSON
                    )
                    assert response.status_code == 201, response.text
                except BaseException as exc:  # reported by the test, not lost in the thread
                    errors.append(exc)
                    return
                n += 1
                with changed:
                    created.append(response.json()["id"])
                    changed.notify_all()

    def wait_for_change() -> None:
        with changed:
            seen = len(created)
            assert changed.wait_for(lambda: len(created) > seen or errors, timeout=10)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        yield wait_for_change
    finally:
        stop.set()
        thread.join(timeout=30)
    assert not errors, errors
    assert created


@pytest.mark.parametrize(
    ("sort", "expected_order"),
    [(None, "created"), ("-_lastUpdated", "newest"), ("date", "date")],
)
def test_links_stay_valid_while_matches_are_added(
    client: httpx.Client, pid: str, sort: str | None, expected_order: str
) -> None:
    code = new_id("c")
    dates = [f"2026-{m:02d}-01" for m in (7, 2, 11, 5, 9, 1, 3, 12, 8, 4)]
    before = [
        str(create(client, careplan(patient_id=pid, start=d, end=d, category=category(code)))["id"])
        for d in dates
    ]
    order = {
        "created": before,
        "newest": before[::-1],
        "date": [i for _, i in sorted(zip(dates, before, strict=True))],
    }[expected_order]

    def more(n: int) -> dict[str, Any]:
        # New plans land among, before and after the existing ones in every order.
        day = f"2026-{n % 12 + 1:02d}-15"
        return careplan(patient_id=pid, start=day, end=day, category=category(code))

    params = {"patient": pid, "category": code, "_count": "3", **({"_sort": sort} if sort else {})}
    with inserting(client, more) as wait_for_change:
        pages, _ = walk(client, "/CarePlan", params, between_pages=wait_for_change)
    seen = [i for page in pages for i in page]
    assert len(seen) == len(set(seen)), "a resource was repeated"
    assert [i for i in seen if i in set(before)] == order, "a resource was skipped or moved"


def category(code: str) -> list[dict[str, Any]]:
    return [{"coding": [{"system": "urn:test", "code": code}]}]


def test_total_counts_all_matches_while_paging(client: httpx.Client, pid: str) -> None:
    make_goals(client, pid, 5)
    pages, last = walk(client, "/Goal", {"patient": pid, "_count": "2"})
    assert last["total"] == 5
    assert sum(len(p) for p in pages) == 5


@contextmanager
def counts_sent() -> Iterator[list[str]]:
    """The count statements a search sends, on any of the vault's engines."""
    sent: list[str] = []

    def seen(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if statement.startswith("SELECT count(*)"):
            sent.append(statement)

    event.listen(Engine, "before_cursor_execute", seen)
    try:
        yield sent
    finally:
        event.remove(Engine, "before_cursor_execute", seen)


def test_a_first_page_that_holds_every_match_is_its_own_total(
    client: httpx.Client, pid: str
) -> None:
    make_goals(client, pid, 3)
    for count in ("3", "4", "50"):
        with counts_sent() as sent:
            bundle = get(client, "/Goal", {"patient": pid, "_count": count})
        assert (bundle["total"], len(ids(bundle)), sent) == (3, 3, []), count
    # A page that does not hold them all, a later page and _summary=count still count.
    for params, page in (
        ({"_count": "2"}, 2),
        ({"_summary": "count"}, 0),
        ({"_count": "0"}, 0),
    ):
        with counts_sent() as sent:
            bundle = get(client, "/Goal", {"patient": pid, **params})
        assert (bundle["total"], len(ids(bundle)), len(sent)) == (3, page, 1), params
    next_url = link(get(client, "/Goal", {"patient": pid, "_count": "2"}), "next")
    with counts_sent() as sent:
        bundle = get(client, str(next_url))
    assert (bundle["total"], len(ids(bundle)), len(sent)) == (3, 1, 1)
    with counts_sent() as sent:
        bundle = get(client, "/Goal", {"patient": pid, "_total": "none"})
    assert ("total" in bundle, len(ids(bundle)), sent) == (False, 3, [])


def tampered_cursors(real: str, secret: bytes) -> list[str]:
    pk = Cursor.decode(real, secret=secret).pk
    return [
        real[:-2],
        real + "x",
        real[::-1],
        real[:-1] + ("B" if real[-1] == "A" else "A"),
        "not-a-cursor",
        Cursor(key="text", pk=pk, backward=False).encode(secret=secret),
        # Well-formed, but sealed with another key: a cursor of another vault.
        Cursor(key=None, pk=pk, backward=False).encode(secret=bytes(32)),
    ]


@pytest.mark.parametrize("sort", [None, "_lastUpdated", "date"])
def test_a_tampered_cursor_is_400(
    client: httpx.Client, runtime: Runtime, pid: str, sort: str | None
) -> None:
    for day in ("2026-01-01", "2026-02-01", "2026-03-01"):
        create(client, careplan(patient_id=pid, start=day))
    params = {"patient": pid, "_count": "1", **({"_sort": sort} if sort else {})}
    next_url = str(link(get(client, "/CarePlan", params), "next"))
    real = parse_qs(urlsplit(next_url).query)["_cursor"][0]
    assert ids(get(client, "/CarePlan", {**params, "_cursor": real}))
    for cursor in tampered_cursors(real, cursor_secret(runtime.blind)):
        response = client.get("/CarePlan", params={**params, "_cursor": cursor})
        assert response.status_code == 400, (cursor, response.text)
        outcome = response.json()
        assert outcome["resourceType"] == "OperationOutcome"
        assert outcome["issue"][0]["expression"] == ["_cursor"]


@pytest.mark.parametrize(
    "cursor",
    [
        "%%%",
        "bm9wZQ",
        Cursor(key="text", pk=1, backward=False),
        Cursor(key=None, pk=1, backward=False),
        "WzEsIDE4NDQ2NzQ0MDczNzA5NTUxNjE1LCAwXQ",  # [1, 2**64 - 1, 0], unsealed
        "WzkyMjMzNzIwMzY4NTQ3NzU4MDgsIDEsIDBd",  # [2**63, 1, 0], unsealed
    ],
)
def test_a_cursor_that_does_not_fit_is_400(
    client: httpx.Client, runtime: Runtime, cursor: str | Cursor
) -> None:
    if isinstance(cursor, Cursor):
        cursor = cursor.encode(secret=cursor_secret(runtime.blind))
    response = client.get("/Goal", params={"_sort": "_lastUpdated", "_cursor": cursor})
    assert response.status_code == 400, response.text
    assert response.json()["issue"][0]["expression"] == ["_cursor"]


def test_the_cursor_does_not_show_the_row_number(client: httpx.Client, pid: str) -> None:
    """Issue 12 B9: the cursor is sealed, its content is the vault's alone."""
    make_goals(client, pid, 3)
    first = get(client, "/Goal", {"patient": pid, "_count": "1"})
    real = parse_qs(urlsplit(str(link(first, "next"))).query)["_cursor"][0]
    raw = base64.urlsafe_b64decode(real + "=" * (-len(real) % 4))
    with pytest.raises(ValueError):
        orjson.loads(raw)
    # Stable: the same page edge gives the same cursor, also after other writes.
    make_goals(client, str(create(client, patient_resource())["id"]), 2)
    again = get(client, "/Goal", {"patient": pid, "_count": "1"})
    assert link(again, "next") == link(first, "next")
