"""The access log's group commit: a batch of records is one pass, chained in record order.

``AuditLog.append`` writes every record of a batch with the same few statements, whether the
batch holds one record or many, and links them into their inwoners' chains in the order
given; the writer thread appends all waiting requests as one batch in one transaction; if
that transaction fails, each request is written again on its own, so only the requests
whose own records cannot be written fail. ``verify_chains`` (what ``vault audit
verify`` runs) must find the result intact.
"""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from itertools import pairwise
from typing import Any

import orjson
import pytest
from sqlalchemy import event, func, insert, select

from tests.support.audit import new_inwoner, own_vault, read_by
from vault.audit.log import (
    VAULT_CHAIN,
    AuditLog,
    AuditRecord,
    record_id,
    verify_chains,
)
from vault.audit.models import AuditChain, AuditChainHead
from vault.audit.waiting import Pending
from vault.consent.access import AccessContext
from vault.fhir.repository import Repository
from vault.kernel.driver import DRIVER_STATEMENTS
from vault.kernel.runtime import Runtime, now_micros
from vault.page.mydata import erase_vault
from vault.store.models import DataKey, ResourceRow


@pytest.fixture(scope="module")
def runtime(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Runtime]:
    """A vault of its own: ``verify_chains`` checks every chain, and other tests erase
    inwoners whose old records then no longer open."""
    with own_vault(tmp_path_factory.mktemp("audit-group-commit")) as rt:
        yield rt


# How the links of a group reach the database (``kernel/driver.insert_rows``): one INSERT
# per row on SQLite, one COPY on PostgreSQL.
LINK_WRITES = ("INSERT INTO audit_chain ", "COPY audit_chain ")


def append(runtime: Runtime, records: list[AuditRecord]) -> None:
    with runtime.db.write() as conn:
        runtime.audit.append(conn, records)


def chain_of(runtime: Runtime, chain: str) -> list[dict[str, Any]]:
    """The chain's links in order, each with the AuditEvent it holds (settled first)."""
    runtime.audit.settle_all()
    repo = Repository(runtime, AccessContext.full())
    with runtime.db.read() as conn:
        rows = conn.execute(
            select(AuditChain.seq, AuditChain.prev_hash, AuditChain.hash, ResourceRow.resource_id)
            .join(ResourceRow, ResourceRow.pk == AuditChain.resource_pk)
            .where(AuditChain.chain == chain)
            .order_by(AuditChain.seq)
        ).all()
        return [
            {
                "seq": row.seq,
                "prev_hash": row.prev_hash,
                "hash": row.hash,
                "event": orjson.loads(
                    repo.vread(conn, "AuditEvent", row.resource_id, "1").body or b"{}"
                ),
            }
            for row in rows
        ]


def goals_read(links: list[dict[str, Any]]) -> list[str]:
    return [
        entity["what"]["reference"]
        for link in links
        for entity in link["event"]["entity"]
        if entity.get("what", {}).get("reference", "").startswith("Goal/")
    ]


def assert_linked(links: list[dict[str, Any]]) -> None:
    assert [link["seq"] for link in links] == list(range(1, len(links) + 1))
    for before, after in pairwise(links):
        assert after["prev_hash"] == before["hash"]


@contextmanager
def statements(runtime: Runtime) -> Iterator[list[str]]:
    """The SQL statements the vault's write engine sends while the block runs."""
    sent: list[str] = []

    def count(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        sent.append(statement)

    def count_driver(statement: str) -> None:
        sent.append(statement)

    # Also the inserts the store sends through the driver's cursor (kernel/db.execute_many).
    event.listen(runtime.db.write_engine, "before_cursor_execute", count)
    DRIVER_STATEMENTS.append(count_driver)
    try:
        yield sent
    finally:
        DRIVER_STATEMENTS.remove(count_driver)
        event.remove(runtime.db.write_engine, "before_cursor_execute", count)


def test_a_batch_chains_records_of_one_and_of_several_inwoners_in_record_order(
    runtime: Runtime,
) -> None:
    anna, bram, cor = (new_inwoner(runtime) for _ in range(3))
    append(runtime, [read_by(anna, n=0)])  # anna's chain has a head already, the others not
    order = [anna, bram, anna, cor, anna, bram, None]

    append(runtime, [read_by(who, n=n) for n, who in enumerate(order, start=1)])

    for who in (anna, bram, cor):
        links = chain_of(runtime, who)
        assert_linked(links)
        expected = [0] if who == anna else []
        expected += [n for n, w in enumerate(order, start=1) if w == who]
        assert goals_read(links) == [f"Goal/goal-{n}" for n in expected]
    assert goals_read(chain_of(runtime, VAULT_CHAIN))[-1] == "Goal/goal-7"
    with runtime.db.read() as conn:
        heads = {row.chain: row.seq for row in conn.execute(select(AuditChainHead))}
    assert (heads[anna], heads[bram], heads[cor]) == (4, 2, 1)
    assert verify_chains(runtime) == []


def test_an_erased_inwoners_record_in_a_mixed_batch_goes_to_the_vault_chain(
    runtime: Runtime,
) -> None:
    kept, erased = new_inwoner(runtime), new_inwoner(runtime)
    with runtime.db.write() as conn:
        erase_vault(conn, patient_id=erased)

    append(runtime, [read_by(kept, n=1), read_by(erased, n=2), read_by(kept, n=3)])

    assert goals_read(chain_of(runtime, kept)) == ["Goal/goal-1", "Goal/goal-3"]
    assert chain_of(runtime, erased) == []
    last = chain_of(runtime, VAULT_CHAIN)[-1]["event"]
    whats = [e["what"]["reference"] for e in last["entity"] if "what" in e]
    assert whats == [f"Patient/{erased}", "Goal/goal-2"]
    assert verify_chains(runtime) == []


def test_a_batch_of_twenty_records_costs_the_statements_of_a_batch_of_one(
    runtime: Runtime,
) -> None:
    inwoners = [new_inwoner(runtime) for _ in range(5)]
    append(runtime, [read_by(who, n=0) for who in inwoners])  # every chain has a head

    with runtime.db.write() as conn, statements(runtime) as one:
        runtime.audit.append(conn, [read_by(inwoners[0], n=1)])
    with runtime.db.write() as conn, statements(runtime) as twenty:
        runtime.audit.append(conn, [read_by(inwoners[n % 5], n=n) for n in range(20)])

    # The data keys, the chain heads, the links (each record sealed in its own), the heads
    # moved: a record is stored as an AuditEvent only when it is settled.
    assert len(twenty) == len(one) == 4, twenty
    assert verify_chains(runtime) == []


def queued_as_one_batch(log: AuditLog, requests: list[list[AuditRecord]]) -> list[Pending]:
    """Requests queued before the writer thread starts, so it takes them as one batch."""
    waiting = [Pending(records) for records in requests]
    for pending in waiting:
        log._queue.put(pending)
    log._ensure_thread()
    return waiting


def test_records_are_named_in_the_order_they_are_written(runtime: Runtime) -> None:
    """Each AuditEvent's id is a UUID version 7 of when it was written: the ids of the
    access log sort in write order, so its rows append to one end of the id index."""
    anna = new_inwoner(runtime)
    started_ms = time.time_ns() // 1_000_000
    for n in range(3):
        append(runtime, [read_by(anna, n=n)])
        time.sleep(0.002)  # the ids' clock counts milliseconds
    ended_ms = time.time_ns() // 1_000_000

    ids = [link["event"]["id"] for link in chain_of(runtime, anna)]
    assert ids == sorted(ids) and len(set(ids)) == 3
    for ident in ids:
        parsed = uuid.UUID(ident)
        assert (parsed.version, parsed.variant) == (7, uuid.RFC_4122)
        assert started_ms <= parsed.int >> 80 <= ended_ms
    many = [record_id() for _ in range(2000)]
    assert len(set(many)) == len(many)  # 74 random bits below the milliseconds
    assert all(str(uuid.UUID(ident)) == ident for ident in many)  # uuid's own text


def test_waiting_requests_are_appended_as_one_batch_in_request_order(runtime: Runtime) -> None:
    anna, bram = new_inwoner(runtime), new_inwoner(runtime)
    requests = [
        [read_by(anna, n=1)],
        [read_by(bram, n=2), read_by(anna, n=3)],
        [read_by(anna, n=4)],
    ]

    with statements(runtime) as sent:
        waiting = queued_as_one_batch(AuditLog(runtime), requests)
        for pending in waiting:
            pending.done.result(timeout=30)

    assert sum(s.startswith(LINK_WRITES) for s in sent) == 1
    assert goals_read(chain_of(runtime, anna)) == ["Goal/goal-1", "Goal/goal-3", "Goal/goal-4"]
    assert goals_read(chain_of(runtime, bram)) == ["Goal/goal-2"]
    assert verify_chains(runtime) == []


def test_a_failing_batch_writes_nothing_and_fails_every_waiting_request(
    runtime: Runtime,
) -> None:
    anna, bram = new_inwoner(runtime), new_inwoner(runtime)
    append(runtime, [read_by(anna, n=0)])
    runtime.audit.settle_all()  # nothing waits: no writer settles between the counts below
    log = AuditLog(runtime)

    def count_rows() -> tuple[int, int, list[tuple[str, int]]]:
        with runtime.db.read() as conn:
            events = conn.scalar(
                select(func.count()).where(ResourceRow.resource_type == "AuditEvent")
            )
            links = conn.scalar(select(func.count()).select_from(AuditChain))
            heads = conn.execute(
                select(AuditChainHead.chain, AuditChainHead.seq).order_by(AuditChainHead.chain)
            )
            return events or 0, links or 0, [(row.chain, row.seq) for row in heads]

    before = count_rows()

    def fail_the_links(statement: str) -> None:
        # The links go through the driver's cursor (``kernel/driver.py``), after the data
        # keys and the heads were read.
        if threading.current_thread() is log._thread and statement.startswith(LINK_WRITES):
            raise RuntimeError("the disk is full")

    DRIVER_STATEMENTS.append(fail_the_links)
    try:
        waiting = queued_as_one_batch(
            log, [[read_by(anna, n=1)], [read_by(bram, n=2)], [read_by(anna, n=3)]]
        )
        errors = [pending.done.exception(timeout=30) for pending in waiting]
    finally:
        DRIVER_STATEMENTS.remove(fail_the_links)

    assert all(isinstance(error, RuntimeError) for error in errors), errors
    assert count_rows() == before
    assert goals_read(chain_of(runtime, anna)) == ["Goal/goal-0"]
    log.record([read_by(bram, n=4)])  # the writer goes on after a failed batch
    assert goals_read(chain_of(runtime, bram)) == ["Goal/goal-4"]
    assert verify_chains(runtime) == []


def unsealable_owner(runtime: Runtime) -> str:
    """An owner whose data key is wrapped by a master key this vault does not hold: a record
    about it cannot be sealed, so its write fails."""
    broken = f"broken-{uuid.uuid4().hex[:8]}"
    with runtime.db.write() as conn:
        conn.execute(
            insert(DataKey).values(
                owner=broken, wrapped=b"\0" * 60, master_key_id="gone", created_at=now_micros()
            )
        )
    return broken


def test_a_record_that_cannot_be_written_fails_only_its_own_request(runtime: Runtime) -> None:
    anna, bram = new_inwoner(runtime), new_inwoner(runtime)
    broken = unsealable_owner(runtime)

    waiting = queued_as_one_batch(
        AuditLog(runtime), [[read_by(anna, n=1)], [read_by(broken, n=2)], [read_by(bram, n=3)]]
    )
    errors = [pending.done.exception(timeout=30) for pending in waiting]

    assert errors[0] is None and errors[2] is None, errors
    assert errors[1] is not None
    assert goals_read(chain_of(runtime, anna)) == ["Goal/goal-1"]
    assert goals_read(chain_of(runtime, bram)) == ["Goal/goal-3"]
    assert verify_chains(runtime) == []


def awaited_together(
    log: AuditLog, requests: list[list[AuditRecord]], *, linger: float = 0.05
) -> list[BaseException | None]:
    """``record_async`` for each request at once on one event loop; what each one raised,
    and nothing else went wrong on the loop in the ``linger`` seconds after (an answer set
    twice would be reported there)."""
    reported: list[dict[str, Any]] = []

    async def each(records: list[AuditRecord]) -> BaseException | None:
        try:
            await log.record_async(records)
        except RuntimeError as exc:
            return exc
        return None

    async def run() -> list[BaseException | None]:
        asyncio.get_running_loop().set_exception_handler(lambda _loop, ctx: reported.append(ctx))
        answers = await asyncio.gather(*(each(records) for records in requests))
        await asyncio.sleep(linger)  # a late answer from the writer arrives now
        return answers

    answers = asyncio.run(run())
    assert reported == []
    return answers


def test_awaiting_requests_of_one_group_are_answered_each_their_own(runtime: Runtime) -> None:
    anna, bram = new_inwoner(runtime), new_inwoner(runtime)
    broken = unsealable_owner(runtime)
    log = AuditLog(runtime)
    requests = [[read_by(anna, n=1)], [read_by(broken, n=2)], [read_by(bram, n=3)]]

    errors = awaited_together(log, requests)

    assert errors[0] is None and errors[2] is None, errors
    assert str(errors[1]) == "the access log could not be written"
    assert goals_read(chain_of(runtime, anna)) == ["Goal/goal-1"]
    assert goals_read(chain_of(runtime, bram)) == ["Goal/goal-3"]
    log.close()


def test_an_awaiting_request_the_writer_does_not_answer_in_time_fails_alone(
    runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    anna = new_inwoner(runtime)
    log = AuditLog(runtime)

    def stall(statement: str) -> None:
        if threading.current_thread() is log._thread and statement.startswith(LINK_WRITES):
            time.sleep(0.5)

    monkeypatch.setattr("vault.audit.log._CONFIRM_SECONDS", 0.2)
    DRIVER_STATEMENTS.append(stall)
    try:
        # The writer answers at 0.5 s, while the loop still runs: the answer finds its
        # request gone, and is dropped without an error on the loop.
        errors = awaited_together(log, [[read_by(anna, n=1)]], linger=1.0)
    finally:
        DRIVER_STATEMENTS.remove(stall)
    assert str(errors[0]) == "the access log did not confirm in time"
    assert goals_read(chain_of(runtime, anna)) == ["Goal/goal-1"]  # written after all
    assert awaited_together(log, [[read_by(anna, n=2)]]) == [None]  # the writer goes on
    log.close()
