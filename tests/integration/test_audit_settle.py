"""The access log's compact record: a record waits sealed in its chain link, one row, and
becomes an AuditEvent resource when it is settled (``AuditLog.settle``).

What must hold: a waiting record verifies from its link, and a changed byte in it is found;
settling stores the very bytes the chain was built over, with its search index, once, even
with several settlers at once; an erased inwoner's waiting records stay sealed and never hold
up the others; a partner's context never settles; the writer settles on its own once idle;
a record stored as an AuditEvent at once (a busy writer on SQLite) is the one settling stores.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import orjson
import pytest
from sqlalchemy import func, select, update

from tests.support.audit import new_inwoner, own_vault, read_by
from vault.audit import log as log_module
from vault.audit.log import AuditLog, AuditRecord, verify_chains
from vault.audit.models import AuditChain
from vault.audit.runtime import open_runtime
from vault.consent.access import AccessContext, Permissions
from vault.fhir.repository import Repository
from vault.kernel.fhirdata import format_instant
from vault.kernel.runtime import Runtime
from vault.page.mydata import erase_vault
from vault.store.index import SINGLE_COLUMNS, index_rows
from vault.store.models import (
    ResourceRow,
    SearchAuditEvent,
    SearchAuditReference,
    SearchDate,
    SearchReference,
    SearchToken,
)
from vault.store.registry import RESOURCE_TYPES
from vault.store.writes import Prepared, own_record


@pytest.fixture(scope="module")
def runtime(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Runtime]:
    """A vault of its own, whose log's writer thread never starts: nothing settles behind
    a test's back (the last test starts a writer of its own)."""
    with own_vault(tmp_path_factory.mktemp("audit-settle")) as rt:
        yield rt


def append(runtime: Runtime, records: list[AuditRecord]) -> None:
    with runtime.db.write() as conn:
        runtime.audit.append(conn, records)


def links_of(runtime: Runtime, chain: str) -> list[Any]:
    """The chain's links in order, as rows of ``audit_chain``."""
    table = AuditChain.__table__
    with runtime.db.read() as conn:
        return list(conn.execute(select(table).where(table.c.chain == chain).order_by(table.c.seq)))


def audit_events_named(runtime: Runtime, resource_ids: list[str]) -> int:
    with runtime.db.read() as conn:
        return int(
            conn.execute(
                select(func.count())
                .select_from(ResourceRow)
                .where(
                    ResourceRow.resource_type == "AuditEvent",
                    ResourceRow.resource_id.in_(resource_ids),
                )
            ).scalar_one()
        )


def context_of(kind: str, patient_id: str | None) -> AccessContext:
    return AccessContext(
        subject=kind,
        kind=kind,  # type: ignore[arg-type]
        patient_id=patient_id,
        client_id=kind,
        organization="Organization/partner" if kind == "system" else None,
        account_id=None,
        permissions=Permissions.everything(),
        purposes=frozenset(),
        practitioner=None,
        representative=None,
    )


def test_a_read_waits_as_one_sealed_link_and_settles_into_the_bytes_chained(
    runtime: Runtime,
) -> None:
    anna = new_inwoner(runtime)
    append(runtime, [read_by(anna, n=1)])

    (link,) = links_of(runtime, anna)
    assert link.resource_pk is None
    assert link.body is not None and link.resource_id is not None
    assert audit_events_named(runtime, [link.resource_id]) == 0  # one row, nothing else
    assert verify_chains(runtime) == []  # a waiting record verifies from its link

    assert runtime.audit.settle_all([anna]) == 1
    (settled,) = links_of(runtime, anna)
    assert settled.resource_pk is not None and settled.body is None
    repo = Repository(runtime, AccessContext.full())
    with runtime.db.read() as conn:
        event = orjson.loads(repo.vread(conn, "AuditEvent", link.resource_id, "1").body or b"")
        query = repo.parse("AuditEvent", [("entity", "Goal/goal-1")], lenient=False)
        found = [s.resource_id for s in repo.search(conn, query).matches]
    assert event["meta"]["lastUpdated"] == format_instant(link.last_updated or 0)
    assert {"reference": "Goal/goal-1"} in [e.get("what") for e in event["entity"]]
    assert link.resource_id in found  # indexed when settled
    assert verify_chains(runtime) == []  # the AuditEvent holds the bytes the chain was built on
    assert runtime.audit.settle_all([anna]) == 0


def test_a_changed_byte_in_a_waiting_record_is_found(runtime: Runtime) -> None:
    anna = new_inwoner(runtime)
    append(runtime, [read_by(anna, n=1), read_by(anna, n=2)])
    last = links_of(runtime, anna)[-1]
    body = bytes(last.body or b"")
    where = (AuditChain.chain == anna, AuditChain.seq == last.seq)
    changed = body[:-1] + bytes([body[-1] ^ 1])
    try:
        with runtime.db.write() as conn:
            conn.execute(update(AuditChain).where(*where).values(body=changed))
        problems = verify_chains(runtime)
        assert [p for p in problems if p.startswith(f"chain {anna}, record 2")] == [
            f"chain {anna}, record 2 (AuditEvent/{last.resource_id}): the record cannot be opened"
        ]
    finally:
        with runtime.db.write() as conn:
            conn.execute(update(AuditChain).where(*where).values(body=body))
    assert verify_chains(runtime) == []


def test_an_erased_inwoners_waiting_records_stay_sealed_and_hold_up_no_one(
    runtime: Runtime,
) -> None:
    gone, kept = new_inwoner(runtime), new_inwoner(runtime)
    append(runtime, [read_by(gone, n=1)])
    with runtime.db.write() as conn:
        erase_vault(conn, patient_id=gone)
    append(runtime, [read_by(kept, n=2)])

    runtime.audit.settle_all()

    assert [link.resource_pk is None for link in links_of(runtime, gone)] == [True]
    assert [link.resource_pk is None for link in links_of(runtime, kept)] == [False]
    notes: list[str] = []
    assert verify_chains(runtime, notes=notes) == []
    assert [n for n in notes if n.startswith(f"chain {gone}:")] != []


def test_settlers_at_once_store_each_record_once(runtime: Runtime) -> None:
    inwoners = [new_inwoner(runtime) for _ in range(5)]
    append(runtime, [read_by(inwoners[n % 5], n=n) for n in range(60)])
    ids = [link.resource_id or "" for who in inwoners for link in links_of(runtime, who)]
    errors: list[BaseException] = []

    def settle() -> None:
        try:
            runtime.audit.settle_all()
        except BaseException as exc:  # reported below, with the test's failure
            errors.append(exc)

    threads = [threading.Thread(target=settle) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == []
    assert audit_events_named(runtime, ids) == 60
    assert all(link.resource_pk is not None for who in inwoners for link in links_of(runtime, who))
    assert verify_chains(runtime) == []


def test_only_a_caller_who_may_read_the_log_settles_and_only_its_own_chains(
    runtime: Runtime,
) -> None:
    anna, bram = new_inwoner(runtime), new_inwoner(runtime)
    append(runtime, [read_by(anna, n=1), read_by(bram, n=2)])

    runtime.audit.settle_for(context_of("system", None))  # a partner: never
    assert [link.resource_pk for link in links_of(runtime, anna)] == [None]

    runtime.audit.settle_for(context_of("patient", anna))  # anna's app: her chain only
    assert links_of(runtime, anna)[0].resource_pk is not None
    assert links_of(runtime, bram)[0].resource_pk is None

    runtime.audit.settle_for(AccessContext.full())  # the operator: every chain
    assert links_of(runtime, bram)[0].resource_pk is not None


def index_rows_of(runtime: Runtime, resource_pk: int) -> dict[str, set[tuple[Any, ...]]]:
    """A resource's search index rows, without the columns that name the resource itself."""
    found: dict[str, set[tuple[Any, ...]]] = {}
    for table, columns in (
        (SearchToken, ("patient_id", "param", "system", "code_hash")),
        (SearchReference, ("patient_id", "param", "target_type", "target_id")),
        (SearchAuditReference, ("patient_id", "param", "target_type", "target_id")),
        (SearchDate, ("patient_id", "param", "low", "high")),
        (SearchAuditEvent, tuple(c for c in SINGLE_COLUMNS if c != "resource_pk")),
    ):
        c = table.__table__.c
        query = select(*(c[name] for name in columns)).where(c.resource_pk == resource_pk)
        with runtime.db.read() as conn:
            found[table.__tablename__] = {tuple(row) for row in conn.execute(query)}
    return found


def test_a_record_stored_at_once_is_what_settling_stores(runtime: Runtime) -> None:
    """``append(settled=True)`` (the writer under steady load on SQLite) stores the same
    AuditEvent, index rows and link as appending and settling later do."""
    anna = new_inwoner(runtime)
    later = read_by(anna, n=1)
    append(runtime, [later])
    runtime.audit.settle_all([anna])
    with runtime.db.write() as conn:
        runtime.audit.append(conn, [later], settled=True)  # the same record again

    first, second = links_of(runtime, anna)
    assert second.resource_pk is not None and second.body is None  # nothing waits
    assert first.resource_pk is not None and first.body is None
    assert index_rows_of(runtime, second.resource_pk) == index_rows_of(runtime, first.resource_pk)
    rows = index_rows_of(runtime, second.resource_pk)
    # Its tokens and date are single values, in one row of their own table.
    assert not rows["search_token"] and not rows["search_date"]
    assert len(rows["search_audit_event"]) == 1
    # Its references too: a table of their own, none in ``search_reference``.
    assert rows["search_audit_reference"] and not rows["search_reference"]
    repo = Repository(runtime, AccessContext.full())
    events = []
    with runtime.db.read() as conn:
        for link in (first, second):
            stored = repo.vread(conn, "AuditEvent", link.resource_id or "", "1")
            assert stored.last_updated == link.last_updated
            events.append(orjson.loads(stored.body or b""))
        query = repo.parse("AuditEvent", [("entity", "Goal/goal-1")], lenient=False)
        found = {s.resource_id for s in repo.search(conn, query).matches}
    for event in events:
        del event["id"], event["meta"]
    assert events[0] == events[1]
    assert {first.resource_id, second.resource_id} <= found
    assert verify_chains(runtime) == []  # the AuditEvent holds the bytes the chain was built on
    assert runtime.audit.settle_all([anna]) == 0


def generic_index_of(runtime: Runtime, resource_id: str, resource_pk: int) -> dict[str, Any]:
    """The index rows the generic walk (``store/index.index_rows``) reads from the stored
    AuditEvent, in the shape of :func:`index_rows_of`."""
    repo = Repository(runtime, AccessContext.full())
    with runtime.db.read() as conn:
        stored = repo.vread(conn, "AuditEvent", resource_id, "1")
    prepared = Prepared(
        RESOURCE_TYPES["AuditEvent"], orjson.loads(stored.body or b""), stored.patient_id
    )
    tokens, refs, dates, single = index_rows(runtime, prepared, resource_pk)
    return {
        "search_token": {
            (t["patient_id"], t["param"], t["system"], t["code_hash"]) for t in tokens
        },
        "search_reference": set(),
        "search_audit_reference": {
            (r["patient_id"], r["param"], r["target_type"], r["target_id"]) for r in refs
        },
        "search_date": {(d["patient_id"], d["param"], d["low"], d["high"]) for d in dates},
        "search_audit_event": {
            tuple(s[c] for c in SINGLE_COLUMNS if c != "resource_pk") for s in single
        },
    }


def test_a_link_keeps_the_search_values_postgresql_settles_it_by(runtime: Runtime) -> None:
    """On PostgreSQL a waiting link holds its record's search values, and settling moves
    them into the index in SQL (``log._SETTLE_SQL``); a link without them (SQLite's, or
    written before migration 0017) is settled by opening its record. Either way each
    record gets the index rows the generic walk reads from the stored AuditEvent, and a
    limit that falls among both kinds settles each record once."""
    anna = new_inwoner(runtime)
    append(runtime, [read_by(anna, n=n) for n in range(1, 5)])
    links = links_of(runtime, anna)
    assert [link.search is not None for link in links] == [not runtime.db.is_sqlite] * 4
    with runtime.db.write() as conn:  # the second and the last as if written before 0017
        conn.execute(
            update(AuditChain)
            .where(AuditChain.chain == anna, AuditChain.seq.in_([2, 4]))
            .values(search=None)
        )

    with runtime.db.write() as conn:
        assert runtime.audit.settle(conn, [anna], limit=3) == 3
    with runtime.db.write() as conn:
        assert runtime.audit.settle(conn, [anna], limit=3) == 1

    settled = links_of(runtime, anna)
    assert [(link.body, link.search) for link in settled] == [(None, None)] * 4
    for link in settled:
        assert link.resource_pk is not None and link.resource_id is not None
        rows = index_rows_of(runtime, link.resource_pk)
        assert rows["search_audit_reference"] and rows["search_audit_event"]
        assert rows == generic_index_of(runtime, link.resource_id, link.resource_pk)
    assert verify_chains(runtime) == []


def test_a_record_not_of_the_logs_own_shape_keeps_no_search_values(runtime: Runtime) -> None:
    """Such a record is settled by opening it, through the generic walk, never in SQL."""
    event = read_by(None, n=1).to_fhir(resource_id="rec-1", owner_type="Patient")
    assert runtime.audit._search_of(own_record("AuditEvent", event, None)) is not None  # type: ignore[attr-defined]
    event["language"] = "nl"  # an element the access log never writes
    assert runtime.audit._search_of(own_record("AuditEvent", event, None)) is None  # type: ignore[attr-defined]


def test_where_the_writer_stores_records_at_once(runtime: Runtime) -> None:
    """On SQLite a busy writer stores its records as AuditEvents at once; on PostgreSQL it
    settles after its commits (``AuditLog._settled_at_once``, docs/performance.md)."""
    assert AuditLog(runtime)._settled_at_once is runtime.db.is_sqlite  # type: ignore[attr-defined]
    assert AuditLog(runtime)._settled_in_sql is not runtime.db.is_sqlite  # type: ignore[attr-defined]


def busy_writer(
    runtime: Runtime, monkeypatch: pytest.MonkeyPatch, *, at_once: bool
) -> tuple[AuditLog, str]:
    """A log whose writer never idles and is past its bound after 5 waiting records, storing
    at once or not; and a new inwoner."""
    monkeypatch.setattr(log_module, "_IDLE_SECONDS", 3600.0)  # never idle, in this test
    monkeypatch.setattr(log_module, "_MAX_WAITING", 5)
    log = AuditLog(runtime)
    log._settled_at_once = at_once  # type: ignore[attr-defined]
    return log, new_inwoner(runtime)


def test_a_busy_writer_past_its_bound_stores_its_records_at_once(
    runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Past ``_MAX_WAITING`` a writer that stores at once writes each group as AuditEvents
    in the group's own commit: the backlog grows no further, and the records before it
    wait for an idle moment or a reader, as under the bound."""
    log, anna = busy_writer(runtime, monkeypatch, at_once=True)

    log.record([read_by(anna, n=n) for n in range(4)])  # 4 waiting: under the bound
    log.record([read_by(anna, n=n) for n in range(4, 8)])  # 8: past it, after this commit
    log.record([read_by(anna, n=n) for n in range(8, 11)])  # in a commit past the bound

    links = links_of(runtime, anna)
    assert [link.resource_pk is None for link in links] == [True] * 8 + [False] * 3
    assert [link.body is None for link in links] == [False] * 8 + [True] * 3
    assert audit_events_named(runtime, [link.resource_id or "" for link in links[8:]]) == 3
    assert verify_chains(runtime) == []
    log.close()


def test_a_writer_that_never_idles_still_settles_past_its_bound(
    runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A vault under constant load never idles for ``_IDLE_SECONDS``: past ``_MAX_WAITING``
    waiting records a writer that does not store at once (PostgreSQL's) settles after its
    group commit all the same."""
    log, anna = busy_writer(runtime, monkeypatch, at_once=False)

    log.record([read_by(anna, n=n) for n in range(4)])  # 4 waiting: under the bound
    assert [link.resource_pk for link in links_of(runtime, anna)] == [None] * 4
    log.record([read_by(anna, n=n) for n in range(4, 8)])  # 8: past it

    deadline = time.monotonic() + 30
    while any(link.resource_pk is None for link in links_of(runtime, anna)):
        assert time.monotonic() < deadline, "the busy writer never settled past its bound"
        time.sleep(0.02)


class _Lost(Exception):
    """A settling transaction cut off before its commit."""


def test_a_settling_lost_whole_is_settled_again_into_the_same_records(runtime: Runtime) -> None:
    """A settling transaction that never commits (rolled back after its last statement, or
    cut off by a crash) is lost whole: the records still wait in their links with their
    bodies, verify, and settle again into the same ids and bytes."""
    anna = new_inwoner(runtime)
    append(runtime, [read_by(anna, n=n) for n in range(3)])
    before = links_of(runtime, anna)

    with pytest.raises(_Lost), runtime.db.write() as conn:
        assert runtime.audit.settle(conn, [anna]) == 3
        raise _Lost

    assert links_of(runtime, anna) == before  # every link as it was, body and all
    assert audit_events_named(runtime, [link.resource_id or "" for link in before]) == 0
    assert verify_chains(runtime) == []
    assert runtime.audit.settle_all([anna]) == 3
    repo = Repository(runtime, AccessContext.full())
    with runtime.db.read() as conn:
        for link in before:
            stored = repo.vread(conn, "AuditEvent", link.resource_id or "", "1")
            assert stored.last_updated == link.last_updated
    assert verify_chains(runtime) == []  # the chain was built over these very bytes


def test_the_writer_settles_what_waits_once_the_log_is_idle(runtime: Runtime) -> None:
    """Last in this module: it starts a writer thread of its own."""
    log = AuditLog(runtime)
    anna = new_inwoner(runtime)

    log.record([read_by(anna, n=9)])  # durable before it returns, as a read's record

    deadline = time.monotonic() + 30
    while links_of(runtime, anna)[0].resource_pk is None:
        assert time.monotonic() < deadline, "the idle writer never settled the record"
        time.sleep(0.02)
    assert verify_chains(runtime) == []


def test_closing_the_vault_writes_what_was_submitted_then_stops_the_writer(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    """``Runtime.close``: every record already handed to the writer is durable, the writer
    thread ends (before, it outlived its runtime, settled on, and restarted the checkpoint
    thread of a closed database), and a record after that is refused, not lost quietly."""
    with own_vault(tmp_path_factory.mktemp("closing")) as vault:
        anna = new_inwoner(vault)
        futures = [vault.audit._submit([read_by(anna, n=n)]) for n in range(50)]  # type: ignore[attr-defined]
        writer = vault.audit._thread  # type: ignore[attr-defined]
        vault.close()
        assert all(f.done() and f.exception() is None for f in futures)
        assert writer is not None and not writer.is_alive()
        with pytest.raises(RuntimeError, match="could not be written"):
            vault.audit.record([read_by(anna, n=99)])
        reopened = open_runtime(vault.settings)
        try:
            assert len(links_of(reopened, anna)) == 50
            assert verify_chains(reopened) == []
        finally:
            reopened.close()
