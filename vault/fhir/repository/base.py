"""The repository's shared part: the caller, the scope check, the access log, opening.

``Repository`` (``vault/fhir/repository/__init__.py``) is built of one class per job, each
in its own module and each extending the one before: this base, then reads, search,
history and writes. Every statement any of them runs applies the one access decision
(``consent/decision.py``) in SQL, with the bind values ``decision_params`` gives.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from contextlib import asynccontextmanager
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Connection,
    Dialect,
    Select,
    and_,
    func,
    literal,
    or_,
    select,
    true,
)

from vault.audit.log import AuditRecord
from vault.consent.access import AccessContext, Interaction
from vault.consent.decision import PATIENT, decision_params
from vault.consent.enforce import NOW, RowColumns
from vault.fhir.resources import ID_PATTERN
from vault.fhir.search import SearchQuery, parse_search
from vault.kernel.crypto import BlindIndex
from vault.kernel.errors import Forbidden, NotFound
from vault.kernel.runtime import Runtime, now_micros
from vault.store.models import SHARED_OWNER, DataKey, ResourceRow, VersionRow
from vault.store.outbox import record_change
from vault.store.reads import open_sealed
from vault.store.registry import RESOURCE_TYPES, ResourceType, resource_type
from vault.store.writes import Stored

R = ResourceRow.__table__.c
V = VersionRow.__table__.c
K = DataKey.__table__.c
ROW = RowColumns(R.pk, R.resource_type, R.resource_id, R.patient_id)
# The current version of a row, with its sealed body and its owner's data key.
_SELECT_CURRENT: Select[Any] = (
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
    .outerjoin(DataKey.__table__, K.owner == func.coalesce(R.patient_id, literal(SHARED_OWNER)))
)


class Precompiled:
    """Statements with the access decision compiled to SQL text once per dialect, kind of
    caller and grantee set, and run on the driver's cursor: a read by id, the first page of
    a one-inwoner search. SQLAlchemy would otherwise build, key and compile the whole
    condition at every request, which cost more CPU than the query. ``variables`` are the
    bind parameters each run gives (with the decision's instant and inwoner); every other
    parameter is fixed when the statement is compiled."""

    def __init__(self, variables: Iterable[str], *, size: int = 1024) -> None:
        self._variables = frozenset({*variables, NOW.key, PATIENT.key})
        self._compiled: dict[tuple[Any, ...], tuple[str, Sequence[str] | None, dict[str, Any]]]
        self._compiled = {}
        self._size = size

    def statement(
        self,
        ctx: AccessContext,
        dialect: Dialect,
        build: Callable[[], Select[Any]],
        values: Mapping[str, Any],
        *,
        shape: str = "",
    ) -> tuple[str, Any]:
        """The SQL and the driver's parameters of ``build()`` run with ``values``; ``shape``
        names what ``build`` writes into the SQL text besides the decision (a type name)."""
        key = (
            dialect.name,
            ctx.kind,
            tuple(sorted(ctx.grantees)),
            tuple(sorted(ctx.purposes)),
            shape,
        )
        compiled = self._compiled.get(key)
        if compiled is None:
            placeholders = {NOW.key: 0, PATIENT.key: ""}  # compiled text once
            done = build().params(placeholders).compile(dialect=dialect)
            expanded = done.construct_expanded_state()
            fixed = {k: v for k, v in expanded.parameters.items() if k not in self._variables}
            compiled = (expanded.statement, expanded.positiontup, fixed)
            if len(self._compiled) >= self._size:
                self._compiled.clear()
            self._compiled[key] = compiled
        sql, positions, fixed = compiled
        merged = {**fixed, **values}
        return sql, merged if positions is None else [merged[name] for name in positions]


class RepositoryBase:
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
            alternatives.append(and_(true(), *parsed.where()))
        return [or_(*alternatives)]

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

    def _select_current(self) -> Select[Any]:
        # Built once: a Select is immutable (every ``.where`` makes a new one), and building
        # this join again cost a search about a sixth of its CPU.
        return _SELECT_CURRENT

    def _stored_from_row(self, row: Any) -> Stored:
        return self._stored(
            row.pk,
            row.resource_type,
            row.resource_id,
            row.version_id,
            row.last_updated,
            row.patient_id,
            row.body,
            row.wrapped,
            row.master_key_id,
        )

    def _stored(
        self,
        pk: int,
        resource_type: str,
        resource_id: str,
        version: int,
        last_updated: int,
        patient_id: str | None,
        body: bytes,
        wrapped: bytes | None,
        key_id: str | None,
    ) -> Stored:
        """A current version's row (the columns of ``_select_current``, in order), opened."""
        opened = self._open(resource_type, resource_id, version, patient_id, body, wrapped, key_id)
        return Stored(
            resource_type, resource_id, version, last_updated, False, opened, patient_id, pk
        )


INTERACTIONS = {"c": "create", "u": "update", "d": "delete"}
_SCOPE_INTERACTIONS = {**INTERACTIONS, "r": "read", "s": "search-type"}
_VERBS = {"c": "creating", "r": "reading", "u": "updating", "d": "deleting", "s": "searching"}


def resource_type_or_404(name: str) -> ResourceType:
    return resource_type(name)


def not_found(resource_type: str, resource_id: str) -> NotFound:
    # Byte for byte the same for an id that does not exist and one the caller may not see.
    return NotFound(f"{resource_type}/{resource_id[:64]} is not known")
