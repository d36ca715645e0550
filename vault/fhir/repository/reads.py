"""Reading one resource: read by id (one statement compiled once per kind of caller),
vread, a granular scope's composed read, and the re-decided download of an export file."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import orjson
from sqlalchemy import Connection, Dialect, Select, and_, bindparam, func, literal, select

from vault.consent.caller import ProvisionalAccess
from vault.consent.decision import visible
from vault.fhir.repository.base import ROW, K, Precompiled, R, RepositoryBase, V, not_found
from vault.fhir.resources import ID_PATTERN
from vault.kernel.db import fetch_one
from vault.kernel.errors import Gone, NotFound
from vault.store.models import SHARED_OWNER, DataKey, ResourceRow, VersionRow
from vault.store.registry import RESOURCE_TYPES, ResourceType
from vault.store.writes import Stored

# A read by id as SQL text, compiled once per kind of caller (``Precompiled``).
_READS = Precompiled({"rk_type", "rk_id"})


class _ReadPlan(NamedTuple):
    """A read by id as one driver statement; ``answer`` turns its row (or None) into the
    result, raising 404 or 410 exactly as the composed read does."""

    sql: str
    params: Any
    answer: Callable[[Any], Stored]


def _version_number(text: str) -> int | None:
    """A version id from a URL, or None: ASCII digits that fit the 32-bit version column."""
    if not (text.isascii() and text.isdigit()) or len(text) > 10 or int(text) >= 2**31:
        return None
    return int(text)


class Reads(RepositoryBase):
    def read(self, conn: Connection, resource_type: str, resource_id: str) -> Stored:
        """Read the current version; 404 for unknown or hidden, 410 for deleted."""
        try:
            stored = self._read(conn, resource_type, resource_id)
        except (NotFound, Gone):
            self._record_denied(conn, "read", resource_type, resource_id)
            self._gone_if_erased(conn, resource_type, resource_id)
            raise
        self._record("read", [stored])
        return stored

    def _gone_if_erased(self, conn: Connection, resource_type: str, resource_id: str) -> None:
        """For the operator's tools, who see every row: a row the decision left out only
        because its owner's vault was erased is gone (410). Every other caller keeps the
        404 of an id that never existed (hidden == missing)."""
        if self._ctx.kind != "full" or not ID_PATTERN.match(resource_id):
            return
        erased = conn.execute(
            select(R.pk)
            .join(DataKey.__table__, K.owner == R.patient_id)
            .where(
                R.resource_type == resource_type,
                R.resource_id == resource_id,
                K.wrapped.is_(None),
            )
        ).first()
        if erased is not None:
            raise Gone(f"{resource_type}/{resource_id} was erased with its inwoner's vault")

    def _read(self, conn: Connection, resource_type: str, resource_id: str) -> Stored:
        plan = self._read_plan(resource_type, resource_id, conn.dialect)
        if plan is None:
            return self._read_restricted(conn, resource_type, resource_id)
        return plan.answer(fetch_one(conn, plan.sql, plan.params))

    async def read_async(self, resource_type: str, resource_id: str) -> Stored:
        """:meth:`read` with its one statement awaited (``Database.fetch_one_async``)."""
        db = self._rt.db
        try:
            plan = self._read_plan(resource_type, resource_id, db.dialect)
            if plan is None:
                with db.read(snapshot=False) as conn:
                    stored = self._read_restricted(conn, resource_type, resource_id)
            else:
                stored = plan.answer(await db.fetch_one_async(plan.sql, plan.params))
        except (NotFound, Gone):
            with db.read(snapshot=False) as conn:  # rare: the statement that finds the owner
                self._record_denied(conn, "read", resource_type, resource_id)
                self._gone_if_erased(conn, resource_type, resource_id)
            raise
        self._record("read", [stored])
        return stored

    async def read_provisionally(
        self, resource_type: str, resource_id: str, provisional: ProvisionalAccess
    ) -> Stored | None:
        """:meth:`read_async` for a context not yet checked for this request
        (``ProvisionalAccess``, this repository's context): the check goes inside the read's
        one statement. None, with nothing logged, whenever the answer is not a plain 200 (an
        unknown, hidden or deleted id, a token no longer valid, a scope that refuses, a
        granular scope): the caller then takes the checked way, which decides it as always.
        """
        spec = RESOURCE_TYPES.get(resource_type)
        if (
            spec is None
            or spec.name == "AuditEvent"  # its reader may first settle the log (``settle_log``)
            or not self._ctx.allows("r", spec.name)
            or not ID_PATTERN.match(resource_id)
            or self._restriction(spec)
        ):
            return None
        db = self._rt.db
        plan = self._read_precompiled(db.dialect, spec, resource_id)
        row = await db.fetch_one_async(*provisional.around(plan.sql, plan.params))
        if row is None or row[-1]:  # no row, or a deleted resource's (the last column)
            return None
        stored = plan.answer(row)
        self._record("read", [stored])
        return stored

    def _read_plan(
        self, resource_type: str, resource_id: str, dialect: Dialect
    ) -> _ReadPlan | None:
        """The read as one driver-level statement and what turns its row into the answer;
        None when granular scopes restrict the type (that needs the composed statement)."""
        spec = self._require("r", resource_type)
        if not ID_PATTERN.match(resource_id):
            raise not_found(resource_type, resource_id)
        if self._restriction(spec):
            return None
        return self._read_precompiled(dialect, spec, resource_id)

    def _read_restricted(self, conn: Connection, resource_type: str, resource_id: str) -> Stored:
        """A read under granular scopes (``Goal.rs?category=…``): the composed statement."""
        spec = self._require("r", resource_type)
        stmt = (
            self._select_current()
            .add_columns(R.deleted)
            .where(
                R.resource_type == spec.name,
                R.resource_id == resource_id,
                visible(self._ctx, ROW),
                *self._restriction(spec),
            )
        )
        row = conn.execute(stmt, self._params).first()
        if row is None:
            raise not_found(spec.name, resource_id)
        if row.deleted:
            raise Gone(f"{spec.name}/{resource_id} was deleted")
        return self._stored_from_row(row)

    def _read_precompiled(
        self, dialect: Dialect, spec: ResourceType, resource_id: str
    ) -> _ReadPlan:
        """A read by id: the composed statement, compiled once per kind of caller and
        grantee set, for every caller (the operator, the inwoner, a partner).

        SQLAlchemy would otherwise rebuild the cache key of the whole consent condition on
        every read (more CPU than the query); the SQL text is the same each time, only the
        type, the id, the instant and the inwoner change.
        """

        def build() -> Select[Any]:
            return (
                self._select_current()
                .add_columns(R.deleted)
                .where(
                    R.resource_type == bindparam("rk_type", ""),
                    R.resource_id == bindparam("rk_id", ""),
                    visible(self._ctx, ROW),
                )
            )

        values = {**self._params, "rk_type": spec.name, "rk_id": resource_id}
        sql, params = _READS.statement(self._ctx, dialect, build, values)

        def answer(row: Any) -> Stored:
            if row is None:
                raise not_found(spec.name, resource_id)
            *current, deleted = row
            if deleted:
                raise Gone(f"{spec.name}/{resource_id} was deleted")
            return self._stored(*current)

        return _ReadPlan(sql, params, answer)

    def still_granted(
        self, conn: Connection, resource_type: str, lines: list[bytes], *, file_url: str
    ) -> list[bytes]:
        """The lines of a file whose resource this caller may read now, at this request.

        A file keeps what was granted when it was made; revoking or narrowing a grant
        afterwards must hold for the file too, so each download asks the same access
        decision (``consent/decision.py``, in SQL) as a live read. What is served is logged, one
        record per inwoner; what is withheld is logged as denied, also per inwoner.
        """
        spec = self._require("s", resource_type)
        wanted: dict[str, bytes] = {}
        for line in lines:
            resource_id = orjson.loads(line).get("id")
            if isinstance(resource_id, str):
                wanted[resource_id] = line
        decision = and_(R.deleted.is_(False), visible(self._ctx, ROW), *self._restriction(spec))
        rows = conn.execute(
            select(R.resource_id, R.patient_id, decision.label("granted")).where(
                R.resource_type == resource_type, R.resource_id.in_(sorted(wanted))
            ),
            self._params,
        ).all()
        served: list[Stored] = []
        withheld: list[Stored] = []
        for row in rows:
            item = Stored(resource_type, row.resource_id, 0, 0, False, None, row.patient_id)
            (served if row.granted else withheld).append(item)
        records = self._records("export", served, query=file_url)
        if withheld:
            records += self._records("export", withheld, permitted=False, query=file_url)
        if not records:  # an empty file: its download is still a decision on the record
            records = self._records("export", [], query=file_url)
        if records:
            self._rt.audit.record(records)
        kept = {item.resource_id for item in served}
        return [line for resource_id, line in wanted.items() if resource_id in kept]

    def vread(self, conn: Connection, resource_type: str, resource_id: str, version: str) -> Stored:
        """One version of a resource."""
        try:
            stored = self._vread(conn, resource_type, resource_id, version)
        except (NotFound, Gone):
            self._record_denied(conn, "vread", resource_type, resource_id)
            self._gone_if_erased(conn, resource_type, resource_id)
            raise
        self._record("vread", [stored])
        return stored

    def _vread(
        self, conn: Connection, resource_type: str, resource_id: str, version: str
    ) -> Stored:
        spec = self._require("r", resource_type)
        number = _version_number(version)
        if number is None or not ID_PATTERN.match(resource_id):
            raise NotFound(f"{resource_type}/{resource_id} has no version '{version[:20]}'")
        stmt = (
            select(
                V.version_id,
                V.last_updated,
                V.deleted,
                V.body,
                V.patient_id,
                K.wrapped,
                K.master_key_id,
            )
            .select_from(ResourceRow.__table__)
            .join(VersionRow.__table__, V.resource_pk == R.pk)
            .outerjoin(
                DataKey.__table__, K.owner == func.coalesce(R.patient_id, literal(SHARED_OWNER))
            )
            .where(
                R.resource_type == resource_type,
                R.resource_id == resource_id,
                V.version_id == number,
                visible(self._ctx, ROW),
                *self._restriction(spec),
            )
        )
        row = conn.execute(stmt, self._params).first()
        if row is None:
            raise NotFound(f"{resource_type}/{resource_id} has no version '{version}'")
        if row.deleted:
            raise Gone(f"{resource_type}/{resource_id} version {version} is a deletion")
        return Stored(
            resource_type,
            resource_id,
            row.version_id,
            row.last_updated,
            False,
            self._open(
                resource_type,
                resource_id,
                row.version_id,
                row.patient_id,
                row.body,
                row.wrapped,
                row.master_key_id,
            ),
            row.patient_id,
        )

    def may_see(self, conn: Connection, resource_type: str, resource_id: str) -> bool:
        """Whether this caller's access decision covers the resource now, deleted or not.

        The delivery worker asks this for each subscriber before it sends an id; nothing is
        logged, because nothing of the resource is read.
        """
        spec = RESOURCE_TYPES.get(resource_type)
        if spec is None or not self._ctx.may_read(spec.name):
            return False
        found = conn.execute(
            select(R.pk).where(
                R.resource_type == spec.name,
                R.resource_id == resource_id,
                visible(self._ctx, ROW),
                *self._restriction(spec),
            ),
            self._params,
        ).first()
        return found is not None
