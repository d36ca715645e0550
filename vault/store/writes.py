"""Writing resources into the store: seal, insert the row and version, index, keys.

The FHIR layer's repository decides whether a caller may write and what the write means
(versions, Consent grants, Provenance); what lands in the tables is done here, the same for
every writer. The vault's own records (AuditEvent, Provenance) are written with
``write_internal_many``: no caller, no access check, a fixed number of statements however
many records there are. Nothing here commits: every function runs inside the transaction
the caller opened (``Database.write``).
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import orjson
from sqlalchemy import Connection, bindparam, insert, select

from vault.kernel.crypto import new_data_key, seal_body
from vault.kernel.db import table_of
from vault.kernel.driver import fetch_all, fetch_in, insert_rows
from vault.kernel.errors import Unprocessable
from vault.kernel.fhirdata import format_instant
from vault.kernel.runtime import Runtime, now_micros
from vault.store.audit_index import audit_event_rows
from vault.store.index import (
    AUDIT_EVENT,
    DATE_COLUMNS,
    REFERENCE_COLUMNS,
    SINGLE_COLUMNS,
    TOKEN_COLUMNS,
    index_rows,
)
from vault.store.keys import wrapping_key
from vault.store.models import (
    SHARED_OWNER,
    DataKey,
    ResourceRow,
    VersionRow,
)
from vault.store.registry import RESOURCE_TYPES, ResourceType

__all__ = [
    "DATA_KEY",
    "INSERT_RESOURCE",
    "INSERT_VERSION",
    "Prepared",
    "Stored",
    "data_keys",
    "ensure_data_key",
    "insert_records",
    "insert_sealed",
    "own_record",
    "seal",
    "seal_new",
    "version_row",
    "write_internal",
    "write_internal_many",
]

R = ResourceRow.__table__.c
K = DataKey.__table__.c

# The write path's statements, built once: building ``insert(...).values(...)`` for every
# row cost more than executing it, and every read by a partner writes an AuditEvent.
INSERT_RESOURCE = insert(table_of(ResourceRow)).returning(R.pk)
# Many rows in one INSERT ("insertmanyvalues"). The rows come back matched by their unique
# (type, id), not by order: on SQLite, sort_by_parameter_order would insert row by row.
INSERT_VERSION = insert(table_of(VersionRow))
DATA_KEY = select(K.wrapped, K.master_key_id).where(K.owner == bindparam("owner"))
# Through the driver (``fetch_in``): every access-log batch reads its owners' keys, and
# SQLAlchemy's compiling and rows cost a group commit more than the select itself.
_DATA_KEYS = "SELECT owner, wrapped, master_key_id FROM data_key WHERE owner IN ({in})"


class KeyRow(NamedTuple):
    """One owner's ``data_key`` row, as :func:`data_keys` gives it."""

    owner: str
    wrapped: bytes | None  # None once the owner was erased (crypto-shredded)
    master_key_id: str


@dataclass(frozen=True, slots=True)
class Stored:
    resource_type: str
    resource_id: str
    version_id: int
    last_updated: int
    deleted: bool
    body: bytes | None  # the resource's JSON, None for a deletion
    patient_id: str | None = None  # the compartment it belongs to
    pk: int = 0

    @property
    def etag(self) -> str:
        return f'W/"{self.version_id}"'


@dataclass(frozen=True, slots=True)
class Prepared:
    """A resource ready to be written: its type, its JSON (meta stamped on sealing) and the
    compartment it belongs to."""

    spec: ResourceType
    data: dict[str, Any]
    patient_id: str | None


def seal(
    runtime: Runtime, prepared: Prepared, key: Any, *, resource_id: str, version: int, now: int
) -> tuple[bytes, bytes]:
    """Stamps the server's meta on the resource and seals it: (its JSON, the sealed body).

    ``key`` is the owner's ``data_key`` row (wrapped, master_key_id), None if it has none.
    """
    data = prepared.data
    data["meta"] = {
        **data["meta"],
        "versionId": str(version),
        "lastUpdated": format_instant(now),
    }
    plaintext = orjson.dumps(data)
    if key is None:
        raise Unprocessable("This inwoner's vault was erased")
    owner = prepared.patient_id or SHARED_OWNER
    aead = runtime.keys.aead(owner=owner, key_id=key.master_key_id, wrapped=key.wrapped)
    sealed = seal_body(
        aead,
        resource_type=prepared.spec.name,
        resource_id=resource_id,
        version=version,
        plaintext=plaintext,
    )
    return plaintext, sealed


def insert_records(
    runtime: Runtime, conn: Connection, items: Sequence[Prepared], keys: Mapping[str, Any] | None
) -> list[Stored]:
    """New resources of the vault's own (version 1), in a fixed number of statements.

    Only types without side effects on write: a Patient needs its data key made and a
    Consent its grants compiled, which ``_insert`` does one resource at a time.
    """
    # Long on purpose: a fixed number of statements for any number of records: seal, insert, index
    # in one pass.
    if not items:
        return []
    assert all(p.spec.name not in ("Patient", "Consent") for p in items)
    if keys is None:
        keys = data_keys(conn, [p.patient_id or SHARED_OWNER for p in items])
    # Sealed before anything is written, so an erased owner fails the batch up front.
    return insert_sealed(runtime, conn, items, seal_new(runtime, items, keys))


def seal_new(
    runtime: Runtime, items: Sequence[Prepared], keys: Mapping[str, Any]
) -> list[tuple[int, bytes, bytes]]:
    """Each item sealed as its version 1: (last updated, JSON, sealed body), what
    :func:`insert_sealed` stores. ``keys``: the owners' :func:`data_keys`."""
    sealed: list[tuple[int, bytes, bytes]] = []
    for prepared in items:
        now = now_micros()
        plaintext, body = seal(
            runtime,
            prepared,
            keys.get(prepared.patient_id or SHARED_OWNER),
            resource_id=prepared.data["id"],
            version=1,
            now=now,
        )
        sealed.append((now, plaintext, body))
    return sealed


def own_record(resource_type: str, data: dict[str, Any], patient_id: str | None) -> Prepared:
    """One of the vault's own records (AuditEvent, Provenance), ready to seal as version 1."""
    return Prepared(
        RESOURCE_TYPES[resource_type],
        {**data, "meta": {"versionId": "1", "lastUpdated": ""}},
        patient_id,
    )


def insert_sealed(
    runtime: Runtime,
    conn: Connection,
    items: Sequence[Prepared],
    sealed: Sequence[tuple[int, bytes, bytes]],
) -> list[Stored]:
    """:func:`insert_records` for records sealed already: (last updated, JSON, sealed body)
    each, the JSON's ``meta`` stamped with that instant and version 1. The access log seals
    its records when it chains them and stores them here later (``audit/log.py``)."""
    # Long on purpose: a fixed number of statements for any number of records: insert and index
    # in one pass.
    # Through the driver's cursor: SQLAlchemy's per-row parameter handling cost these
    # inserts more than SQLite took to run them (docs/performance.md, the access log).
    style = "?" if conn.dialect.paramstyle == "qmark" else "%s"
    pks: dict[tuple[str, str], int] = {}
    rows = [
        (prepared.spec.name, prepared.data["id"], prepared.patient_id, 1, now, False)
        for prepared, (now, _, _) in zip(items, sealed, strict=True)
    ]
    for start in range(0, len(rows), _ROWS_PER_INSERT):
        chunk = rows[start : start + _ROWS_PER_INSERT]
        sql = _insert_resources_sql(style, len(chunk))
        for pk, resource_type, resource_id in fetch_all(conn, sql, [v for r in chunk for v in r]):
            pks[(resource_type, resource_id)] = pk
    stored: list[Stored] = []
    versions: list[tuple[Any, ...]] = []
    tokens: list[tuple[Any, ...]] = []
    refs: list[tuple[Any, ...]] = []
    audit_refs: list[tuple[Any, ...]] = []  # an AuditEvent's: ``models.SearchAuditReference``
    dates: list[tuple[Any, ...]] = []
    singles: list[tuple[Any, ...]] = []
    for prepared, (now, plaintext, body) in zip(items, sealed, strict=True):
        spec, resource_id = prepared.spec, prepared.data["id"]
        pk = pks[(spec.name, resource_id)]
        versions.append((pk, 1, spec.name, resource_id, prepared.patient_id, now, False, body))
        audit = spec.name == AUDIT_EVENT
        references = audit_refs if audit else refs
        direct = (
            audit_event_rows(runtime, prepared.data, pk, prepared.patient_id) if audit else None
        )
        if direct is not None:  # the access log's own shape: the same rows, read directly
            references.extend(direct[0])
            singles.append(direct[1])
        else:
            more_tokens, more_refs, more_dates, more_singles = index_rows(runtime, prepared, pk)
            tokens += [tuple(t[c] for c in TOKEN_COLUMNS) for t in more_tokens]
            references.extend(tuple(t[c] for c in REFERENCE_COLUMNS) for t in more_refs)
            dates += [tuple(t[c] for c in DATE_COLUMNS) for t in more_dates]
            singles += [tuple(t[c] for c in SINGLE_COLUMNS) for t in more_singles]
        stored.append(
            Stored(spec.name, resource_id, 1, now, False, plaintext, prepared.patient_id, pk)
        )
    for table, columns, many in (
        ("fhir_version", _VERSION_COLUMNS, versions),
        ("search_token", TOKEN_COLUMNS, tokens),
        ("search_reference", REFERENCE_COLUMNS, refs),
        ("search_audit_reference", REFERENCE_COLUMNS, audit_refs),
        ("search_date", DATE_COLUMNS, dates),
        ("search_audit_event", SINGLE_COLUMNS, singles),
    ):
        insert_rows(conn, table, columns, many)
    return stored


_ROWS_PER_INSERT = 500
_VERSION_COLUMNS = (
    "resource_pk",
    "version_id",
    "resource_type",
    "resource_id",
    "patient_id",
    "last_updated",
    "deleted",
    "body",
)


def _placeholders(style: str, count: int) -> str:
    return "(" + ", ".join([style] * count) + ")"


@functools.lru_cache(maxsize=64)
def _insert_resources_sql(style: str, rows: int) -> str:
    values = ", ".join([_placeholders(style, 6)] * rows)
    return (
        "INSERT INTO fhir_resource"  # noqa: S608 (this module's names and placeholders only)
        " (resource_type, resource_id, patient_id, version_id, last_updated, deleted)"
        f" VALUES {values} RETURNING pk, resource_type, resource_id"
    )


def ensure_data_key(runtime: Runtime, conn: Connection, patient_id: str) -> None:
    found = conn.execute(select(K.owner).where(K.owner == patient_id)).first()
    if found is None:
        master = wrapping_key(conn, runtime.keys.keyring)
        conn.execute(
            insert(DataKey).values(
                owner=patient_id,
                wrapped=master.wrap(new_data_key(), owner=patient_id),
                master_key_id=master.key_id,
                created_at=now_micros(),
            )
        )


def create_compartment_key(
    runtime: Runtime, conn: Connection, owner: str, *, owner_type: str
) -> None:
    """The key of a new compartment (a new Patient's, or a new family's Group's). An id
    that owns a key already (another Patient's or Group's, or an erased one's) is refused:
    sharing it would merge two compartments into one."""
    if conn.execute(DATA_KEY, {"owner": owner}).first() is not None:
        raise Unprocessable(
            f"{owner_type}/{owner}: this id already names a compartment; choose another id",
            expression=[f"{owner_type}.id"],
        )
    ensure_data_key(runtime, conn, owner)


def version_row(
    prepared: Prepared, *, pk: int, resource_id: str, version: int, now: int, body: bytes
) -> dict[str, Any]:
    return {
        "resource_pk": pk,
        "version_id": version,
        "resource_type": prepared.spec.name,
        "resource_id": resource_id,
        "patient_id": prepared.patient_id,
        "last_updated": now,
        "deleted": False,
        "body": body,
    }


def write_internal(
    runtime: Runtime,
    conn: Connection,
    resource_type: str,
    data: dict[str, Any],
    *,
    patient_id: str | None,
) -> Stored:
    """The vault's own records (AuditEvent, Provenance): no caller, no access check."""
    (stored,) = write_internal_many(runtime, conn, [(resource_type, data, patient_id)])
    return stored


def data_keys(conn: Connection, owners: Iterable[str]) -> dict[str, KeyRow]:
    """The ``data_key`` rows (owner, wrapped, master_key_id) of these owners, by owner.

    An owner without a row is missing; an erased one has ``wrapped`` None.
    """
    return {row[0]: KeyRow(*row) for row in fetch_in(conn, _DATA_KEYS, owners)}


def write_internal_many(
    runtime: Runtime,
    conn: Connection,
    items: Sequence[tuple[str, dict[str, Any], str | None]],
    *,
    keys: Mapping[str, Any] | None = None,
) -> list[Stored]:
    """:func:`write_internal` for many records at once: (resource type, data, patient id)
    each, stored in that order, in the same few statements however many there are.

    ``keys``: the owners' :func:`data_keys` if the caller read them already (every patient
    id, and ``SHARED_OWNER`` for records of none); read here when None.
    """
    return insert_records(
        runtime,
        conn,
        [own_record(resource_type, data, patient_id) for resource_type, data, patient_id in items],
        keys,
    )
