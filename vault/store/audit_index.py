"""The search index rows of an access-log record, without walking its JSON generically.

Every partner's read becomes an AuditEvent (``audit/log.py``), and settling one into a
resource indexes it like any other: its ``patient``, ``entity`` and ``agent`` as reference
rows, its ``date``, ``type``, ``action`` and ``outcome`` in its one row of single values
(``store/registry.py``, ``SearchParam.single``). The generic extraction walks
each parameter's path and hashes each token anew: about 36 µs per record, a quarter of
what settling a record costs (docs/performance.md). The access log writes one shape only
(``AuditRecord.to_fhir``), so this reads that shape directly and hashes its few fixed codes
once per process.

It gives the same rows as ``index.index_rows`` or none at all: any document that is not
of that shape (an element it does not know, a value of another type, a code outside the
fixed lists) returns None, and the caller takes the generic path.
``tests/unit/test_audit_index.py`` holds the two side by side.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from vault.kernel.fhirdata import parse_date_range, split_reference

if TYPE_CHECKING:
    from vault.kernel.runtime import Runtime

__all__ = ["audit_event_rows"]

Rows = list[tuple[Any, ...]]

_ELEMENTS = frozenset(
    {
        "resourceType",
        "id",
        "meta",
        "type",
        "subtype",
        "action",
        "recorded",
        "outcome",
        "outcomeDesc",
        "agent",
        "source",
        "purposeOfEvent",
        "entity",
    }
)
_TYPE_SYSTEM = "http://terminology.hl7.org/CodeSystem/audit-event-type"
# The codes the access log writes (``audit/record.py``): hashed once, kept per process.
_CODES = frozenset({"rest", "C", "R", "U", "D", "E", "0", "4"})


def audit_event_rows(
    runtime: Runtime, data: dict[str, Any], pk: int, patient_id: str | None
) -> tuple[Rows, tuple[Any, ...]] | None:
    """(references, the row of its single values) as tuples in the index tables' column
    order (see ``writes.insert_sealed``), or None when ``data`` is not of the access log's
    shape. Its tokens and its date are all single values: it has no rows of either."""
    # Long on purpose: one check per element of the shape, so nothing unknown slips through.
    if not _ELEMENTS.issuperset(data):
        return None
    meta = data.get("meta")  # its security labels are indexed (``_security``): not here
    if meta is not None and (not isinstance(meta, dict) or "security" in meta):
        return None
    # JSON values of any type until checked below.
    kind: Any = data.get("type")
    action: Any = data.get("action")
    outcome: Any = data.get("outcome")
    recorded: Any = data.get("recorded")
    if (
        not isinstance(kind, dict)
        or set(kind) - {"system", "code", "display"}
        or kind.get("system") != _TYPE_SYSTEM
        or not _fixed(kind.get("code"))
        or not _fixed(action)
        or not _fixed(outcome)
        or not isinstance(recorded, str)
    ):
        return None
    entities = _whats(data.get("entity", []), "what")
    agents = _whats(data.get("agent", []), "who")
    if entities is None or agents is None:
        return None
    common = (pk, "AuditEvent", patient_id)
    refs = [(*common, "patient", *ref) for ref in set(entities) if ref[0] == "Patient"]
    refs += [(*common, "entity", *ref) for ref in set(entities)]
    refs += [(*common, "agent", *ref) for ref in set(agents)]
    code = runtime.blind.token_of_code
    low, high = recorded_range(recorded)
    # In the order of ``index.SINGLE_COLUMNS``.
    single = (
        pk,
        patient_id,
        low,
        high,
        _TYPE_SYSTEM,
        code(kind["code"]),
        code(action),
        code(outcome),
    )
    return refs, single


# The second of the last instant ``recorded_range`` parsed: its text up to the fraction
# (``2026-11-01T10:00:00.``) and the microsecond it starts at. One tuple, replaced whole.
_last_second: tuple[str, int] = ("", 0)


def recorded_range(text: str) -> tuple[int, int]:
    """``parse_date_range`` of an instant, quicker for the form the access log writes.

    The log writes milliseconds in UTC (``kernel/fhirdata.format_instant``), nearly always
    many in the same second: such an instant in the second parsed last is that second's
    start plus its milliseconds, a range of one millisecond, as ``parse_date_range`` gives
    it (``tests/unit/test_audit_index.py`` holds the two side by side). Any other text is
    parsed in full."""
    global _last_second
    prefix, start = _last_second
    millis = text[20:23]
    if len(text) == 24 and text[23] == "Z" and text[:20] == prefix and _digits(millis):
        low = start + int(millis) * 1000
        return low, low + 1000
    low, high = parse_date_range(text)
    # Its last millisecond ends at MAX_MICROS, not 1,000 µs later: 9999 is never kept.
    shaped = len(text) == 24 and text[19] == "." and text[23] == "Z" and _digits(millis)
    if shaped and high - low == 1000 and not text.startswith("9999"):
        _last_second = (text[:20], low - int(millis) * 1000)
    return low, high


def _digits(text: str) -> bool:
    return text.isascii() and text.isdecimal()


def _fixed(value: Any) -> bool:
    return isinstance(value, str) and value in _CODES


def _whats(items: Any, element: str) -> list[tuple[str, str]] | None:
    """The references at ``items[*].element``, as the generic walk reads them; None if any
    item is of a shape the walk would read otherwise."""
    if not isinstance(items, list):
        return None
    found = []
    for item in items:
        if not isinstance(item, dict):
            return None
        value = item.get(element)
        if value is None:
            continue
        if not isinstance(value, dict):
            return None
        parsed = split_reference(value.get("reference"))
        if parsed is not None:
            found.append(parsed)
    return found
