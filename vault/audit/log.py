"""The access log (NEN 7513): an AuditEvent for every access decision, hash-chained.

Each record is a FHIR R4 AuditEvent (https://hl7.org/fhir/R4/auditevent.html) stored like
any other resource of the inwoner: sealed under the inwoner's data key, searchable with
``AuditEvent?patient=…`` by the inwoner, and never by a partner (the consent engine does not
grant AuditEvent). Records are append-only: no API updates or deletes them.

Every record is also a link in its inwoner's chain (``audit_chain``): ``hash = HMAC(key,
prev_hash ‖ record)``, with a key only the master key opens, so a changed, removed or
reordered record is detected by ``vault audit verify``. Records that concern no inwoner
(a read of an id that does not exist) go to the vault's own chain.

Writes log in their own transaction: a failed audit write fails the request. Reads log
through a group-commit writer: the request waits until its record is durable, and many
requests share one commit, so an acknowledged read's record survives a kill. A batch of
records costs the same ten or so statements whether it holds one record or hundreds. When
a group's commit fails, each request in it is written again on its own, so one record that
cannot be written fails only the request it belongs to.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import logging
import os
import queue
import threading
import time
import uuid
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from sqlalchemy import BindParameter, Connection, Select, bindparam, insert, select, update

from vault.audit.models import AuditChain, AuditChainHead
from vault.kernel.db import InList, table_of
from vault.kernel.fhirdata import format_instant
from vault.kernel.metrics import count_decisions, group_committed
from vault.store.models import SHARED_OWNER, DataKey, ResourceRow
from vault.store.reads import open_version
from vault.store.writes import Stored, data_keys, write_internal_many

if TYPE_CHECKING:
    from vault.kernel.runtime import Runtime

__all__ = ["VAULT_CHAIN", "AuditLog", "AuditRecord", "verify_chains"]

VAULT_CHAIN = "_vault"
GENESIS = "0" * 64
_CONFIRM_SECONDS = 60
log = logging.getLogger(__name__)

_ACTIONS = {
    "read": "R",
    "vread": "R",
    "search-type": "E",
    "history-instance": "R",
    "history-type": "R",
    "create": "C",
    "update": "U",
    "delete": "D",
    "export": "E",
}


@dataclass(frozen=True, slots=True)
class AuditRecord:
    """One access decision. ``patient_id`` None: it concerns no known inwoner."""

    patient_id: str | None
    interaction: str  # restful-interaction code: read, search-type, update, ...
    permitted: bool
    client_id: str | None
    organization: str | None  # "Organization/x"
    account_id: str | None
    entities: Sequence[str] = ()  # "Type/id" the decision was about
    query: str | None = None  # the search, as sent
    purposes: Sequence[str] = ()
    representative: str | None = None  # "RelatedPerson/x" acting on behalf of the inwoner
    recorded: int = 0

    def to_fhir(self, *, resource_id: str, owner_type: str = "Patient") -> dict[str, Any]:
        """The AuditEvent; ``owner_type`` is what owns the compartment: an inwoner's
        ``Patient``, or a family's ``Group`` (the family plan, docs/family.md section 6)."""
        # Long on purpose: one AuditEvent document, element by element, as FHIR R4 lays it out.
        owner = f"{owner_type}/{self.patient_id}" if self.patient_id else None
        agent: dict[str, Any] = {
            "type": {
                "coding": [
                    {
                        "system": "http://terminology.hl7.org/CodeSystem/v3-ParticipationType",
                        "code": "IRCP" if self.organization else "AUT",
                    }
                ]
            },
            "requestor": True,
        }
        if self.organization:
            agent["who"] = {"reference": self.organization}
        elif self.patient_id and owner_type == "Patient":
            # The inwoner herself, her app or someone acting for her. In a family's
            # compartment the member is known by her account only (``name`` below).
            agent["who"] = {"reference": f"Patient/{self.patient_id}"}
        if self.client_id:
            agent["altId"] = self.client_id
        if self.account_id:
            agent["name"] = f"account {self.account_id}"
        agents = [agent]
        if self.representative:
            agents.append(
                {
                    "who": {"reference": self.representative},
                    "requestor": True,
                    "type": {
                        "coding": [
                            {
                                "system": "http://terminology.hl7.org/CodeSystem/v3-RoleClass",
                                "code": "AGNT",
                            }
                        ]
                    },
                }
            )
        entities: list[dict[str, Any]] = []
        if owner is not None:
            entities.append(
                {
                    "what": {"reference": owner},
                    "type": {
                        "system": "http://terminology.hl7.org/CodeSystem/audit-entity-type",
                        "code": "1",
                    },
                }
            )
        entities += [{"what": {"reference": ref}} for ref in self.entities if ref != owner]
        if self.query:
            entities.append({"query": base64.b64encode(self.query.encode()).decode("ascii")})
        event: dict[str, Any] = {
            "resourceType": "AuditEvent",
            "id": resource_id,
            "type": {
                "system": "http://terminology.hl7.org/CodeSystem/audit-event-type",
                "code": "rest",
                "display": "RESTful Operation",
            },
            "subtype": [
                {"system": "http://hl7.org/fhir/restful-interaction", "code": self.interaction}
            ],
            "action": _ACTIONS.get(self.interaction, "E"),
            "recorded": format_instant(self.recorded),
            "outcome": "0" if self.permitted else "4",
            "agent": agents,
            "source": {"observer": {"display": "Regiekluis"}},
        }
        if not self.permitted:
            event["outcomeDesc"] = "denied: outside the inwoner's consent"
        if self.purposes:
            event["purposeOfEvent"] = [
                {
                    "coding": [
                        {"system": "http://terminology.hl7.org/CodeSystem/v3-ActReason", "code": p}
                    ]
                }
                for p in self.purposes
            ]
        if entities:
            event["entity"] = entities
        return event


@dataclass
class _Pending:
    records: list[AuditRecord]
    # A concurrent Future: a thread-pool route blocks on it, an async route awaits it,
    # and the event loop stays free while the group commit is on its way to disk.
    done: Future[None] = field(default_factory=Future)
    queued: float = field(default_factory=time.perf_counter)  # for the group-wait metric


# Built once (as on the write path): every read by a partner appends a record.
_HEAD = table_of(AuditChainHead)
_ROW = table_of(ResourceRow)
_OWNERS_KEPT = 65_536


def _heads_of(chains: list[BindParameter[Any]]) -> Select[Any]:
    # Sorted, so two transactions lock the heads they share in the same order: no deadlock.
    return (
        select(_HEAD.c.chain, _HEAD.c.seq, _HEAD.c.hash)
        .where(_HEAD.c.chain.in_(chains))
        .order_by(_HEAD.c.chain)
    )


_HEADS_OF = InList(_heads_of)
_LOCK_HEADS = InList(lambda chains: _heads_of(chains).with_for_update())
_INSERT_LINK = insert(table_of(AuditChain))
_INSERT_HEAD = insert(_HEAD)
_MOVE_HEAD = (
    update(_HEAD)
    .where(_HEAD.c.chain == bindparam("head_chain"))
    .values(seq=bindparam("seq"), hash=bindparam("hash"))
)


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


def record_id() -> str:
    """A new AuditEvent's id: a UUID version 7 (RFC 9562 5.7), 48 bits of Unix milliseconds
    then 74 random bits, so a group commit's records share the right-hand page of the id
    index instead of dirtying a random page each (docs/performance.md). The id tells when
    the record was written, as the record does; only its inwoner can read either."""
    millis = time.time_ns() // 1_000_000
    rand = int.from_bytes(os.urandom(10), "big")
    version, variant = 0x7 << 76, 0b10 << 62
    value = (millis & 0xFFFF_FFFF_FFFF) << 80 | version | (rand >> 68) << 64 | variant
    return str(uuid.UUID(int=value | (rand & ((1 << 62) - 1))))


def _chain_key(runtime: Runtime) -> bytes:
    return runtime.blind.derive(b"regiekluis/audit-chain")


def _link(key: bytes, prev_hash: str, body: bytes) -> str:
    return hmac.new(key, prev_hash.encode("ascii") + body, hashlib.sha256).hexdigest()


class AuditLog:
    """Appends records to the access log, in a caller's transaction or by group commit."""

    def __init__(self, runtime: Runtime, *, max_batch: int = 256) -> None:
        self._rt = runtime
        self._key = _chain_key(runtime)
        self._queue: queue.Queue[_Pending] = queue.Queue()
        self._max_batch = max_batch
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._owners: dict[str, str] = {}  # compartment -> "Patient" or "Group"

    def append(self, conn: Connection, records: Iterable[AuditRecord]) -> None:
        """Write records inside the caller's transaction, chained in the order given.

        The whole batch goes in one pass: the same statements for one record or hundreds.
        """
        batch = list(records)
        if not batch:
            return
        # One read of the data keys serves both the erasure check and the sealing.
        keys = data_keys(conn, [SHARED_OWNER, *(r.patient_id for r in batch if r.patient_id)])
        batch = [_away_from_erased(r, keys) for r in batch]
        owners = self._owner_types(conn, {r.patient_id for r in batch if r.patient_id})
        stored = write_internal_many(
            self._rt,
            conn,
            [
                (
                    "AuditEvent",
                    r.to_fhir(
                        resource_id=record_id(),
                        owner_type=owners.get(r.patient_id or "", "Patient"),
                    ),
                    r.patient_id,
                )
                for r in batch
            ],
            keys=keys,
        )
        self._chain(conn, batch, stored)
        count_decisions(batch)

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

    def _chain(self, conn: Connection, batch: list[AuditRecord], stored: list[Stored]) -> None:
        """Link each stored record to the one before it in its chain, then move the heads."""
        chains = [r.patient_id or VAULT_CHAIN for r in batch]
        heads_of = _LOCK_HEADS if conn.dialect.name == "postgresql" else _HEADS_OF
        found = conn.execute(*heads_of.bind(chains)).all()
        heads: dict[str, tuple[int, str]] = {row.chain: (row.seq, row.hash) for row in found}
        existing = set(heads)
        links: list[dict[str, Any]] = []
        for chain, record, written in zip(chains, batch, stored, strict=True):
            seq, prev = heads.get(chain, (0, GENESIS))
            digest = _link(self._key, prev, written.body or b"")
            links.append(
                {
                    "chain": chain,
                    "seq": seq + 1,
                    "resource_pk": written.pk,
                    "prev_hash": prev,
                    "hash": digest,
                    "recorded": record.recorded,
                    "version": 1,
                }
            )
            heads[chain] = (seq + 1, digest)
        conn.execute(_INSERT_LINK, links)
        new = [
            {"chain": chain, "seq": seq, "hash": digest}
            for chain, (seq, digest) in sorted(heads.items())
            if chain not in existing
        ]
        moved = [
            {"head_chain": chain, "seq": seq, "hash": digest}
            for chain, (seq, digest) in sorted(heads.items())
            if chain in existing
        ]
        if new:
            conn.execute(_INSERT_HEAD, new)
        if moved:
            conn.execute(_MOVE_HEAD, moved)

    def record(self, records: Sequence[AuditRecord]) -> None:
        """Write records durably before returning (used by reads); raises if that failed."""
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
        if not records:
            return
        try:
            async with asyncio.timeout(_CONFIRM_SECONDS):
                await asyncio.wrap_future(self._submit(records))
        except TimeoutError:
            raise RuntimeError("the access log did not confirm in time") from None
        except Exception as exc:
            raise RuntimeError("the access log could not be written") from exc

    def _submit(self, records: Sequence[AuditRecord]) -> Future[None]:
        pending = _Pending(list(records))
        self._ensure_thread()
        self._queue.put(pending)
        return pending.done

    def _ensure_thread(self) -> None:
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="audit-writer", daemon=True)
                self._thread.start()

    def _run(self) -> None:
        while True:
            batch = [self._queue.get()]
            while len(batch) < self._max_batch:
                try:
                    batch.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            try:
                with self._rt.db.write() as conn:
                    self.append(conn, [r for pending in batch for r in pending.records])
            except Exception as exc:
                log.error("access log write failed: %s", type(exc).__name__)
                if len(batch) == 1:
                    batch[0].done.set_exception(exc)
                    continue
                # One request's records must never fail another's: the group is rolled
                # back whole, so each request is written again in a transaction of its own.
                for pending in batch:
                    self._write_alone(pending)
                continue
            group_committed(
                records=sum(len(p.records) for p in batch), oldest_queued=batch[0].queued
            )
            for pending in batch:
                pending.done.set_result(None)

    def _write_alone(self, pending: _Pending) -> None:
        try:
            with self._rt.db.write() as conn:
                self.append(conn, pending.records)
        except Exception as exc:  # only this request fails; it is not acknowledged
            log.error("access log write failed: %s", type(exc).__name__)
            pending.done.set_exception(exc)
        else:
            pending.done.set_result(None)


def verify_chains(runtime: Runtime, *, notes: list[str] | None = None) -> list[str]:
    """Check every chain; returns one message per broken chain (empty: all intact).

    The chain of an erased inwoner cannot be opened any more (its data key is destroyed):
    it is reported in ``notes`` as erased, not as broken, and what can still be checked is
    checked: the erasure record (the destroyed key's row) is in place, every link is there
    in order, each follows the one before it, and the head is the last link.
    """
    # Long on purpose: one pass over every chain; each check needs the state of the one before.
    key = _chain_key(runtime)
    problems: list[str] = []
    with runtime.db.read() as conn:
        heads = {row.chain: row for row in conn.execute(select(AuditChainHead))}
        chains = sorted({row[0] for row in conn.execute(select(AuditChain.chain))} | set(heads))
        shredded = {
            row.owner: row.destroyed_at
            for row in conn.execute(
                select(DataKey.owner, DataKey.destroyed_at).where(DataKey.wrapped.is_(None))
            )
        }
        for chain in chains:
            erased = chain in shredded
            prev, expected_seq = GENESIS, 1
            links = conn.execute(
                select(AuditChain, ResourceRow.resource_id)
                .join(ResourceRow, ResourceRow.pk == AuditChain.resource_pk)
                .where(AuditChain.chain == chain)
                .order_by(AuditChain.seq)
            ).all()
            broken = None
            if erased and shredded[chain] is None:
                broken = f"chain {chain}: its data key is gone without a record of the erasure"
            for link in links if broken is None else ():
                where = f"chain {chain}, record {link.seq} (AuditEvent/{link.resource_id})"
                if link.seq != expected_seq:
                    broken = f"{where}: record {expected_seq} is missing"
                    break
                if link.prev_hash != prev:
                    broken = f"{where}: does not follow the record before it"
                    break
                if not erased:
                    try:
                        body = open_version(runtime, conn, link.resource_pk, 1)
                    except Exception:
                        broken = f"{where}: the record cannot be opened"
                        break
                    if not hmac.compare_digest(_link(key, prev, body), link.hash):
                        broken = f"{where}: the record was changed"
                        break
                prev, expected_seq = link.hash, expected_seq + 1
            head = heads.get(chain)
            if (
                broken is None
                and head is not None
                and (head.seq != expected_seq - 1 or head.hash != prev)
            ):
                broken = f"chain {chain}: records after {expected_seq - 1} are missing"
            if broken is not None:
                problems.append(broken)
            elif erased and notes is not None:
                when = format_instant(shredded[chain] or 0)
                notes.append(
                    f"chain {chain}: erased at {when}; its {expected_seq - 1} records can no "
                    "longer be opened, their links are in place and in order"
                )
    return problems
