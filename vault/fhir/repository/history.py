"""Instance and type history, under the same access decision as a read."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Connection, and_, func, literal, or_, select

from vault.consent.decision import visible
from vault.consent.enforce import RowColumns
from vault.fhir.repository.base import ROW, K, R, V, not_found
from vault.fhir.repository.search import Searches
from vault.fhir.search import Cursor
from vault.kernel.errors import NotFound
from vault.store.models import SHARED_OWNER, DataKey, VersionRow
from vault.store.writes import Stored

VERSION_ROW = RowColumns(V.resource_pk, V.resource_type, V.resource_id, V.patient_id)


@dataclass(slots=True)
class HistoryPage:
    entries: list[Stored]
    next_cursor: Cursor | None


class History(Searches):
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
        # Long on purpose: one statement (versions, keys, the decision, the scope's restriction, the
        # cursor) and its page.
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
                raise not_found(resource_type, resource_id)
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
