"""The access log (NEN 7513): an AuditEvent for every access decision, hash-chained.

Each record is a FHIR R4 AuditEvent (https://hl7.org/fhir/R4/auditevent.html) stored like
any other resource of the inwoner: sealed under the inwoner's data key, searchable with
``AuditEvent?patient=…`` by the inwoner, and never by a partner (the consent engine does not
grant AuditEvent). Records are append-only: no API updates or deletes them.

Every record is also a link in its inwoner's chain (``audit_chain``): ``hash = HMAC(key,
prev_hash ‖ record)``, with a key only the master key opens, so a changed, removed or
reordered record is detected by ``vault audit verify``. Records that concern no inwoner
(a read of an id that does not exist) go to the vault's own chain.

A record is written compact: sealed into its chain link (``audit_chain.body``), as the
AuditEvent's version 1 will be, in one row. It becomes an AuditEvent resource, with its
version and search index, when it is settled (``AuditLog.settle``): before a caller who may
read the log reads (``settle_for``), and whenever the log is idle. So a partner's read pays
for one row, and the inwoner still finds every record, in the same bytes the chain holds.
A vault under steady load never idles and pays for the resource all the same: past a
bound of waiting records the writer settles after each commit (PostgreSQL), or stores each
group's records as AuditEvents at once (SQLite, where that costs less than settling). On
PostgreSQL a link keeps its record's search values beside the sealed body, and settling is
one statement that PostgreSQL runs without the vault opening a record (``_SETTLE_SQL``).

Writes log in their own transaction: a failed audit write fails the request. Reads log
through a group-commit writer: the request waits until its record is durable, and many
requests share one commit, so an acknowledged read's record survives a kill. A batch of
records costs the same ten or so statements whether it holds one record or hundreds. When
a group's commit fails, each request in it is written again on its own, so one record that
cannot be written fails only the request it belongs to.

Over 500 lines: appending, settling and the writer thread that does both between requests
share one log's state (its queue, its count of waiting records, its owners' cache); apart,
each would reach into the others'.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import Future
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import orjson
from sqlalchemy import (
    Connection,
    and_,
    case,
    literal,
    select,
)

from vault.audit.models import AuditChain
from vault.audit.record import (
    GENESIS,
    VAULT_CHAIN,
    AuditRecord,
    chain_key,
    link_hash,
    owner_of,
    record_id,
)
from vault.audit.verify import verify_chains
from vault.audit.waiting import (
    CLOSE,
    Pending,
    expected,
    finish,
    handed_over,
    until_none_expected,
    wake_all,
)
from vault.consent.access import AccessContext
from vault.consent.family import families_of
from vault.kernel.db import table_of
from vault.kernel.driver import fetch_all, fetch_in, insert_rows, update_rows
from vault.kernel.metrics import count_decisions, group_committed
from vault.store.audit_index import audit_event_rows
from vault.store.models import SHARED_OWNER, DataKey, ResourceRow
from vault.store.reads import open_sealed
from vault.store.registry import RESOURCE_TYPES
from vault.store.writes import Prepared, data_keys, insert_sealed, own_record, seal_new

if TYPE_CHECKING:
    from vault.kernel.runtime import Runtime

__all__ = [
    "GENESIS",
    "VAULT_CHAIN",
    "AuditLog",
    "AuditRecord",
    "record_id",
    "verify_chains",
]

_CONFIRM_SECONDS = 60
_IDLE_SECONDS = 0.05  # the writer settles records once no record came for this long
# How long the writer waits for the records of requests still being served before it
# commits (``_gather``): a commit's fixed cost is shared by more records, and a request
# waits at most this much longer for its own commit.
_GATHER_SECONDS = 0.001
_SETTLE_BATCH = 500  # records settled per transaction by a reader or the operator
# ... and by the writer thread between group commits: small, so a read that arrives while
# it settles waits a few milliseconds at most, not the 80 ms of 500 records.
_WRITER_BATCH = 32
# Past this many waiting records a busy writer keeps its backlog (and a reader's wait to
# settle it) bounded even while it never idles: a burst of reads pays for one row each, a
# vault under steady load pays for a whole AuditEvent per read either way. On SQLite the
# writer then stores each group's records as AuditEvents in the group's own commit
# (``AuditLog._settled_at_once``); on PostgreSQL it settles a batch after each commit.
_MAX_WAITING = 20_000
log = logging.getLogger(__name__)


# Built once (as on the write path): every read by a partner appends a record.
_ROW = table_of(ResourceRow)
_LINK = table_of(AuditChain)
_KEY = table_of(DataKey)
_AUDIT_EVENT = RESOURCE_TYPES["AuditEvent"]
_OWNERS_KEPT = 65_536


# The chain's rows go through the driver's cursor, as the store's own inserts do
# (``kernel/driver.py``): SQLAlchemy's per-row parameter handling cost the writer more than
# the statements themselves, and PostgreSQL takes each batch in one statement.
_LINK_COLUMNS = (
    "chain",
    "seq",
    "resource_pk",
    "prev_hash",
    "hash",
    "recorded",
    "version",
    "resource_id",
    "last_updated",
    "body",
    "search",
)
_HEAD_COLUMNS = ("chain", "seq", "hash")
_CHAIN_KEY = (("chain", "varchar"),)
_LINK_KEY = (("chain", "varchar"), ("seq", "bigint"))


# The heads of a batch's chains, sorted, so two transactions lock the heads they share in the
# same order (no deadlock); ``FOR UPDATE`` on PostgreSQL.
_HEADS = "SELECT chain, seq, hash FROM audit_chain_head WHERE chain IN ({in}) ORDER BY chain"
_HEADS_LOCKED = _HEADS + " FOR UPDATE"


# The data key a chain's records are sealed under: the inwoner's, or the shared one.
_OWNER_OF_CHAIN = case((_LINK.c.chain == VAULT_CHAIN, literal(SHARED_OWNER)), else_=_LINK.c.chain)
# Links whose record is not yet an AuditEvent resource and still opens (an erased
# inwoner's records never will: her key is gone, as her settled AuditEvents' is).
_WAITING = and_(
    _LINK.c.resource_pk.is_(None),
    _LINK.c.body.is_not(None),
    select(_KEY.c.owner)
    .where(_KEY.c.owner == _OWNER_OF_CHAIN, _KEY.c.wrapped.is_not(None))
    .exists(),
)


# PostgreSQL settles a batch of waiting links in one statement, from the search values each
# link was written with (``AuditLog._search_of``): the sealed body moves unopened into its
# version, as ``settle`` by opening it would store it. Under steady load the writer settled
# by opening each record (its key, AES-GCM, JSON, the index, six statements and their
# round trips); that was four fifths of its busy time (docs/performance.md). The rows are
# those of ``store/writes.insert_sealed`` for the access log's own shape; the tests compare
# the two. ``FOR UPDATE``: two settlers never store one record twice.
_SETTLE_TEMPLATE = """
WITH picked AS (
  SELECT l.chain, l.seq, l.resource_id, l.last_updated, l.body, l.search::jsonb AS found,
         NULLIF(l.chain, %(vault)s) AS patient_id
  FROM audit_chain l
  WHERE l.resource_pk IS NULL AND l.body IS NOT NULL AND l.search IS NOT NULL{chains}
    AND EXISTS (SELECT 1 FROM data_key k WHERE k.wrapped IS NOT NULL
                AND k.owner = CASE WHEN l.chain = %(vault)s THEN %(shared)s ELSE l.chain END)
  ORDER BY l.chain, l.seq
  LIMIT %(limit)s
  FOR UPDATE OF l
), stored AS (
  INSERT INTO fhir_resource
    (resource_type, resource_id, patient_id, version_id, last_updated, deleted)
  SELECT 'AuditEvent', resource_id, patient_id, 1, last_updated, false
  FROM picked ORDER BY chain, seq
  RETURNING pk, resource_id
), settled AS (
  SELECT stored.pk, picked.* FROM stored JOIN picked USING (resource_id)
), versions AS (
  INSERT INTO fhir_version (resource_pk, version_id, resource_type, resource_id, patient_id,
                            last_updated, deleted, body)
  SELECT pk, 1, 'AuditEvent', resource_id, patient_id, last_updated, false, body FROM settled
), singles AS (
  INSERT INTO search_audit_event (resource_pk, patient_id, date_low, date_high, type_system,
                                  type_hash, action_hash, outcome_hash)
  SELECT pk, patient_id, (found->>0)::bigint, (found->>1)::bigint, found->>2, found->>3,
         found->>4, found->>5
  FROM settled
), refs AS (
  INSERT INTO search_audit_reference (resource_pk, resource_type, patient_id, param,
                                      target_type, target_id)
  SELECT pk, 'AuditEvent', patient_id, ref->>0, ref->>1, ref->>2
  FROM settled CROSS JOIN LATERAL jsonb_array_elements(found->6) AS ref
)
UPDATE audit_chain l SET resource_pk = settled.pk, body = NULL, search = NULL
FROM settled WHERE l.chain = settled.chain AND l.seq = settled.seq
RETURNING l.seq
"""
_SETTLE_SQL = _SETTLE_TEMPLATE.format(chains="")
_SETTLE_CHAINS_SQL = _SETTLE_TEMPLATE.format(chains=" AND l.chain = ANY(%(chains)s)")


def _away_from_erased(record: AuditRecord, keys: Mapping[str, Any]) -> AuditRecord:
    """A record about an inwoner id without a live data key goes to the vault's own chain,
    naming the Patient, instead of being sealed under nothing: an erased inwoner's key is
    gone, and an id a caller made up (``Goal?patient=ghost-1``) never had one. Either way
    the decision is still logged, and the answer cannot tell the two apart."""
    if record.patient_id is None:
        return record
    key = keys.get(record.patient_id)
    if key is not None and key.wrapped is not None:
        return record
    entities = [f"Patient/{record.patient_id}", *record.entities]
    return replace(record, patient_id=None, entities=entities)


class AuditLog:
    """Appends records to the access log, in a caller's transaction or by group commit."""

    def __init__(self, runtime: Runtime, *, max_batch: int = 256) -> None:
        self._rt = runtime
        self._key = chain_key(runtime)
        self._queue: queue.Queue[Pending] = queue.Queue()
        self._max_batch = max_batch
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._owners: dict[str, str] = {}  # compartment -> "Patient" or "Group"
        self._unsettled = False  # this process appended records that may wait to be settled
        self._waiting = 0  # about how many of them (a hint: threads add without a lock)
        self._draining = False  # idle and settling: the next batch follows at once
        self._closed = False  # ``close`` was called: no record is taken any more
        # Past ``_MAX_WAITING``: store each group's records as AuditEvents in its own commit
        # (SQLite), or settle a batch of the backlog after it (PostgreSQL). Measured under
        # steady load (docs/performance.md): on SQLite, a record stored at once costs less
        # than one appended and settled later (read again, opened, its link rewritten, in a
        # transaction of its own); on PostgreSQL the longer group commit halved the records
        # each commit held, and the reads cost more.
        self._settled_at_once = runtime.db.is_sqlite
        # PostgreSQL settles a link in SQL from the search values it was written with
        # (``_SETTLE_SQL``); SQLite, in process, opens the record again (``_settle_opened``).
        self._settled_in_sql = not runtime.db.is_sqlite

    def append(
        self, conn: Connection, records: Iterable[AuditRecord], *, settled: bool = False
    ) -> None:
        """Write records inside the caller's transaction, chained in the order given:
        compact, waiting to be settled, or (``settled``) as AuditEvent resources at once.

        The whole batch goes in one pass: the same statements for one record or hundreds.
        """
        batch = list(records)
        if not batch:
            return
        # One read of the data keys serves both the erasure check and the sealing.
        keys = data_keys(conn, [SHARED_OWNER, *(r.patient_id for r in batch if r.patient_id)])
        batch = [_away_from_erased(r, keys) for r in batch]
        owners = self._owner_types(conn, {r.patient_id for r in batch if r.patient_id})
        # Sealed by the store as it seals any new resource, so the settled AuditEvent
        # (``insert_sealed``) is these bytes.
        items = [
            own_record(
                "AuditEvent",
                r.to_fhir(
                    resource_id=record_id(),
                    owner_type=owners.get(r.patient_id or "", "Patient"),
                ),
                r.patient_id,
            )
            for r in batch
        ]
        sealed = seal_new(self._rt, items, keys)
        if settled:  # the same resources and rows as ``settle`` stores from the links
            stored = insert_sealed(self._rt, conn, items, sealed)
            self._chain(conn, batch, items, sealed, [done.pk for done in stored], None)
        else:
            search = [self._search_of(item) for item in items] if self._settled_in_sql else None
            self._chain(conn, batch, items, sealed, None, search)
            self._unsettled = True
            self._waiting += len(batch)
        count_decisions(batch)

    def settle(
        self, conn: Connection, chains: Sequence[str] | None = None, *, limit: int = _SETTLE_BATCH
    ) -> int:
        """Store up to ``limit`` waiting records of these chains (all: None) as AuditEvent
        resources, oldest first, in the caller's transaction; returns how many.

        The resource is the sealed body of the link, unchanged, so the chain still verifies.
        On PostgreSQL the links are locked first: two settlers never store one record twice.
        """
        done = 0
        if self._settled_in_sql:
            done = len(
                fetch_all(
                    conn,
                    _SETTLE_SQL if chains is None else _SETTLE_CHAINS_SQL,
                    {
                        "vault": VAULT_CHAIN,
                        "shared": SHARED_OWNER,
                        "limit": limit,
                        "chains": list(chains or ()),
                    },
                )
            )
            if done == limit:
                return done
        # Links without their search values (SQLite's, or written before migration 0017).
        return done + self._settle_opened(conn, chains, limit - done)

    def _settle_opened(self, conn: Connection, chains: Sequence[str] | None, limit: int) -> int:
        """:meth:`settle` by opening each record: its search values read from its JSON."""
        query = select(
            _LINK.c.chain, _LINK.c.seq, _LINK.c.resource_id, _LINK.c.last_updated, _LINK.c.body
        ).where(_WAITING)
        if chains is not None:
            query = query.where(_LINK.c.chain.in_(list(chains)))
        query = query.order_by(_LINK.c.chain, _LINK.c.seq).limit(limit)
        if conn.dialect.name == "postgresql":
            query = query.with_for_update(of=_LINK)
        # Fetched at once and unpacked: a Row's attributes, and fetching row by row, cost the
        # writer more than the select.
        rows: Sequence[Any] = conn.execute(query).all()
        if not rows:
            return 0
        keys = data_keys(conn, {owner_of(chain) for chain, *_ in rows})
        items: list[Prepared] = []
        sealed: list[tuple[int, bytes, bytes]] = []
        for chain, _, resource_id, last_updated, body in rows:
            key = keys[owner_of(chain)]
            patient_id = None if chain == VAULT_CHAIN else chain
            plaintext = open_sealed(
                self._rt,
                resource_type="AuditEvent",
                resource_id=resource_id,
                version=1,
                patient_id=patient_id,
                sealed=body,
                wrapped=key.wrapped,
                key_id=key.master_key_id,
            )
            items.append(Prepared(_AUDIT_EVENT, orjson.loads(plaintext), patient_id))
            sealed.append((last_updated, plaintext, body))
        stored = insert_sealed(self._rt, conn, items, sealed)
        update_rows(
            conn,
            "audit_chain",
            (("resource_pk", "bigint"),),
            _LINK_KEY,
            [(done.pk, chain, seq) for (chain, seq, *_), done in zip(rows, stored, strict=True)],
            also="body = NULL, search = NULL",
        )
        return len(rows)

    def _search_of(self, item: Prepared) -> str | None:
        """The search values ``_SETTLE_SQL`` stores for a record: its single values, then
        its references as (param, type, id); None for a record not of the access log's own
        shape (``store/audit_index.py``), which is settled by opening it."""
        found = audit_event_rows(self._rt, item.data, 0, item.patient_id)
        if found is None:
            return None
        references, single = found
        return orjson.dumps([*single[2:], [ref[3:] for ref in references]]).decode()

    def settle_all(self, chains: Sequence[str] | None = None, *, batch: int = _SETTLE_BATCH) -> int:
        """:meth:`settle` until nothing of these chains waits, ``batch`` per transaction."""
        total = 0
        while True:
            with self._rt.db.write() as conn:
                done = self.settle(conn, chains, limit=batch)
            total += done
            if done < batch:
                return total

    def settle_for(self, ctx: AccessContext) -> None:
        """Before a caller who may read the log reads: every record it could find is an
        AuditEvent, committed before its read opens. A partner may never read the log (no
        Consent grants AuditEvent), so its requests never pay for this."""
        if ctx.kind == "system" or not ctx.may_read("AuditEvent"):
            return
        chains: list[str] | None = None
        with self._rt.db.read() as conn:
            if ctx.patient_id is not None:  # the inwoner's chain and her families'
                chains = [ctx.patient_id, *families_of(conn, ctx.patient_id)]
            elif ctx.kind != "full":
                return
            query = select(_LINK.c.seq).where(_WAITING).limit(1)
            if chains is not None:
                query = query.where(_LINK.c.chain.in_(chains))
            if conn.execute(query).first() is None:
                return
        self.settle_all(chains)

    def _owner_types(self, conn: Connection, owners: set[str]) -> dict[str, str]:
        """Whether each compartment (with a live key) is a family's: its Group is its owner.

        An owner's kind never changes once its key exists (a Patient and a Group never
        share an id: ``store/writes.create_compartment_key``), so each is asked once per
        process; the map is emptied when it grows past its bound."""
        found: dict[str, str] = {}
        unknown = []
        for owner in sorted(owners):
            kind = self._owners.get(owner)  # threads share the map: one lookup each
            if kind is None:
                unknown.append(owner)
            else:
                found[owner] = kind
        if unknown:
            groups = set(
                conn.execute(
                    select(_ROW.c.resource_id).where(
                        _ROW.c.resource_type == "Group",
                        _ROW.c.resource_id.in_(unknown),
                        _ROW.c.patient_id == _ROW.c.resource_id,
                    )
                ).scalars()
            )
            if len(self._owners) + len(unknown) > _OWNERS_KEPT:
                self._owners.clear()
            for owner in unknown:
                found[owner] = self._owners[owner] = "Group" if owner in groups else "Patient"
        return found

    def _chain(
        self,
        conn: Connection,
        batch: list[AuditRecord],
        items: list[Prepared],
        sealed: list[tuple[int, bytes, bytes]],
        resource_pks: list[int] | None,
        search: list[str | None] | None,
    ) -> None:
        """Link each sealed record (``seal_new``) to the one before it in its chain, then move
        the heads. A link holds its record's sealed body until the record is an AuditEvent
        resource (``resource_pks``, in the order of ``batch``: stored already)."""
        chains = [r.patient_id or VAULT_CHAIN for r in batch]
        found = fetch_in(
            conn, _HEADS_LOCKED if conn.dialect.name == "postgresql" else _HEADS, chains
        )
        heads: dict[str, tuple[int, str]] = {chain: (seq, digest) for chain, seq, digest in found}
        existing = set(heads)
        links: list[tuple[Any, ...]] = []
        stored: Iterable[int | None] = resource_pks or [None] * len(batch)
        values: Iterable[str | None] = search or [None] * len(batch)
        for chain, record, item, (last_updated, plaintext, body), resource_pk, found in zip(
            chains, batch, items, sealed, stored, values, strict=True
        ):
            seq, prev = heads.get(chain, (0, GENESIS))
            digest = link_hash(self._key, prev, plaintext)
            links.append(
                (
                    chain,
                    seq + 1,
                    resource_pk,  # None until the record is settled
                    prev,
                    digest,
                    record.recorded,
                    1,  # version
                    item.data["id"],
                    last_updated,
                    body if resource_pk is None else None,
                    found if resource_pk is None else None,
                )
            )
            heads[chain] = (seq + 1, digest)
        insert_rows(conn, "audit_chain", _LINK_COLUMNS, links)
        ordered = sorted(heads.items())
        insert_rows(
            conn,
            "audit_chain_head",
            _HEAD_COLUMNS,
            [(chain, seq, digest) for chain, (seq, digest) in ordered if chain not in existing],
        )
        update_rows(
            conn,
            "audit_chain_head",
            (("seq", "bigint"), ("hash", "varchar")),
            _CHAIN_KEY,
            [(seq, digest, chain) for chain, (seq, digest) in ordered if chain in existing],
        )

    def record(self, records: Sequence[AuditRecord]) -> None:
        """Write records durably before returning (used by reads); raises if that failed."""
        handed_over()
        if not records:
            return
        try:
            self._submit(records).result(timeout=_CONFIRM_SECONDS)
        except TimeoutError:  # concurrent.futures' and asyncio's are this one since 3.11
            raise RuntimeError("the access log did not confirm in time") from None
        except Exception as exc:
            raise RuntimeError("the access log could not be written") from exc

    async def record_async(self, records: Sequence[AuditRecord]) -> None:
        """:meth:`record` for a coroutine: waits for the same durable commit, off the loop."""
        handed_over()
        if not records:
            return
        pending = Pending.awaited(list(records), asyncio.get_running_loop())
        self._enqueue(pending)
        try:
            await pending.wait(_CONFIRM_SECONDS)
        except TimeoutError:
            raise RuntimeError("the access log did not confirm in time") from None
        except Exception as exc:
            raise RuntimeError("the access log could not be written") from exc

    def close(self) -> None:
        """Stop the writer once every record submitted before is durable (``Runtime.close``:
        a writer that outlived its runtime went on settling, and restarted the checkpoint
        thread of a database that was closed). A record submitted after this is refused."""
        with self._lock:
            self._closed = True
            thread = self._thread
            self._queue.put(CLOSE)
        wake_all()  # a writer waiting for requests still being served (``_gather``)
        if thread is not None:
            thread.join(timeout=_CONFIRM_SECONDS)

    def _submit(self, records: Sequence[AuditRecord]) -> Future[None]:
        pending = Pending(list(records))
        self._enqueue(pending)
        return pending.done

    def _enqueue(self, pending: Pending) -> None:
        with self._lock:
            if self._closed:
                raise RuntimeError("the access log is closed")
            self._start_writer()
            self._queue.put(pending)

    def _ensure_thread(self) -> None:
        with self._lock:
            self._start_writer()

    def _start_writer(self) -> None:
        """Under ``_lock``: the writer thread, started when none runs."""
        if self._thread is None or not self._thread.is_alive():
            self._thread = threading.Thread(target=self._run, name="audit-writer", daemon=True)
            self._thread.start()

    def _run(self) -> None:
        while True:
            try:
                if self._draining:
                    first = self._queue.get_nowait()
                else:
                    first = self._queue.get(timeout=_IDLE_SECONDS if self._unsettled else None)
            except queue.Empty:
                self._draining = self._settle_some()
                continue
            if first is CLOSE:
                return
            self._draining = False  # a record came: the next idle moment is waited for again
            batch = [first]
            closing = self._take_queued(batch) or self._gather(batch)
            behind = self._waiting > _MAX_WAITING
            self._write_group(batch, settled=behind and self._settled_at_once)
            if closing:
                return
            if not self._settled_at_once and self._waiting > _MAX_WAITING:
                self._settle_some()

    def _gather(self, batch: list[Pending]) -> bool:
        """Before a group commit: while requests are still being served that will hand
        records over (``waiting.expecting``), wait for them, ``_GATHER_SECONDS`` at most,
        then take what came. Returns whether ``close`` was asked meanwhile (the batch is
        then written first)."""
        if not expected():
            return False
        until_none_expected(_GATHER_SECONDS, lambda: self._closed)
        return self._take_queued(batch)

    def _take_queued(self, batch: list[Pending]) -> bool:
        """Add what waits in the queue to ``batch``, up to its bound, without waiting.
        Returns whether ``close`` was asked (the batch is then written first)."""
        while len(batch) < self._max_batch:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                return False
            if item is CLOSE:
                return True
            batch.append(item)
        return False

    def _write_group(self, batch: list[Pending], *, settled: bool) -> None:
        records = [r for pending in batch for r in pending.records]
        try:
            with self._rt.db.write() as conn:
                self.append(conn, records, settled=settled)
        except Exception as exc:
            log.error("access log write failed: %s", type(exc).__name__)
            if len(batch) == 1:
                finish(batch, exc)
                return
            # One request's records must never fail another's: the group is rolled back
            # whole, so each request is written again in a transaction of its own.
            for pending in batch:
                self._write_alone(pending)
            return
        group_committed(records=len(records), oldest_queued=batch[0].queued)
        finish(batch, None)

    def _settle_some(self) -> bool:
        """Settle one small batch: when idle (batch after batch until nothing is left or a
        record comes, which always goes first), or after a commit past ``_MAX_WAITING``.
        Returns whether more may wait."""
        try:
            with self._rt.db.write() as conn:
                done = self.settle(conn, limit=_WRITER_BATCH)
        except Exception as exc:  # retried at the next idle moment; readers settle too
            log.error("access log settle failed: %s", type(exc).__name__)
            done = 0
        self._waiting = max(0, self._waiting - done)
        if done < _WRITER_BATCH:
            self._unsettled, self._waiting = False, 0
        return self._unsettled

    def _write_alone(self, pending: Pending) -> None:
        try:
            with self._rt.db.write() as conn:
                self.append(conn, pending.records)
        except Exception as exc:  # only this request fails; it is not acknowledged
            log.error("access log write failed: %s", type(exc).__name__)
            finish([pending], exc)
        else:
            finish([pending], None)
