"""A resource's search index rows: what the search reads beside the ciphertext.

Tokens as keyed hashes (``search_token``), references (``search_reference``), date ranges
(``search_date``), and for an AuditEvent its single values in one row
(``search_audit_event``, ``SearchParam.single``) and its references in a table of their own
(``search_audit_reference``). ``index_rows`` reads them from any
resource by its type's parameters (``store/registry.py``); the access log's own records
take a quicker path to the same rows (``store/audit_index.py``). Nothing here commits.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, delete, insert

from vault.kernel.db import table_of
from vault.kernel.fhirdata import split_reference
from vault.store.models import (
    SearchAuditEvent,
    SearchAuditReference,
    SearchDate,
    SearchReference,
    SearchToken,
)
from vault.store.registry import RESOURCE_TYPES, TokenValue

if TYPE_CHECKING:
    from vault.kernel.runtime import Runtime
    from vault.store.writes import Prepared

__all__ = [
    "AUDIT_EVENT",
    "DATE_COLUMNS",
    "REFERENCE_COLUMNS",
    "REFERS",
    "SINGLE_COLUMNS",
    "TOKEN_COLUMNS",
    "IndexRows",
    "clear_index",
    "index_rows",
    "insert_index",
    "write_index",
]

_INSERT_TOKENS = insert(table_of(SearchToken))
_INSERT_REFERENCES = insert(table_of(SearchReference))
_INSERT_AUDIT_REFERENCES = insert(table_of(SearchAuditReference))
_INSERT_DATES = insert(table_of(SearchDate))
_INSERT_SINGLES = insert(table_of(SearchAuditEvent))
# In the order of each table's rows as ``writes.insert_sealed`` inserts them.
TOKEN_COLUMNS = ("resource_pk", "resource_type", "patient_id", "param", "system", "code_hash")
REFERENCE_COLUMNS = (
    "resource_pk",
    "resource_type",
    "patient_id",
    "param",
    "target_type",
    "target_id",
)
# An AuditEvent's references have a table of their own (``models.SearchAuditReference``).
AUDIT_EVENT = "AuditEvent"
DATE_COLUMNS = ("resource_pk", "resource_type", "patient_id", "param", "low", "high")
# ``search_audit_event``: the search values with one value at most (``SearchParam.single``).
SINGLE_COLUMNS = (
    "resource_pk",
    "patient_id",
    "date_low",
    "date_high",
    "type_system",
    "type_hash",
    "action_hash",
    "outcome_hash",
)


def write_index(runtime: Runtime, conn: Connection, prepared: Prepared, pk: int) -> None:
    insert_index(conn, *index_rows(runtime, prepared, pk))


def insert_index(
    conn: Connection,
    tokens: list[dict[str, Any]],
    refs: list[dict[str, Any]],
    dates: list[dict[str, Any]],
    singles: list[dict[str, Any]],
) -> None:
    if tokens:
        conn.execute(_INSERT_TOKENS, tokens)
    if refs:
        audit = [ref for ref in refs if ref["resource_type"] == AUDIT_EVENT]
        if audit:
            conn.execute(_INSERT_AUDIT_REFERENCES, audit)
        if len(audit) < len(refs):
            conn.execute(
                _INSERT_REFERENCES, [ref for ref in refs if ref["resource_type"] != AUDIT_EVENT]
            )
    if dates:
        conn.execute(_INSERT_DATES, dates)
    if singles:
        conn.execute(_INSERT_SINGLES, singles)


IndexRows = tuple[
    list[dict[str, Any]], list[dict[str, Any]], list[dict[str, Any]], list[dict[str, Any]]
]


def index_rows(runtime: Runtime, prepared: Prepared, pk: int) -> IndexRows:
    """The search index rows of one resource: (tokens, references, dates, the one row of
    its single values (``SearchParam.single``) if its type has any)."""
    # Long on purpose: one branch per kind of index row, each as the search reads it.
    spec, data, patient_id = prepared.spec, prepared.data, prepared.patient_id
    tokens: list[dict[str, Any]] = []
    refs: list[dict[str, Any]] = []
    dates: list[dict[str, Any]] = []
    single: dict[str, Any] | None = None
    common = {"resource_pk": pk, "resource_type": spec.name, "patient_id": patient_id}
    for param in spec.params:
        values: Iterable[Any] = set(param.extract(data))
        if param.single:
            if single is None:
                single = {**dict.fromkeys(SINGLE_COLUMNS), "resource_pk": pk}
                single["patient_id"] = patient_id
            _single_values(runtime, single, param.name, param.type, values)
        elif param.type == "token":
            for token in values:
                assert isinstance(token, TokenValue)
                tokens.append(
                    {
                        **common,
                        "param": param.name,
                        "system": token.system,
                        "code_hash": runtime.blind.token(token.code),
                    }
                )
        elif param.type == "reference":
            for target_type, target_id in values:
                refs.append(
                    {
                        **common,
                        "param": param.name,
                        "target_type": target_type,
                        "target_id": target_id,
                    }
                )
        else:
            for low, high in values:
                dates.append({**common, "param": param.name, "low": low, "high": high})
    if spec.name not in _EVERY_REFERENCE_INDEXED:
        indexed = {(r["target_type"], r["target_id"]) for r in refs}
        for target in sorted(set(_references_anywhere(data)) - indexed):
            refs.append(
                {**common, "param": REFERS, "target_type": target[0], "target_id": target[1]}
            )
    return tokens, refs, dates, [] if single is None else [single]


def _single_values(
    runtime: Runtime, row: dict[str, Any], name: str, kind: str, values: Iterable[Any]
) -> None:
    """Set the one value of parameter ``name`` in its columns of ``row`` (``SINGLE_COLUMNS``);
    they stay empty when the resource has none."""
    found = list(values)
    if len(found) > 1:  # R4 allows one; a resource the vault wrote never has more
        raise ValueError(f"search parameter {name} has {len(found)} values, at most 1 is kept")
    if not found:
        return
    if kind == "date":
        row[f"{name}_low"], row[f"{name}_high"] = found[0]
        return
    token = found[0]
    assert isinstance(token, TokenValue)
    if f"{name}_system" in row:
        row[f"{name}_system"] = token.system
    elif token.system is not None:
        raise ValueError(f"search parameter {name} keeps no system")
    row[f"{name}_hash"] = runtime.blind.token(token.code)


# Every reference of a resource to a stored type, wherever it sits, is an index row: the
# ones no search parameter covers (``Goal.outcomeReference``, an extension's reference)
# under ``REFERS``, a name no search can ask for. A Consent's ``related`` data grant (the
# named resource and what it refers to, consent/enforce.py) follows every reference of
# whatever parameter; searches and includes always name theirs.
REFERS = "_refers"
# The vault's own records: every reference they hold has its search parameter, and the
# access log is the hottest write there is.
_EVERY_REFERENCE_INDEXED = frozenset({"AuditEvent"})


def _references_anywhere(value: Any) -> Iterable[tuple[str, str]]:
    if isinstance(value, dict):
        for key, item in value.items():
            if key == "reference":
                parsed = split_reference(item)
                if parsed is not None and parsed[0] in RESOURCE_TYPES:
                    yield parsed
            elif isinstance(item, dict | list):
                yield from _references_anywhere(item)
    elif isinstance(value, list):
        for item in value:
            yield from _references_anywhere(item)


def clear_index(conn: Connection, pk: int, *, keep_labels: bool = False) -> None:
    for table in (SearchToken, SearchReference, SearchAuditReference, SearchDate, SearchAuditEvent):
        columns = table.__table__.c
        stmt = delete(table).where(columns.resource_pk == pk)
        if keep_labels and table is SearchToken:
            stmt = stmt.where(columns.param != "_security")
        conn.execute(stmt)
