"""The partner database sink: granted resources as rows of the partner's SQL database.

SQLAlchemy Core, so the same code writes SQLite and PostgreSQL. Two tables, created when
missing:

``vault_record``     one row per resource the partner may see: type, id, the inwoner, the
                     version held, when it changed, the fields a case worker looks for
                     (``status``, ``title``, ``period_start``/``period_end``) and the full
                     FHIR JSON for anything else.
``vault_watermark``  the sync's watermarks, written in the same transaction as the rows.

A resource that is no longer granted is deleted from ``vault_record`` — the row, not a
flag: the partner keeps nothing the inwoner stopped sharing.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from sqlalchemy import (
    Column,
    Connection,
    MetaData,
    String,
    Table,
    Text,
    create_engine,
    delete,
    insert,
    select,
    update,
)

from adapters.base import Adapter, patient_of

__all__ = ["SinkAdapter", "metadata", "records", "watermarks"]

metadata = MetaData()
records = Table(
    "vault_record",
    metadata,
    Column("resource_type", String(40), primary_key=True),
    Column("resource_id", String(64), primary_key=True),
    Column("patient_id", String(64), index=True, nullable=True),
    Column("version_id", String(16), nullable=False),
    Column("last_updated", String(40), nullable=False),
    Column("status", String(40), nullable=True),
    Column("title", Text, nullable=True),
    Column("period_start", String(40), nullable=True),
    Column("period_end", String(40), nullable=True),
    Column("body", Text, nullable=False),
)
watermarks = Table(
    "vault_watermark",
    metadata,
    Column("key", String(200), primary_key=True),
    Column("value", String(40), nullable=False),
)


def _text(value: Any) -> str | None:
    return None if value is None else str(value)


def _columns(resource: Any) -> dict[str, Any]:
    """The partner's view of one resource: the columns a case worker filters on."""
    kind = resource.get_resource_type()
    status = getattr(resource, "lifecycleStatus", None) or getattr(resource, "status", None)
    title = None
    period = getattr(resource, "period", None)
    if kind == "Goal":
        title = resource.description.text if resource.description else None
    elif kind == "CarePlan":
        title = resource.title or resource.description
    elif kind == "CareTeam":
        title = resource.name
    meta = resource.meta
    return {
        "resource_type": kind,
        "resource_id": resource.id,
        "patient_id": patient_of(resource),
        "version_id": str(meta.versionId) if meta and meta.versionId else "",
        "last_updated": meta.lastUpdated.isoformat() if meta and meta.lastUpdated else "",
        "status": _text(status),
        "title": _text(title),
        "period_start": _text(period.start) if period is not None else None,
        "period_end": _text(period.end) if period is not None else None,
        "body": resource.model_dump_json(),
    }


class SinkAdapter(Adapter):
    """Settings: ``database_url`` (SQLAlchemy URL of the partner's database)."""

    name = "sink"

    def __init__(self, settings: Mapping[str, Any]) -> None:
        super().__init__(settings)
        url = self.settings.get("database_url")
        if not isinstance(url, str) or not url:
            raise ValueError("the sink adapter needs database_url in [adapter.settings]")
        self.engine = create_engine(url)
        metadata.create_all(self.engine)
        self._conn: Connection | None = None

    @contextmanager
    def transaction(self) -> Iterator[Connection]:
        with self.engine.begin() as conn:
            self._conn = conn
            try:
                yield conn
            finally:
                self._conn = None

    @contextmanager
    def _connection(self) -> Iterator[Connection]:
        if self._conn is not None:
            yield self._conn
        else:
            with self.transaction() as conn:
                yield conn

    def get_watermark(self, key: str) -> str | None:
        with self._connection() as conn:
            value = conn.scalar(select(watermarks.c.value).where(watermarks.c.key == key))
        return None if value is None else str(value)

    def set_watermark(self, key: str, value: str) -> None:
        with self._connection() as conn:
            changed = conn.execute(
                update(watermarks).where(watermarks.c.key == key).values(value=value)
            )
            if changed.rowcount == 0:
                conn.execute(insert(watermarks).values(key=key, value=value))

    def known(self, resource_type: str, patient_id: str | None) -> dict[str, str]:
        stmt = select(records.c.resource_id, records.c.version_id).where(
            records.c.resource_type == resource_type
        )
        if patient_id is not None:
            stmt = stmt.where(records.c.patient_id == patient_id)
        with self._connection() as conn:
            return {row.resource_id: row.version_id for row in conn.execute(stmt)}

    def upsert(self, resource: Any) -> None:
        values = _columns(resource)
        key = (records.c.resource_type == values["resource_type"]) & (
            records.c.resource_id == values["resource_id"]
        )
        with self._connection() as conn:
            if conn.execute(update(records).where(key).values(**values)).rowcount == 0:
                conn.execute(insert(records).values(**values))

    def remove(self, reference: str) -> None:
        resource_type, _, resource_id = reference.partition("/")
        with self._connection() as conn:
            conn.execute(
                delete(records).where(
                    records.c.resource_type == resource_type, records.c.resource_id == resource_id
                )
            )

    def to_fhir(self, record: Any) -> dict[str, Any]:
        """A row of ``vault_record`` back as the FHIR JSON it was made from."""
        import json

        body: dict[str, Any] = json.loads(record.body)
        return body

    def close(self) -> None:
        self.engine.dispose()
