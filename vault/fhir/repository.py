"""The FHIR store: versioned, encrypted resources, read and written under an AccessContext.

Every interaction of the FHIR REST API (https://hl7.org/fhir/R4/http.html) lands here. The
repository is constructed with the caller's ``AccessContext`` and applies the one access
decision (``consent/decision.py``) inside each SQL statement, so a page, its total, its
includes and its history only ever contain rows the caller may see; nothing is fetched
first and filtered afterwards.

The read hot path (read by id) is one statement, compiled once per kind of caller and run
on the driver: the ORM and even Core cost more than the rest of a read together. Writes
use SQLAlchemy Core inside the transaction the caller opened (``Database.write``); nothing
here commits.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, NamedTuple
from urllib.parse import urlencode

import orjson
from sqlalchemy import (
    ColumnElement,
    Connection,
    Dialect,
    Select,
    and_,
    bindparam,
    func,
    insert,
    literal,
    or_,
    select,
    text,
    true,
    tuple_,
    update,
)

from vault.audit.log import AuditRecord
from vault.consent.access import AccessContext, Interaction
from vault.consent.decision import PATIENT, decision_params, visible
from vault.consent.enforce import NOW, RowColumns
from vault.consent.service import check_consent, drop_grants, replace_grants
from vault.fhir.resources import ID_PATTERN, validate_resource
from vault.fhir.search import Cursor, SearchQuery, parse_search
from vault.kernel.crypto import BlindIndex
from vault.kernel.db import fetch_one
from vault.kernel.errors import (
    BadRequest,
    Conflict,
    Forbidden,
    Gone,
    MethodNotAllowed,
    NotFound,
    PreconditionFailed,
    Unprocessable,
)
from vault.kernel.fhirdata import format_instant, split_reference
from vault.kernel.runtime import Runtime, now_micros
from vault.store.models import (
    SHARED_OWNER,
    DataKey,
    ResourceRow,
    SearchDate,
    SearchReference,
    SearchToken,
    VersionRow,
)
from vault.store.outbox import record_change
from vault.store.reads import open_sealed
from vault.store.registry import RESOURCE_TYPES, ResourceType, resource_type
from vault.store.writes import (
    DATA_KEY,
    INSERT_RESOURCE,
    INSERT_VERSION,
    Prepared,
    Stored,
    clear_index,
    ensure_data_key,
    seal,
    version_row,
    write_index,
    write_internal,
)

__all__ = ["HistoryPage", "Repository", "SearchPage", "Stored"]

R = ResourceRow.__table__.c
V = VersionRow.__table__.c
K = DataKey.__table__.c
MAX_INCLUDES = 1000
ROW = RowColumns(R.pk, R.resource_type, R.resource_id, R.patient_id)
# A read by id as SQL text: (dialect, kind, grantees, purposes) -> (sql, positional
# parameter names or None for named, the parameters that do not change).
_COMPILED_READS: dict[
    tuple[str, str, tuple[str, ...], tuple[str, ...]],
    tuple[str, Sequence[str] | None, dict[str, Any]],
] = {}
_READ_VARIABLES = frozenset({"rk_type", "rk_id", NOW.key, PATIENT.key})
_COMPILED_READS_SIZE = 1024


class _ReadPlan(NamedTuple):
    """A read by id as one driver statement; ``answer`` turns its row (or None) into the
    result, raising 404 or 410 exactly as the composed read does."""

    sql: str
    params: Any
    answer: Callable[[Any], Stored]


VERSION_ROW = RowColumns(V.resource_pk, V.resource_type, V.resource_id, V.patient_id)
# Types outside every compartment: their rows are the vault's shared directory.
SHARED_TYPES = tuple(sorted(t.name for t in RESOURCE_TYPES.values() if t.compartment is None))


@dataclass(slots=True)
class SearchPage:
    total: int | None
    matches: list[Stored]
    includes: list[Stored]
    next_cursor: Cursor | None
    previous_cursor: Cursor | None
    query: SearchQuery


@dataclass(slots=True)
class HistoryPage:
    entries: list[Stored]
    next_cursor: Cursor | None


class Repository:
    def __init__(self, runtime: Runtime, ctx: AccessContext, *, logged: bool = True) -> None:
        """``logged`` False: reads are not written to the access log, for a caller that logs
        one truthful record of its own instead (the page's preview of what a party would
        see, the statistics count). Denied writes and writes are logged whatever it says."""
        self._rt = runtime
        self._ctx = ctx
        self._logged = logged
        self._now = now_micros()  # one instant per request: every check sees the same time
        self._params = decision_params(ctx, self._now)  # bind values of the access decision
        self.pending_denials: list[AuditRecord] = []
        self._deferred: list[AuditRecord] | None = None
        self._blind: BlindIndex = runtime.blind

    @property
    def context(self) -> AccessContext:
        return self._ctx

    # -- access --------------------------------------------------------------------------

    def _require(self, interaction: Interaction, resource_type: str) -> ResourceType:
        """The type must exist and the caller's scopes must cover the interaction (403)."""
        spec = resource_type_or_404(resource_type)
        if not self._ctx.allows(interaction, spec.name):
            # Refusals by scope are access decisions too, and are logged like the others:
            # writes after their transaction ends, reads before the answer goes out.
            if interaction in ("c", "u", "d"):
                self._deny_write(_SCOPE_INTERACTIONS[interaction], spec.name, "", None)
            else:
                self._record(_SCOPE_INTERACTIONS[interaction], [], permitted=False, query=spec.name)
            verb = _VERBS[interaction]
            raise Forbidden(f"The access token's scopes do not allow {verb} {spec.name}")
        return spec

    def _restriction(self, spec: ResourceType) -> list[ColumnElement[bool]]:
        """Granular SMART v2 scopes (``patient/Observation.rs?category=…``) as SQL."""
        queries = self._ctx.query_restrictions(spec.name)
        if not queries:
            return []
        alternatives = []
        for query in queries:
            parsed = parse_search(
                spec,
                list(query),
                blind=self._blind,
                lenient=False,
                default_count=1,
                max_count=1,
                registry=RESOURCE_TYPES,
            )
            alternatives.append(and_(true(), *parsed.conditions))
        return [or_(*alternatives)]

    # -- the access log ------------------------------------------------------------------

    def _records(
        self,
        interaction: str,
        stored: Iterable[Stored],
        *,
        permitted: bool = True,
        query: str | None = None,
        fallback_patient: str | None = None,
        entities: Sequence[str] = (),
    ) -> list[AuditRecord]:
        if self._ctx.kind == "full":
            return []  # the operator's own tools; every caller from outside is logged
        ctx = self._ctx
        groups: dict[str | None, list[str]] = {}
        for item in stored:
            groups.setdefault(item.patient_id, []).append(
                f"{item.resource_type}/{item.resource_id}"
            )
        if not groups:
            groups[fallback_patient] = list(entities)
        return [
            AuditRecord(
                patient_id=patient_id,
                interaction=interaction,
                permitted=permitted,
                client_id=ctx.client_id,
                # An inwoner's own app acts for the inwoner, not for the app's maker.
                organization=ctx.organization if ctx.kind == "system" else None,
                account_id=ctx.account_id,
                entities=refs,
                query=query,
                purposes=sorted(ctx.purposes),
                representative=ctx.representative,
                recorded=self._now,
            )
            for patient_id, refs in groups.items()
        ]

    def _record(self, interaction: str, stored: Iterable[Stored], **options: Any) -> None:
        """Log a read-side decision durably (group commit) before the answer goes out."""
        if not self._logged:
            return
        records = self._records(interaction, stored, **options)
        if not records:
            return
        if self._deferred is not None:
            self._deferred.extend(records)
        else:
            self._rt.audit.record(records)

    @asynccontextmanager
    async def audited(self) -> AsyncIterator[None]:
        """Run reads on the event loop and await their access-log commit at the end.

        Inside the block, read-side records are collected instead of blocking a thread;
        leaving the block (normally or with an error such as a 404) awaits the durable
        group commit, so no answer goes out before its record is on disk.
        """
        self._deferred = []
        try:
            yield
        finally:
            records, self._deferred = self._deferred, None
            await self._rt.audit.record_async(records)

    def _record_denied(
        self, conn: Connection, interaction: str, resource_type: str, resource_id: str
    ) -> None:
        if self._ctx.kind == "full":
            return
        owner = None
        if resource_type in RESOURCE_TYPES and ID_PATTERN.match(resource_id):
            owner = conn.execute(
                select(R.patient_id).where(
                    R.resource_type == resource_type, R.resource_id == resource_id
                )
            ).scalar()
        self._record(
            interaction,
            [],
            permitted=False,
            fallback_patient=owner,
            entities=[f"{resource_type}/{resource_id[:64]}"],
        )

    def _record_write(self, conn: Connection, interaction: str, stored: Stored) -> None:
        """Log a write in its own transaction: if the log fails, the write fails."""
        if interaction != "read":  # the outbox of change notifications, same transaction
            record_change(
                conn,
                resource_type=stored.resource_type,
                resource_id=stored.resource_id,
                patient_id=stored.patient_id,
                action=interaction,
            )
        records = self._records(interaction, [stored])
        if records:
            self._rt.audit.append(conn, records)

    def _deny_write(
        self, interaction: str, resource_type: str, resource_id: str, patient_id: str | None
    ) -> None:
        # The write's transaction is rolled back, so the denial is logged after it ends.
        self.pending_denials.extend(
            self._records(
                interaction,
                [],
                permitted=False,
                fallback_patient=patient_id,
                # Without an id (a refused create) the log names the type as the query.
                entities=[f"{resource_type}/{resource_id}"] if resource_id else [],
                query=None if resource_id else resource_type,
            )
        )

    def flush_denials(self) -> None:
        """Log denied writes; call after the write's transaction has ended."""
        if self.pending_denials:
            records, self.pending_denials = self.pending_denials, []
            self._rt.audit.record(records)

    # -- read ----------------------------------------------------------------------------

    def read(self, conn: Connection, resource_type: str, resource_id: str) -> Stored:
        """Read the current version; 404 for unknown or hidden, 410 for deleted."""
        try:
            stored = self._read(conn, resource_type, resource_id)
        except (NotFound, Gone):
            self._record_denied(conn, "read", resource_type, resource_id)
            raise
        self._record("read", [stored])
        return stored

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
            raise
        self._record("read", [stored])
        return stored

    def _read_plan(
        self, resource_type: str, resource_id: str, dialect: Dialect
    ) -> _ReadPlan | None:
        """The read as one driver-level statement and what turns its row into the answer;
        None when granular scopes restrict the type (that needs the composed statement)."""
        spec = self._require("r", resource_type)
        if not ID_PATTERN.match(resource_id):
            raise _not_found(resource_type, resource_id)
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
            raise _not_found(spec.name, resource_id)
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
        ctx = self._ctx
        key = (dialect.name, ctx.kind, tuple(sorted(ctx.grantees)), tuple(sorted(ctx.purposes)))
        compiled = _COMPILED_READS.get(key)
        if compiled is None:
            stmt = (
                self._select_current()
                .add_columns(R.deleted)
                .where(
                    R.resource_type == bindparam("rk_type", ""),
                    R.resource_id == bindparam("rk_id", ""),
                    visible(self._ctx, ROW),
                )
                .params({NOW.key: 0, PATIENT.key: ""})  # placeholders: compiled text once
            )
            # The grantee lists are expanded into plain parameters once, here.
            done = stmt.compile(dialect=dialect).construct_expanded_state()
            fixed = {k: v for k, v in done.parameters.items() if k not in _READ_VARIABLES}
            compiled = (done.statement, done.positiontup, fixed)
            if len(_COMPILED_READS) >= _COMPILED_READS_SIZE:
                _COMPILED_READS.clear()
            _COMPILED_READS[key] = compiled
        sql, positions, fixed = compiled
        values = {**fixed, **self._params, "rk_type": spec.name, "rk_id": resource_id}

        def answer(row: Any) -> Stored:
            if row is None:
                raise _not_found(spec.name, resource_id)
            pk, rtype, rid, version, updated, patient, body, wrapped, key_id, deleted = row
            if deleted:
                raise Gone(f"{spec.name}/{resource_id} was deleted")
            opened = self._open(rtype, rid, version, patient, body, wrapped, key_id)
            return Stored(rtype, rid, version, updated, False, opened, patient, pk)

        params = values if positions is None else [values[name] for name in positions]
        return _ReadPlan(sql, params, answer)

    # -- Bulk export: a page of an export, and the download of a file made of such pages ---

    def export_page(self, conn: Connection, query: SearchQuery) -> SearchPage:
        """A search page for ``$export``, logged as interaction ``export``."""
        page = self._search(conn, query)
        self._record("export", page.matches, query=urlencode(query.applied))
        return page

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

    def _open(
        self,
        resource_type: str,
        resource_id: str,
        version: int,
        patient_id: str | None,
        sealed: bytes | None,
        wrapped: bytes | None,
        key_id: str | None,
    ) -> bytes:
        assert sealed is not None
        return open_sealed(
            self._rt,
            resource_type=resource_type,
            resource_id=resource_id,
            version=version,
            patient_id=patient_id,
            sealed=sealed,
            wrapped=wrapped,
            key_id=key_id,
        )

    # -- search --------------------------------------------------------------------------

    def parse(
        self,
        resource_type: str,
        params: Sequence[tuple[str, str]],
        *,
        lenient: bool,
        interaction: Interaction = "s",
    ) -> SearchQuery:
        spec = self._require(interaction, resource_type)
        settings = self._rt.settings
        return parse_search(
            spec,
            params,
            blind=self._blind,
            lenient=lenient,
            default_count=settings.default_page_size,
            max_count=settings.max_page_size,
            registry=RESOURCE_TYPES,
        )

    def search(self, conn: Connection, query: SearchQuery) -> SearchPage:
        """One page of a search, with its total and includes: only what the caller may see."""
        page = self._search(conn, query)
        self._record(
            "search-type",
            [*page.matches, *page.includes],
            query=urlencode(query.applied),
            fallback_patient=_named_patient(query),
        )
        return page

    def _search(self, conn: Connection, query: SearchQuery) -> SearchPage:
        spec = query.spec
        where = [
            R.resource_type == spec.name,
            R.deleted.is_(False),
            visible(self._ctx, ROW),
            *self._restriction(spec),
            *query.conditions,
        ]
        total = None
        if query.summary_count or query.total != "none":
            total = conn.execute(
                select(func.count()).select_from(ResourceRow.__table__).where(*where), self._params
            ).scalar_one()
        if query.summary_count or query.count == 0:
            return SearchPage(total, [], [], None, None, query)

        sort_col = self._sort_column(query)
        backward = query.cursor.backward if query.cursor else False
        descending = query.descending != backward
        stmt = self._select_current().where(*where)
        if sort_col is not None:
            stmt = stmt.add_columns(sort_col.label("sort_key"))
        if query.cursor is not None:
            stmt = stmt.where(_after(sort_col, query.cursor, descending=descending))
        order = [sort_col] if sort_col is not None else []
        order.append(R.pk)
        stmt = stmt.order_by(*(c.desc() if descending else c.asc() for c in order))
        rows = list(conn.execute(stmt.limit(query.count + 1), self._params))
        more = len(rows) > query.count
        rows = rows[: query.count]
        if backward:
            rows.reverse()
        matches = [self._stored_from_row(row) for row in rows]

        def edge(row: Any, *, back: bool) -> Cursor:
            key = row.sort_key if sort_col is not None else None
            return Cursor(key=key, pk=row.pk, backward=back)

        next_cursor = previous_cursor = None
        if rows:
            has_next = more if not backward else True
            has_previous = (query.cursor is not None) if not backward else more
            if has_next:
                next_cursor = edge(rows[-1], back=False)
            if has_previous:
                previous_cursor = edge(rows[0], back=True)
        includes = self._includes(conn, query, [r.pk for r in rows], matches)
        return SearchPage(total, matches, includes, next_cursor, previous_cursor, query)

    def everything(self, conn: Connection, patient_id: str, *, since: int | None) -> list[Stored]:
        """``Patient/$everything``: what the caller may see of one inwoner's compartment.

        Every row goes through the same access decision as a search; types the token's
        scopes do not cover are left out. If the caller may see nothing at all, the answer
        is 404, exactly as for an inwoner who does not exist.
        """
        found: list[Stored] = []
        settings = self._rt.settings
        for spec in RESOURCE_TYPES.values():
            if spec.compartment is None or not self._ctx.allows("s", spec.name):
                continue
            params = [("patient", patient_id)] if spec.name != "Patient" else [("_id", patient_id)]
            if since is not None:
                params.append(("_lastUpdated", "ge" + format_instant(since)))
            query = parse_search(
                spec,
                params,
                blind=self._blind,
                lenient=False,
                default_count=settings.max_page_size,
                max_count=settings.max_page_size,
                registry=RESOURCE_TYPES,
            )
            query.total = "none"
            while True:
                page = self._search(conn, query)
                found.extend(page.matches)
                if page.next_cursor is None:
                    break
                query.cursor = page.next_cursor
        if not found:
            self._record_denied(conn, "operation", "Patient", patient_id)
            raise _not_found("Patient", patient_id)
        self._record("operation", found, query=f"Patient/{patient_id}/$everything")
        return found

    def find_ids(self, conn: Connection, resource_type: str, criteria: str) -> list[str]:
        """Ids matching a search string such as ``identifier=sys|123`` (conditional create)."""
        from urllib.parse import parse_qsl

        params = parse_qsl(criteria, keep_blank_values=True)
        if not params:
            raise BadRequest("If-None-Exist needs search criteria")
        query = self.parse(resource_type, params, lenient=False, interaction="c")
        where = [
            R.resource_type == query.spec.name,
            R.deleted.is_(False),
            visible(self._ctx, ROW),
            *query.conditions,
        ]
        return list(conn.scalars(select(R.resource_id).where(*where).limit(2), self._params))

    def _sort_column(self, query: SearchQuery) -> Any:
        if query.sort == "_lastUpdated":
            return R.last_updated
        if query.sort == "_id":
            return R.resource_id
        if query.sort == "date":
            sd = SearchDate.__table__.c
            edge = func.max(sd.high) if query.descending else func.min(sd.low)
            # Rows without a date sort last in either direction.
            fallback = -(2**62) if query.descending else 2**62
            return func.coalesce(
                select(edge).where(sd.resource_pk == R.pk, sd.param == "date").scalar_subquery(),
                fallback,
            )
        return None

    def _select_current(self) -> Select[Any]:
        return (
            select(
                R.pk,
                R.resource_type,
                R.resource_id,
                R.version_id,
                R.last_updated,
                R.patient_id,
                V.body,
                K.wrapped,
                K.master_key_id,
            )
            .select_from(ResourceRow.__table__)
            .join(VersionRow.__table__, and_(V.resource_pk == R.pk, V.version_id == R.version_id))
            .outerjoin(
                DataKey.__table__, K.owner == func.coalesce(R.patient_id, literal(SHARED_OWNER))
            )
        )

    def _stored_from_row(self, row: Any) -> Stored:
        body = self._open(
            row.resource_type,
            row.resource_id,
            row.version_id,
            row.patient_id,
            row.body,
            row.wrapped,
            row.master_key_id,
        )
        return Stored(
            row.resource_type,
            row.resource_id,
            row.version_id,
            row.last_updated,
            False,
            body,
            row.patient_id,
            row.pk,
        )

    def _includes(
        self, conn: Connection, query: SearchQuery, pks: list[int], matches: list[Stored]
    ) -> list[Stored]:
        if not pks or not (query.includes or query.revincludes):
            return []
        seen = {(m.resource_type, m.resource_id) for m in matches}
        found: list[Stored] = []
        sr = SearchReference.__table__.c
        for inc in query.includes:
            targets = select(sr.target_type, sr.target_id).where(
                sr.resource_pk.in_(pks), sr.param == inc.param.name
            )
            if inc.target_type:
                targets = targets.where(sr.target_type == inc.target_type)
            by_type: dict[str, set[str]] = {}
            for target_type, target_id in conn.execute(targets, self._params):
                if target_type in RESOURCE_TYPES and self._ctx.allows("r", target_type):
                    by_type.setdefault(target_type, set()).add(target_id)
            for target_type, target_ids in sorted(by_type.items()):
                stmt = (
                    self._select_current()
                    .where(
                        R.resource_type == target_type,
                        R.resource_id.in_(sorted(target_ids)),
                        R.deleted.is_(False),
                        visible(self._ctx, ROW),
                        *self._restriction(RESOURCE_TYPES[target_type]),
                    )
                    .limit(MAX_INCLUDES)
                )
                found.extend(self._stored_from_row(row) for row in conn.execute(stmt, self._params))
        ids = [m.resource_id for m in matches]
        for inc in query.revincludes:
            if not self._ctx.allows("r", inc.source_type):
                continue
            refs = select(sr.resource_pk).where(
                sr.param == inc.param.name,
                sr.resource_type == inc.source_type,
                sr.target_type == query.spec.name,
                sr.target_id.in_(ids),
            )
            stmt = (
                self._select_current()
                .where(
                    R.pk.in_(refs),
                    R.deleted.is_(False),
                    visible(self._ctx, ROW),
                    *self._restriction(RESOURCE_TYPES[inc.source_type]),
                )
                .limit(MAX_INCLUDES)
            )
            found.extend(self._stored_from_row(row) for row in conn.execute(stmt, self._params))
        unique: list[Stored] = []
        for item in found:
            key = (item.resource_type, item.resource_id)
            if key not in seen:
                seen.add(key)
                unique.append(item)
        return unique

    # -- history -------------------------------------------------------------------------

    def history(
        self,
        conn: Connection,
        resource_type: str,
        resource_id: str | None,
        *,
        since: int | None,
        count: int,
        cursor: Cursor | None,
    ) -> HistoryPage:
        """Versions newest first, of one resource or of a whole type."""
        interaction = "history-type" if resource_id is None else "history-instance"
        try:
            page = self._history(
                conn, resource_type, resource_id, since=since, count=count, cursor=cursor
            )
        except NotFound:
            self._record_denied(conn, interaction, resource_type, resource_id or "")
            raise
        self._record(interaction, page.entries)
        return page

    def _history(
        self,
        conn: Connection,
        resource_type: str,
        resource_id: str | None,
        *,
        since: int | None,
        count: int,
        cursor: Cursor | None,
    ) -> HistoryPage:
        spec = self._require("r", resource_type)
        stmt = (
            select(
                V.resource_pk.label("pk"),
                V.resource_type,
                V.resource_id,
                V.version_id,
                V.last_updated,
                V.patient_id,
                V.deleted,
                V.body,
                K.wrapped,
                K.master_key_id,
            )
            .select_from(VersionRow.__table__)
            .outerjoin(
                DataKey.__table__, K.owner == func.coalesce(V.patient_id, literal(SHARED_OWNER))
            )
            .where(V.resource_type == resource_type, visible(self._ctx, VERSION_ROW))
        )
        restriction = self._restriction(spec)
        if restriction:
            stmt = stmt.where(
                V.resource_pk.in_(select(R.pk).where(R.resource_type == spec.name, *restriction))
            )
        if resource_id is not None:
            current = conn.execute(
                select(R.pk).where(
                    R.resource_type == resource_type,
                    R.resource_id == resource_id,
                    visible(self._ctx, ROW),
                    # Outside a granular scope is hidden, and hidden answers as missing.
                    *restriction,
                ),
                self._params,
            ).first()
            if current is None:
                raise _not_found(resource_type, resource_id)
            stmt = stmt.where(V.resource_pk == current.pk)
        if since is not None:
            stmt = stmt.where(V.last_updated >= since)
        if cursor is not None:
            key = int(cursor.key) if isinstance(cursor.key, int) else 0
            # Keyset over (last_updated, resource_pk, version) descending; the version is
            # folded into the cursor's pk slot as pk * 2**20 + version.
            pk, version = divmod(cursor.pk, 2**20)
            stmt = stmt.where(
                or_(
                    V.last_updated < key,
                    and_(V.last_updated == key, V.resource_pk < pk),
                    and_(V.last_updated == key, V.resource_pk == pk, V.version_id < version),
                )
            )
        stmt = stmt.order_by(V.last_updated.desc(), V.resource_pk.desc(), V.version_id.desc())
        rows = list(conn.execute(stmt.limit(count + 1), self._params))
        more = len(rows) > count
        rows = rows[:count]
        entries = []
        for row in rows:
            body = (
                None
                if row.deleted
                else self._open(
                    row.resource_type,
                    row.resource_id,
                    row.version_id,
                    row.patient_id,
                    row.body,
                    row.wrapped,
                    row.master_key_id,
                )
            )
            entries.append(
                Stored(
                    row.resource_type,
                    row.resource_id,
                    row.version_id,
                    row.last_updated,
                    row.deleted,
                    body,
                    row.patient_id,
                    row.pk,
                )
            )
        next_cursor = None
        if more and rows:
            last = rows[-1]
            next_cursor = Cursor(
                key=last.last_updated, pk=last.pk * 2**20 + last.version_id, backward=False
            )
        return HistoryPage(entries, next_cursor)

    # -- write ---------------------------------------------------------------------------

    def create(
        self, conn: Connection, resource_type: str, body: Any, *, if_none_exist: str | None = None
    ) -> tuple[Stored, bool]:
        """Create with a server-assigned id. Returns (stored, created)."""
        spec = self._check_writable("c", resource_type)
        if if_none_exist is not None:
            self._lock_condition(conn, resource_type, if_none_exist)
            ids = self.find_ids(conn, resource_type, if_none_exist)
            if len(ids) > 1:
                raise PreconditionFailed("If-None-Exist matches more than one resource")
            if ids:
                if not self._ctx.allows("r", spec.name):
                    # Inside the write's transaction: the refusal is logged after it ends.
                    self._deny_write("read", spec.name, ids[0], None)
                    raise Forbidden(f"The access token's scopes do not allow reading {spec.name}")
                found = self._read(conn, resource_type, ids[0])
                self._record_write(conn, "read", found)
                return found, False
        resource_id = str(uuid.uuid4())
        prepared = self._prepare(conn, spec, body, resource_id=resource_id)
        stored = self._insert(conn, prepared, resource_id)
        self._record_write(conn, "create", stored)
        return stored, True

    def update(
        self,
        conn: Connection,
        resource_type: str,
        resource_id: str,
        body: Any,
        *,
        if_match: str | None = None,
    ) -> tuple[Stored, bool]:
        """Update, or create with the client's id. Returns (stored, created)."""
        spec = self._check_writable("u", resource_type)
        if not ID_PATTERN.match(resource_id):
            raise BadRequest("The id in the URL is not a valid FHIR id")
        if isinstance(body, dict) and body.get("id") != resource_id:
            raise BadRequest(
                "The id in the resource must match the id in the URL",
                expression=[f"{resource_type}.id"],
            )
        row = self._current_for_update(conn, resource_type, resource_id)
        expected = _parse_if_match(if_match) if if_match is not None else None
        if self._ctx.kind == "system":
            return self._correct(conn, spec, resource_id, body, row, expected), False
        if self._ctx.patient_id is not None and (
            row is None or row.patient_id != self._ctx.patient_id
        ):
            # No update-as-create for an inwoner's app (issue 12 B9): a free id and an id
            # of another inwoner answer alike, before the body is even looked at, so a
            # PUT cannot tell which ids exist. Apps create with POST.
            raise _not_found(resource_type, resource_id)
        if row is None:
            if expected is not None:
                raise PreconditionFailed(f"{resource_type}/{resource_id} does not exist")
            prepared = self._prepare(conn, spec, body, resource_id=resource_id)
            if self._ctx.patient_id is not None and prepared.patient_id != self._ctx.patient_id:
                raise NotFound(f"{resource_type}/{resource_id} is not known")
            stored = self._insert(conn, prepared, resource_id)
            self._record_write(conn, "create", stored)
            return stored, True
        if self._ctx.patient_id is not None and row.patient_id != self._ctx.patient_id:
            raise _not_found(resource_type, resource_id)
        if expected is not None and expected != row.version_id:
            raise PreconditionFailed(
                f"Version conflict: {resource_type}/{resource_id} is at version "
                f"{row.version_id}, not {expected}"
            )
        prepared = self._prepare(conn, spec, body, resource_id=resource_id)
        if prepared.patient_id != row.patient_id and not row.deleted:
            raise Unprocessable("A resource cannot move to another inwoner's compartment")
        stored = self._new_version(conn, prepared, row)
        self._record_write(conn, "update", stored)
        return stored, False

    def _correct(
        self,
        conn: Connection,
        spec: ResourceType,
        resource_id: str,
        body: Any,
        row: Any,
        expected: int | None,
    ) -> Stored:
        """A partner changes what a Consent lets it correct; a Provenance says who did."""

        def may(action: str) -> bool:
            found = conn.execute(
                select(R.pk).where(
                    R.pk == row.pk,
                    R.deleted.is_(False),
                    visible(self._ctx, ROW, action=action),
                    *self._restriction(spec),
                ),
                self._params,
            ).first()
            return found is not None

        if row is None or not may("access"):
            self._deny_write("update", spec.name, resource_id, row.patient_id if row else None)
            raise _not_found(spec.name, resource_id)
        if spec.name == "Consent" or not may("correct"):
            self._deny_write("update", spec.name, resource_id, row.patient_id)
            raise Forbidden(
                f"The inwoner did not allow this client to change {spec.name}/{resource_id}"
            )
        if expected is not None and expected != row.version_id:
            raise PreconditionFailed(
                f"Version conflict: {spec.name}/{resource_id} is at version "
                f"{row.version_id}, not {expected}"
            )
        prepared = self._prepare(conn, spec, body, resource_id=resource_id)
        if prepared.patient_id != row.patient_id:
            raise Unprocessable("A resource cannot move to another inwoner's compartment")
        labels = self._labels(conn, row.pk)
        stored = self._new_version(conn, prepared, row)
        if self._labels(conn, row.pk) != labels:
            # Labels decide who else may see a resource: a partner's write never changes
            # that (docs/partner-writes.md); the inwoner labels her own data.
            self._deny_write("update", spec.name, resource_id, row.patient_id)
            raise Forbidden(
                "A partner cannot change meta.security; send the labels the resource has"
            )
        if not may("correct"):
            # The change would take the resource out of what was granted (e.g. a label).
            self._deny_write("update", spec.name, resource_id, row.patient_id)
            raise Forbidden("This change would take the resource outside your grant")
        self._provenance(conn, stored)
        self._record_write(conn, "update", stored)
        return stored

    @staticmethod
    def _labels(conn: Connection, pk: int) -> list[tuple[str | None, str]]:
        t = SearchToken.__table__.c
        rows = conn.execute(
            select(t.system, t.code_hash).where(t.resource_pk == pk, t.param == "_security")
        )
        return sorted(set((row.system, row.code_hash) for row in rows), key=str)

    def _provenance(self, conn: Connection, stored: Stored) -> None:
        ctx = self._ctx
        agent: dict[str, Any] = {
            "type": {
                "coding": [
                    {
                        "system": "http://terminology.hl7.org/CodeSystem/provenance-participant-type",
                        "code": "author",
                    }
                ]
            },
            "who": {"reference": ctx.practitioner or ctx.organization or "Organization/unknown"},
        }
        if ctx.practitioner and ctx.organization:
            agent["onBehalfOf"] = {"reference": ctx.organization}
        provenance = {
            "resourceType": "Provenance",
            "id": str(uuid.uuid4()),
            "target": [
                {
                    "reference": f"{stored.resource_type}/{stored.resource_id}"
                    f"/_history/{stored.version_id}"
                }
            ],
            "recorded": format_instant(stored.last_updated),
            "activity": {
                "coding": [
                    {
                        "system": "http://terminology.hl7.org/CodeSystem/v3-DataOperation",
                        "code": "UPDATE",
                    }
                ]
            },
            "agent": [agent],
        }
        write_internal(self._rt, conn, "Provenance", provenance, patient_id=stored.patient_id)

    def delete(self, conn: Connection, resource_type: str, resource_id: str) -> None:
        spec = self._check_writable("d", resource_type)
        row = self._current_for_update(conn, resource_type, resource_id)
        if row is None or (
            self._ctx.patient_id is not None and row.patient_id != self._ctx.patient_id
        ):
            raise _not_found(resource_type, resource_id)
        if row.deleted:
            return
        if spec.name == "Patient":
            others = conn.execute(
                select(R.pk)
                .where(
                    R.patient_id == resource_id, R.deleted.is_(False), R.resource_type != "Patient"
                )
                .limit(1)
            ).first()
            if others is not None:
                raise Conflict(
                    "This Patient still has a plan, goals or other data; "
                    "delete those first or erase the vault"
                )
        now = self._next_instant(row.last_updated)
        version = row.version_id + 1
        conn.execute(
            update(ResourceRow)
            .where(R.pk == row.pk)
            .values(version_id=version, last_updated=now, deleted=True)
        )
        conn.execute(
            insert(VersionRow).values(
                resource_pk=row.pk,
                version_id=version,
                resource_type=resource_type,
                resource_id=resource_id,
                patient_id=row.patient_id,
                last_updated=now,
                deleted=True,
                body=None,
            )
        )
        # The labels stay: a deny by label must keep hiding the history of a deleted resource.
        clear_index(conn, row.pk, keep_labels=True)
        if spec.name == "Consent":
            drop_grants(conn, consent_pk=row.pk)
        self._record_write(
            conn,
            "delete",
            Stored(resource_type, resource_id, version, now, True, None, row.patient_id, row.pk),
        )

    # -- change notifications ------------------------------------------------------------

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

    # -- write internals -----------------------------------------------------------------

    def _check_writable(self, interaction: Interaction, resource_type: str) -> ResourceType:
        spec = resource_type_or_404(resource_type)
        if not spec.writable:
            raise MethodNotAllowed(f"{spec.name} is written by the vault only")
        self._require(interaction, spec.name)
        if self._ctx.kind == "system" and interaction != "u":
            # Partners only correct what an inwoner's Consent lets them (see _correct).
            self._deny_write(_INTERACTIONS[interaction], spec.name, "", None)
            raise Forbidden(f"This client may not create or delete {spec.name} resources")
        return spec

    def _lock_condition(self, conn: Connection, resource_type: str, criteria: str) -> None:
        # Two concurrent conditional creates with the same criteria must not both create.
        # SQLite serialises writers with BEGIN IMMEDIATE; PostgreSQL needs a lock.
        if conn.dialect.name == "postgresql":
            conn.execute(
                text("SELECT pg_advisory_xact_lock(hashtextextended(:k, 0))"),
                {"k": f"{resource_type}?{criteria}"},
            )

    def _current_for_update(self, conn: Connection, resource_type: str, resource_id: str) -> Any:
        stmt = select(R.pk, R.patient_id, R.version_id, R.last_updated, R.deleted).where(
            R.resource_type == resource_type, R.resource_id == resource_id
        )
        if conn.dialect.name == "postgresql":
            stmt = stmt.with_for_update()
        return conn.execute(stmt).first()

    def _prepare(
        self, conn: Connection, spec: ResourceType, body: Any, *, resource_id: str
    ) -> Prepared:
        if not isinstance(body, dict):
            raise BadRequest("The body must be a JSON object (a FHIR resource)")
        if body.get("resourceType") != spec.name:
            raise BadRequest(
                f"The body is a {str(body.get('resourceType'))[:40]!s}, expected {spec.name}",
                expression=["resourceType"],
            )
        data = dict(body)
        data["id"] = resource_id
        meta = data.get("meta")
        if meta is not None and not isinstance(meta, dict):
            raise BadRequest("meta must be an object", expression=[f"{spec.name}.meta"])
        # versionId and lastUpdated are the server's; placeholders keep validation honest.
        data["meta"] = {**(meta or {}), "versionId": "1", "lastUpdated": "1970-01-01T00:00:00Z"}
        validate_resource(spec, data)
        patient_id = self._compartment(conn, spec, data, resource_id)
        return Prepared(spec, data, patient_id)

    def _compartment(
        self, conn: Connection, spec: ResourceType, data: dict[str, Any], resource_id: str
    ) -> str | None:
        if spec.compartment is None:
            if self._ctx.patient_id is not None:
                raise Unprocessable(
                    f"{spec.name} is shared by all inwoners; it cannot be written for one inwoner"
                )
            return None
        if spec.compartment == "self":
            return resource_id
        ref_param = next(p for p in spec.params if p.compartment)
        refs = {ref for ref in ref_param.extract(data) if ref[0] == "Patient"}
        if spec.name == "Provenance":
            refs = self._patients_of(conn, data)
        patients = {pid for _, pid in refs}
        where = f"{spec.name}.{spec.compartment}"
        if len(patients) != 1:
            raise Unprocessable(
                f"{where} must point at exactly one inwoner's Patient", expression=[where]
            )
        patient_id: str = patients.pop()
        exists = conn.execute(
            select(R.pk).where(
                R.resource_type == "Patient",
                R.resource_id == patient_id,
                R.deleted.is_(False),
                # A partner correcting a resource keeps it where it is (checked by the
                # caller); it need not be able to read the Patient itself.
                true() if self._ctx.kind == "system" else visible(self._ctx, ROW),
            ),
            self._params,
        ).first()
        if exists is None:
            raise Unprocessable(
                f"{where} points at a Patient this vault does not hold", expression=[where]
            )
        return patient_id

    def _patients_of(self, conn: Connection, data: dict[str, Any]) -> set[tuple[str, str]]:
        targets = [
            split_reference(t.get("reference"))
            for t in data.get("target") or []
            if isinstance(t, dict)
        ]
        pairs = [t for t in targets if t is not None]
        if not pairs:
            return set()
        rows = conn.execute(
            select(R.patient_id).where(tuple_(R.resource_type, R.resource_id).in_(pairs))
        ).all()
        return {("Patient", row.patient_id) for row in rows if row.patient_id}

    def _insert(self, conn: Connection, prepared: Prepared, resource_id: str) -> Stored:
        spec = prepared.spec
        if spec.name == "Patient":
            ensure_data_key(self._rt, conn, resource_id)
        now = now_micros()
        pk = conn.execute(
            INSERT_RESOURCE,
            {
                "resource_type": spec.name,
                "resource_id": resource_id,
                "patient_id": prepared.patient_id,
                "version_id": 1,
                "last_updated": now,
                "deleted": False,
            },
        ).scalar_one()
        return self._write_version(
            conn, prepared, pk=pk, resource_id=resource_id, version=1, now=now
        )

    def _new_version(self, conn: Connection, prepared: Prepared, row: Any) -> Stored:
        now = self._next_instant(row.last_updated)
        version = row.version_id + 1
        if prepared.spec.name == "Patient":
            ensure_data_key(self._rt, conn, prepared.data["id"])
        result = conn.execute(
            update(ResourceRow)
            .where(R.pk == row.pk, R.version_id == row.version_id)
            .values(
                version_id=version, last_updated=now, deleted=False, patient_id=prepared.patient_id
            )
        )
        if result.rowcount != 1:
            raise PreconditionFailed("The resource changed while this update was made")
        clear_index(conn, row.pk)
        return self._write_version(
            conn, prepared, pk=row.pk, resource_id=prepared.data["id"], version=version, now=now
        )

    @staticmethod
    def _next_instant(previous: int) -> int:
        # lastUpdated must grow with every version, even when the clock does not.
        return max(now_micros(), previous + 1)

    def _write_version(
        self,
        conn: Connection,
        prepared: Prepared,
        *,
        pk: int,
        resource_id: str,
        version: int,
        now: int,
    ) -> Stored:
        spec = prepared.spec
        data = prepared.data
        key = conn.execute(DATA_KEY, {"owner": prepared.patient_id or SHARED_OWNER}).first()
        plaintext, sealed = seal(
            self._rt, prepared, key, resource_id=resource_id, version=version, now=now
        )
        conn.execute(
            INSERT_VERSION,
            version_row(
                prepared, pk=pk, resource_id=resource_id, version=version, now=now, body=sealed
            ),
        )
        write_index(self._rt, conn, prepared, pk)
        if spec.name == "Consent":
            assert prepared.patient_id is not None
            grants = check_consent(conn, data, patient_id=prepared.patient_id)
            replace_grants(
                conn,
                consent_pk=pk,
                patient_id=prepared.patient_id,
                grants=grants,
                blind=self._blind,
            )
        return Stored(
            spec.name, resource_id, version, now, False, plaintext, prepared.patient_id, pk
        )


def _named_patient(query: SearchQuery) -> str | None:
    """The inwoner a search names (patient=/subject=), for the log of an empty result."""
    for name, value in query.applied:
        if name.split(":")[0] in ("patient", "subject"):
            parsed = split_reference(value)
            return parsed[1] if parsed else value
    return None


_INTERACTIONS = {"c": "create", "u": "update", "d": "delete"}
_SCOPE_INTERACTIONS = {**_INTERACTIONS, "r": "read", "s": "search-type"}
_VERBS = {"c": "creating", "r": "reading", "u": "updating", "d": "deleting", "s": "searching"}


def resource_type_or_404(name: str) -> ResourceType:
    return resource_type(name)


def _not_found(resource_type: str, resource_id: str) -> NotFound:
    # Byte for byte the same for an id that does not exist and one the caller may not see.
    return NotFound(f"{resource_type}/{resource_id[:64]} is not known")


def _parse_if_match(value: str) -> int:
    tag = value.strip()
    if tag.startswith("W/"):
        tag = tag[2:]
    tag = tag.strip('"')
    if not (tag.isascii() and tag.isdigit()) or len(tag) > 18:
        raise BadRequest('If-Match must be an ETag such as W/"3"')
    return int(tag)


def _version_number(text: str) -> int | None:
    """A version id from a URL, or None: ASCII digits that fit the 32-bit version column."""
    if not (text.isascii() and text.isdigit()) or len(text) > 10 or int(text) >= 2**31:
        return None
    return int(text)


def _after(sort_col: Any, cursor: Cursor, *, descending: bool) -> ColumnElement[bool]:
    """Rows strictly past the cursor in the page order: keyset pagination."""
    if sort_col is None:
        return R.pk < cursor.pk if descending else R.pk > cursor.pk
    key = cursor.key
    if descending:
        return or_(sort_col < key, and_(sort_col == key, R.pk < cursor.pk))
    return or_(sort_col > key, and_(sort_col == key, R.pk > cursor.pk))
