"""Search with totals, paging, sorting, ``_include``/``_revinclude``, ``$everything``,
conditional lookups, and a page of a Bulk export."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from sqlalchemy import (
    ColumnElement,
    Connection,
    Dialect,
    Integer,
    Select,
    and_,
    bindparam,
    exists,
    func,
    select,
    tuple_,
)

from vault.consent.decision import visible
from vault.consent.enforce import words
from vault.fhir.repository.base import ROW, Precompiled, R, not_found
from vault.fhir.repository.reads import Reads
from vault.fhir.search import Cursor, Include, SearchQuery, parse_search, reference_columns
from vault.kernel.driver import fetch_all
from vault.kernel.errors import BadRequest
from vault.kernel.fhirdata import format_instant, split_reference
from vault.store.index import AUDIT_EVENT
from vault.store.models import ResourceRow, SearchAuditEvent, SearchDate
from vault.store.registry import RESOURCE_TYPES
from vault.store.writes import Stored

MAX_INCLUDES = 1000

# The page's own parameters, named apart from the access decision's (``decision_params``):
# a name they share would bind the decision to the searched inwoner instead of the caller.
_COMPARTMENT, _LIMIT = "rk_page_compartment", "rk_page_limit"
# The first page of a one-inwoner search, compiled once (``Searches._compartment_page``).
_FIRST_PAGES = Precompiled({_COMPARTMENT, _LIMIT})


@functools.cache  # one condition per registered type, not a new one at every search
def _of_type(name: str) -> ColumnElement[bool]:
    """Rows of a searched type, the type written into the SQL text (``consent/enforce.words``):
    bound, PostgreSQL priced a one-inwoner search as if it read all her rows, AuditEvents
    included, and past a few hundred of those planned every run anew (docs/performance.md)."""
    return R.resource_type == words([name])[0]


@dataclass(slots=True)
class SearchPage:
    total: int | None
    matches: list[Stored]
    includes: list[Stored]
    next_cursor: Cursor | None
    previous_cursor: Cursor | None
    query: SearchQuery


def _named_patient(query: SearchQuery) -> str | None:
    """The inwoner a search names (patient=/subject=), for the log of an empty result."""
    for name, value in query.applied:
        if name.split(":")[0] in ("patient", "subject"):
            parsed = split_reference(value)
            return parsed[1] if parsed else value
    return None


def _after(sort_col: Any, cursor: Cursor, *, descending: bool) -> ColumnElement[bool]:
    """Rows strictly past the cursor in the page order: keyset pagination."""
    if sort_col is None:
        return R.pk < cursor.pk if descending else R.pk > cursor.pk
    # A row value, not ``key < col OR (key = col AND pk < …)``: the same rows (no sort
    # column is ever NULL), and a range the planner can start an index walk at; with the OR
    # every page of a sorted search or export walked its type's rows from the first.
    past, start = tuple_(sort_col, R.pk), tuple_(cursor.key, cursor.pk)
    return past < start if descending else past > start


class Searches(Reads):
    def export_page(self, conn: Connection, query: SearchQuery) -> SearchPage:
        """A search page for ``$export``, logged as interaction ``export``."""
        page = self._search(conn, query)
        self._record("export", page.matches, query=urlencode(query.applied))
        return page

    def search(self, conn: Connection, query: SearchQuery) -> SearchPage:
        """One page of a search, with its total and includes: only what the caller may see."""
        return self._logged_page(self._search(conn, query))

    async def whole_first_page_async(self, query: SearchQuery) -> SearchPage | None:
        """:meth:`search` of the most frequent kind (:meth:`_compartment_page`'s) with its
        one statement awaited (``Database.fetch_all_async``), when the first page holds
        every match: its total is then its length, from that one statement. None, with
        nothing logged, for any other search and when there are more matches than a page:
        the caller then searches the usual way, total and page in one snapshot.

        The usual way holds a pooled connection and a transaction in a worker thread; for a
        one-statement answer that cost more than the statement (docs/performance.md)."""
        db = self._rt.db
        planned = self._compartment_statement(query, db.dialect)
        if planned is None:
            return None
        rows = await db.fetch_all_async(*planned)
        if len(rows) > query.count:
            return None
        return self._logged_page(self._first_page(rows, query, None))

    def _logged_page(self, page: SearchPage) -> SearchPage:
        query = page.query
        self._record(
            "search-type",
            [*page.matches, *page.includes],
            query=urlencode(query.applied),
            fallback_patient=_named_patient(query),
        )
        return page

    def _search(self, conn: Connection, query: SearchQuery) -> SearchPage:
        plain = self._compartment_page(conn, query)
        if plain is not None:
            return plain
        where = self._where(query)
        wants_total = query.summary_count or query.total != "none"
        if query.summary_count or query.count == 0:
            total = self._count(conn, where) if wants_total else None
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
        total = None
        if wants_total:
            # A first page that holds every match is its own total (the same snapshot, the
            # same WHERE): the count's statement, as heavy as the page's, is left out.
            total = len(rows) if query.cursor is None and not more else self._count(conn, where)
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

    def _compartment_page(self, conn: Connection, query: SearchQuery) -> SearchPage | None:
        """The first page of the most frequent search there is, ``Goal?patient=…`` (one
        inwoner's resources of one type, no sort, no includes), by a statement compiled
        once per kind of caller and grantee set, as a read by id is (``_read_precompiled``):
        building and executing the generic statement through SQLAlchemy cost a search more
        than its SQL (docs/performance.md). The same WHERE, order and page as
        :meth:`_search`'s; None for any other search, which goes the generic way.
        """
        planned = self._compartment_statement(query, conn.dialect)
        if planned is None:
            return None
        sql, params = planned
        return self._first_page(fetch_all(conn, sql, params), query, conn)

    def _first_page(
        self, rows: Sequence[Any], query: SearchQuery, conn: Connection | None
    ) -> SearchPage:
        """The page of :meth:`_compartment_statement`'s rows (one more than the page asks,
        to see whether more follow): its total is its length when every match fits, else
        counted on ``conn``, in the same snapshot (the awaited way passes None: it never
        has more)."""
        more = len(rows) > query.count
        rows = rows[: query.count]
        matches = [self._stored(*row) for row in rows]
        total = None
        if query.total != "none":
            if not more:
                total = len(rows)
            else:
                assert conn is not None, "a page with more matches is counted in its snapshot"
                total = self._count(conn, self._where(query))
        next_cursor = Cursor(key=None, pk=rows[-1][0], backward=False) if more else None
        return SearchPage(total, matches, [], next_cursor, None, query)

    def _compartment_statement(
        self, query: SearchQuery, dialect: Dialect
    ) -> tuple[str, Any] | None:
        """The SQL and parameters of :meth:`_compartment_page`, or None for another search."""
        spec = query.spec
        if (
            query.compartment is None
            or query.cursor is not None
            or query.sort is not None
            or query.descending
            or query.summary_count
            or query.count == 0
            or query.includes
            or query.revincludes
            or self._ctx.query_restrictions(spec.name)
        ):
            return None

        def build() -> Select[Any]:
            return (
                self._select_current()
                .where(
                    _of_type(spec.name),
                    R.deleted.is_(False),
                    visible(self._ctx, ROW),
                    R.patient_id == bindparam(_COMPARTMENT, ""),
                )
                .order_by(R.pk.asc())
                .limit(bindparam(_LIMIT, 1, type_=Integer))
            )

        values = {
            **self._params,
            _COMPARTMENT: query.compartment,
            _LIMIT: query.count + 1,
        }
        return _FIRST_PAGES.statement(self._ctx, dialect, build, values, shape=spec.name)

    def _where(self, query: SearchQuery) -> list[ColumnElement[bool]]:
        """What a search matches: its type, not deleted, the caller's access decision and
        granular scopes, and the query's own conditions."""
        return [
            _of_type(query.spec.name),
            R.deleted.is_(False),
            visible(self._ctx, ROW),
            *self._restriction(query.spec),
            *query.where(),
        ]

    def _count(self, conn: Connection, where: list[ColumnElement[bool]]) -> int:
        return int(
            conn.execute(
                select(func.count()).select_from(ResourceRow.__table__).where(*where),
                self._params,
            ).scalar_one()
        )

    def everything(self, conn: Connection, patient_id: str, *, since: int | None) -> list[Stored]:
        """``Patient/$everything``: what the caller may see of one inwoner's compartment.

        Every row goes through the same access decision as a search; types the token's
        scopes do not cover are left out. If the caller may see nothing at all, the answer
        is 404, exactly as for an inwoner who does not exist.
        """
        found: list[Stored] = []
        settings = self._rt.settings
        for spec in RESOURCE_TYPES.values():
            # A family's Group heads a family compartment, not the Patient's (docs/family.md).
            if spec.compartment is None or spec.name == "Group":
                continue
            if not self._ctx.allows("s", spec.name):
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
            raise not_found("Patient", patient_id)
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
            _of_type(query.spec.name),
            R.deleted.is_(False),
            visible(self._ctx, ROW),
            *query.where(),
        ]
        return list(conn.scalars(select(R.resource_id).where(*where).limit(2), self._params))

    def _sort_column(self, query: SearchQuery) -> Any:
        if query.sort == "_lastUpdated":
            return R.last_updated
        if query.sort == "_id":
            return R.resource_id
        if query.sort == "date":
            # Rows without a date sort last in either direction.
            fallback = -(2**62) if query.descending else 2**62
            if query.spec.params_by_name["date"].single:
                ss = SearchAuditEvent.__table__.c
                column = ss.date_high if query.descending else ss.date_low
                found = select(column).where(ss.resource_pk == R.pk)
                return func.coalesce(found.scalar_subquery(), fallback)
            sd = SearchDate.__table__.c
            edge = func.max(sd.high) if query.descending else func.min(sd.low)
            return func.coalesce(
                select(edge).where(sd.resource_pk == R.pk, sd.param == "date").scalar_subquery(),
                fallback,
            )
        return None

    def _includes(
        self, conn: Connection, query: SearchQuery, pks: list[int], matches: list[Stored]
    ) -> list[Stored]:
        if not pks or not (query.includes or query.revincludes):
            return []
        seen = {(m.resource_type, m.resource_id) for m in matches}
        found: list[Stored] = []
        sr = reference_columns(query.spec.name)
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
            stmt = (
                self._select_current()
                .where(
                    _referring(inc, query.spec.name, ids),
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


def _referring(inc: Include, target_type: str, ids: list[str]) -> ColumnElement[bool]:
    """The resources of ``inc.source_type`` whose ``inc.param`` names one of ``ids``."""
    source = reference_columns(inc.source_type)
    naming = (
        source.param == inc.param.name,
        source.resource_type == inc.source_type,
        source.target_type == target_type,
        source.target_id.in_(ids),
    )
    # An AuditEvent's references have no index by target: start from the records the
    # caller may see (an inwoner's by her compartment), as a search does.
    if inc.source_type == AUDIT_EVENT:
        return and_(
            R.resource_type == inc.source_type,
            exists(select(source.id).where(source.resource_pk == R.pk, *naming)),
        )
    return R.pk.in_(select(source.resource_pk).where(*naming))
