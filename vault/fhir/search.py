"""FHIR search: parse the query string, then build one SQL statement over the index tables.

Implements the parts of FHIR R4 search (https://hl7.org/fhir/R4/search.html) the
CapabilityStatement declares: token, reference and date parameters with OR (``,``) and AND
(repeated name) semantics, the date prefixes eq ne lt gt le ge sa eb ap, ``_id``,
``_lastUpdated``, ``_count``, ``_sort``, ``_total``, ``_summary``, ``_elements`` (both in
``fhir/subsetting.py``), ``_include`` and ``_revinclude``. Paging is keyset-based (an opaque
cursor holding the sort key and the row key of the page edge), so next and previous links
stay valid while data changes.

An unknown parameter is refused with 400 unless the request says
``Prefer: handling=lenient``, in which case it is ignored, left out of the self link and
named in a warning OperationOutcome entry (R4 search.html, section 3.1.1.4 "Handling
errors": strict is this server's default; the CapabilityStatement says so).

Over 500 lines: one query string becomes one statement here, every parameter type, prefix
and modifier with the SQL it turns into, so a reader checks the two side by side.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import orjson
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sqlalchemy import ColumnElement, and_, exists, false, not_, or_, select
from sqlalchemy.sql.base import ReadOnlyColumnCollection
from sqlalchemy.sql.elements import KeyedColumnElement

from vault.fhir.resources import ID_PATTERN
from vault.fhir.subsetting import Subset
from vault.kernel.crypto import BlindIndex
from vault.kernel.errors import BadRequest
from vault.kernel.fhirdata import parse_date_range, split_reference
from vault.store.index import AUDIT_EVENT
from vault.store.models import (
    ResourceRow,
    SearchAuditEvent,
    SearchAuditReference,
    SearchDate,
    SearchReference,
    SearchToken,
)
from vault.store.registry import RESULT_PARAMETERS, ResourceType, SearchParam

__all__ = [
    "Cursor",
    "Include",
    "SearchQuery",
    "cursor_secret",
    "parse_search",
    "reference_columns",
    "whole_number",
]

R = ResourceRow.__table__.c
ST = SearchToken.__table__.c
SR = SearchReference.__table__.c
SAR = SearchAuditReference.__table__.c
SD = SearchDate.__table__.c
SS = SearchAuditEvent.__table__.c  # the single values (``SearchParam.single``)

DATE_PREFIXES = ("eq", "ne", "lt", "gt", "le", "ge", "sa", "eb", "ap")
# Cursor values end up as bound SQL parameters: keep them inside a signed 64-bit integer
# and an id's length, or the driver fails on them (500) instead of the cursor (400).
_INT64 = range(-(2**63), 2**63)
_MAX_KEY_CHARS = 64
_NONCE_BYTES = 12
_CURSOR_CONTEXT = b"_cursor"
_ESCAPE = re.compile(r"\\(.?)", re.DOTALL)
# Result parameters that change nothing about which rows match and are simply accepted.
_PASSIVE = {"_format", "_pretty"}
SortKey = Literal["_id", "_lastUpdated", "date"]
# The size of one search (issue 12 B8). Each OR alternative becomes bound SQL variables;
# without a bound, 1,000 of them overran SQLite's variable limit (a 500) and would make
# PostgreSQL plan a huge statement. Declared in the CapabilityStatement and
# docs/fhir-api-limits.md; exceeding one answers 400 (issue type too-costly) naming it.
MAX_PARAMETERS = 40  # name=value pairs in one request, result parameters included
MAX_ALTERNATIVES = 50  # comma-separated values of one parameter (also _id)
MAX_VALUES = 200  # alternatives summed over all parameters of the request
MAX_INCLUDES = 10  # _include and _revinclude together


@dataclass(frozen=True, slots=True)
class Include:
    source_type: str
    param: SearchParam
    target_type: str | None


@dataclass(frozen=True, slots=True)
class Cursor:
    """The edge of a page: its sort key and row key, sealed into an opaque ``_cursor``.

    Sealed with AES-GCM under a key derived from the vault's blind-index key (issue 12 B9):
    the row key is a vault-wide row number, which would tell a caller how many resources
    the vault holds and how fast they grow. The nonce is an HMAC of the content, so the
    same page edge always gives the same cursor (links stay stable), and any change to
    it fails authentication (400).
    """

    key: int | str | None
    pk: int
    backward: bool

    def encode(self, *, secret: bytes) -> str:
        raw = orjson.dumps([self.key, self.pk, 1 if self.backward else 0])
        nonce = hmac.new(secret, raw, hashlib.sha256).digest()[:_NONCE_BYTES]
        sealed = nonce + AESGCM(secret).encrypt(nonce, raw, _CURSOR_CONTEXT)
        return base64.urlsafe_b64encode(sealed).decode("ascii").rstrip("=")

    @classmethod
    def decode(cls, text: str, *, secret: bytes) -> Cursor:
        try:
            sealed = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
            if base64.urlsafe_b64encode(sealed).decode("ascii").rstrip("=") != text:
                raise ValueError  # another spelling of the same bytes is not our cursor
            nonce, body = sealed[:_NONCE_BYTES], sealed[_NONCE_BYTES:]
            raw = AESGCM(secret).decrypt(nonce, body, _CURSOR_CONTEXT)
            key, pk, backward = orjson.loads(raw)
            if not _is_int64(pk) or not (
                key is None
                or _is_int64(key)
                or (isinstance(key, str) and len(key) <= _MAX_KEY_CHARS)
            ):
                raise ValueError
        except (binascii.Error, ValueError, TypeError, InvalidTag, orjson.JSONDecodeError):
            raise BadRequest("The paging cursor is not valid", expression=["_cursor"]) from None
        return cls(key=key, pk=pk, backward=bool(backward))


def cursor_secret(blind: BlindIndex) -> bytes:
    """The key that seals paging cursors: the same in every process of one vault."""
    return blind.derive(b"regiekluis paging cursor v1")


def whole_number(value: str, name: str) -> int:
    """A count from a URL: ASCII digits only (``"²".isdigit()`` is true), and not so long
    that ``int()`` refuses it (Python's 4300-digit limit) or it overflows a database column."""
    if not (value.isascii() and value.isdigit()) or len(value) > 18:
        raise BadRequest(f"{name} must be a whole number", expression=[name])
    return int(value)


def _is_int64(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value in _INT64


@dataclass(slots=True)
class SearchQuery:
    spec: ResourceType
    # The conditions built; ``inwoners``: the compartment column's, built only when asked
    # for (``where``), since the compiled first page of ``Goal?patient=`` never asks.
    built: list[ColumnElement[bool]] = field(default_factory=list)
    inwoners: list[str] = field(default_factory=list)
    count: int = 20
    sort: SortKey | None = None
    descending: bool = False
    total: Literal["none", "estimate", "accurate"] = "accurate"
    summary_count: bool = False
    subset: Subset = field(default_factory=Subset)
    includes: list[Include] = field(default_factory=list)
    revincludes: list[Include] = field(default_factory=list)
    cursor: Cursor | None = None
    # The parameters that were applied, in order, for the self and paging links.
    applied: list[tuple[str, str]] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)
    # The inwoner id when the one condition is ``patient_id = id`` (``_compartment_only``):
    # such a search runs a statement compiled once (``Searches._search``).
    compartment: str | None = None

    def where(self) -> list[ColumnElement[bool]]:
        """Every condition of the query (not the caller's access decision)."""
        return [*self.built, *(R.patient_id == inwoner for inwoner in self.inwoners)]


def parse_search(
    spec: ResourceType,
    params: Sequence[tuple[str, str]],
    *,
    blind: BlindIndex,
    lenient: bool,
    default_count: int,
    max_count: int,
    registry: dict[str, ResourceType],
) -> SearchQuery:
    query = SearchQuery(spec=spec, count=default_count)
    by_name = spec.params_by_name
    _check_size(params)
    for raw_name, value in params:
        name, _, modifier = raw_name.partition(":")
        if raw_name == "_cursor":
            query.cursor = Cursor.decode(value, secret=cursor_secret(blind))
            continue
        if name in _PASSIVE:
            continue
        try:
            if name in by_name:
                inwoner = _compartment_only(by_name[name], modifier, value)
                if inwoner is None:
                    query.built.append(
                        _condition(spec, by_name[name], modifier, value, blind=blind)
                    )
                else:
                    query.inwoners.append(inwoner)
            elif name.startswith("_"):
                _apply_result_param(query, name, modifier, value, max_count, registry)
            else:
                raise BadRequest(
                    f"Unknown search parameter '{raw_name}' for {spec.name}", expression=[raw_name]
                )
        except BadRequest:
            if lenient and not _is_syntax_of_known(name, by_name):
                query.ignored.append(raw_name)
                continue
            raise
        query.applied.append((raw_name, value))
    if len(query.includes) + len(query.revincludes) > MAX_INCLUDES:
        raise _too_costly(f"at most {MAX_INCLUDES} _include and _revinclude together")
    if query.cursor is not None:
        _check_cursor_fits(query)
    if not query.built and len(query.inwoners) == 1:  # (``_id`` adds a condition too)
        query.compartment = query.inwoners[0]
    return query


def _too_costly(limit: str, name: str | None = None) -> BadRequest:
    return BadRequest(
        f"This search is too large: {limit} (see the CapabilityStatement)",
        expression=[name[:64]] if name else None,
        code="too-costly",
    )


def _check_size(params: Sequence[tuple[str, str]]) -> None:
    """Refuse a search over the limits before anything is parsed or bound."""
    if len(params) > MAX_PARAMETERS:
        raise _too_costly(f"at most {MAX_PARAMETERS} parameters per request")
    total = 0
    for name, value in params:
        if name == "_cursor":
            continue
        # Escaped commas (\,) do not separate: counting them too only errs on the safe side.
        alternatives = value.count(",") + 1
        if alternatives > MAX_ALTERNATIVES:
            raise _too_costly(f"at most {MAX_ALTERNATIVES} values per parameter", name)
        total += alternatives
    if total > MAX_VALUES:
        raise _too_costly(f"at most {MAX_VALUES} values in all parameters together")


def _check_cursor_fits(query: SearchQuery) -> None:
    # A cursor made for another sort would compare a text key with a number column.
    key = query.cursor.key if query.cursor is not None else None
    if query.sort is None:
        fits = key is None
    elif query.sort == "_id":
        fits = isinstance(key, str)
    else:
        fits = isinstance(key, int)
    if not fits:
        raise BadRequest("The paging cursor does not belong to this search", expression=["_cursor"])


def _is_syntax_of_known(name: str, by_name: dict[str, SearchParam]) -> bool:
    # Lenient handling ignores parameters the server does not know; a known parameter with
    # a malformed value is still an error, as silently widening a search would mislead.
    return name in by_name or name in ("_id", "_lastUpdated") or name in RESULT_PARAMETERS


def _apply_result_param(
    query: SearchQuery,
    name: str,
    modifier: str,
    value: str,
    max_count: int,
    registry: dict[str, ResourceType],
) -> None:
    spec = query.spec
    if modifier:
        # None is supported, and ignoring one would answer another question (_id:not=x).
        raise BadRequest(f"{name}:{modifier} is not supported", expression=[name])
    if name == "_id":
        ids = [v for v in _split(value) if v]
        for item in ids:
            if not ID_PATTERN.match(item):
                raise BadRequest("'_id' value is not a valid id", expression=["_id"])
        query.built.append(R.resource_id.in_(ids) if ids else false())
    elif name == "_lastUpdated":
        query.built.append(_date_on_instant(value))
    elif name == "_count":
        query.count = min(whole_number(value, "_count"), max_count)
    elif name == "_sort":
        keys = [k for k in value.split(",") if k]
        if len(keys) != 1:
            raise BadRequest("_sort takes exactly one key", expression=["_sort"])
        key = keys[0]
        query.descending = key.startswith("-")
        key = key.removeprefix("-")
        if key == "_lastUpdated" or key == "_id":
            query.sort = key  # type: ignore[assignment]
        elif key == "date" and "date" in spec.params_by_name:
            query.sort = "date"
        else:
            raise BadRequest(f"Sorting by '{key}' is not supported", expression=["_sort"])
    elif name == "_total":
        if value not in ("none", "estimate", "accurate"):
            raise BadRequest("_total must be none, estimate or accurate", expression=["_total"])
        query.total = value  # type: ignore[assignment]
    elif name in ("_summary", "_elements"):
        # fhir/subsetting.py: which part of each match the bundle carries.
        query.subset = query.subset.combined(
            summary=value if name == "_summary" else None,
            elements=value if name == "_elements" else None,
            type_name=spec.name,
        )
        query.summary_count = query.subset.summary == "count"
    elif name in ("_include", "_revinclude"):
        include = _parse_include(value, registry)
        if name == "_include":
            if include.source_type != spec.name:
                raise BadRequest(f"_include must start with {spec.name}:", expression=[name])
            query.includes.append(include)
        else:
            query.revincludes.append(include)
    else:
        raise BadRequest(f"Unknown search parameter '{name}'", expression=[name])


def _parse_include(value: str, registry: dict[str, ResourceType]) -> Include:
    parts = value.split(":")
    if len(parts) not in (2, 3):
        raise BadRequest("An include looks like Type:parameter[:TargetType]")
    source = registry.get(parts[0])
    param = source.params_by_name.get(parts[1]) if source else None
    if source is None or param is None or param.type != "reference":
        raise BadRequest(f"'{value}' does not name a reference search parameter")
    target = parts[2] if len(parts) == 3 else None
    if target is not None and target not in param.targets:
        raise BadRequest(f"'{value}': {parts[1]} does not point at {target}")
    return Include(source_type=source.name, param=param, target_type=target)


def _split(value: str, sep: str = ",", *, unescape: bool = True) -> list[str]:
    """Split on ``sep`` unless escaped with a backslash (FHIR search escaping).

    ``unescape=False`` keeps the escapes in the parts, for a part that is split again
    (a token's ``system|code`` inside a comma-separated list).
    """
    out, buf, escaped = [], [], False
    for char in value:
        if escaped:
            if not unescape:
                buf.append("\\")
            buf.append(char)
            escaped = False
        elif char == "\\":
            escaped = True
        elif char == sep:
            out.append("".join(buf))
            buf = []
        else:
            buf.append(char)
    out.append("".join(buf))
    return out


def _condition(
    spec: ResourceType, param: SearchParam, modifier: str, value: str, *, blind: BlindIndex
) -> ColumnElement[bool]:
    alternatives = _split(value, unescape=False)
    if not value or not all(alternatives):
        raise BadRequest(
            f"Search parameter '{param.name}' has an empty value", expression=[param.name]
        )
    if param.type == "token":
        if modifier:
            raise BadRequest(
                f"Modifier ':{modifier}' is not supported on {param.name}", expression=[param.name]
            )
        return or_(*(_token(spec, param, alt, blind) for alt in alternatives))
    if param.type == "reference":
        if modifier and modifier not in param.targets:
            raise BadRequest(
                f"Modifier ':{modifier}' is not supported on {param.name}", expression=[param.name]
            )
        return or_(
            *(_reference(spec, param, _unescape(alt), modifier or None) for alt in alternatives)
        )
    if modifier:
        raise BadRequest(
            f"Modifier ':{modifier}' is not supported on {param.name}", expression=[param.name]
        )
    return or_(*(_date(spec, param, _unescape(alt)) for alt in alternatives))


def _unescape(value: str) -> str:
    return _ESCAPE.sub(r"\1", value)


def _token(
    spec: ResourceType, param: SearchParam, value: str, blind: BlindIndex
) -> ColumnElement[bool]:
    parts = _split(value, "|")
    if len(parts) > 2:
        raise BadRequest(
            f"Token value of '{param.name}' has more than one '|'", expression=[param.name]
        )
    if param.single:
        return _single_token(param, parts, blind)
    where: list[ColumnElement[bool]] = [
        ST.resource_pk == R.pk,
        ST.param == param.name,
        ST.resource_type == spec.name,
    ]
    if len(parts) == 1:
        where.append(ST.code_hash == blind.token(parts[0]))
    else:
        system, code = parts
        where.append(ST.system == system if system else ST.system.is_(None))
        if code:
            where.append(ST.code_hash == blind.token(code))
    return exists(select(ST.id).where(*where))


def _single_token(param: SearchParam, parts: list[str], blind: BlindIndex) -> ColumnElement[bool]:
    """:func:`_token` on the parameter's columns of its resource's one row of single
    values: ``<name>_hash``, and ``<name>_system`` where the parameter has one."""
    code_hash = SS[f"{param.name}_hash"]
    system = SS.get(f"{param.name}_system")
    where: list[ColumnElement[bool]] = [SS.resource_pk == R.pk]
    if len(parts) == 1:
        where.append(code_hash == blind.token(parts[0]))
    else:
        given, code = parts
        if system is not None:
            where.append(system == given if given else system.is_(None))
        elif given:  # the parameter is a plain code: no value of it has a system
            return false()
        where.append(code_hash == blind.token(code) if code else code_hash.is_not(None))
    return exists(select(SS.resource_pk).where(*where))


def _target(param: SearchParam, value: str, type_modifier: str | None) -> tuple[str, str]:
    """The type (empty when not given) and id a reference parameter's value names."""
    parsed = split_reference(value)
    if parsed is not None:
        target_type, target_id = parsed
        if type_modifier and type_modifier != target_type:
            raise BadRequest(
                f"'{param.name}:{type_modifier}' does not match {target_type}",
                expression=[param.name],
            )
        return target_type, target_id
    if ID_PATTERN.match(value):
        return type_modifier or "", value
    raise BadRequest(f"'{param.name}' needs an id or Type/id", expression=[param.name])


def _compartment_only(param: SearchParam, modifier: str, value: str) -> str | None:
    """The inwoner id when ``param=value`` is answered by the compartment column alone (the
    first compartment case of :func:`_reference`: ``patient_id = id``), else None, also
    for any value :func:`_condition` would refuse: it says why."""
    if param.type != "reference" or not param.compartment or not value:
        return None
    if modifier and modifier not in param.targets:
        return None
    alternatives = _split(value, unescape=False)
    if len(alternatives) != 1 or not alternatives[0]:
        return None
    try:
        target_type, target_id = _target(param, _unescape(alternatives[0]), modifier or None)
    except BadRequest:
        return None
    return target_id if _by_compartment_column(param, target_type) else None


def _by_compartment_column(param: SearchParam, target_type: str) -> bool:
    """A reference of a compartment parameter to ``target_type`` (empty: not given) that the
    compartment's own column answers: a type the parameter may name, and no choice of
    compartment owner (a Patient's or a family's) for the type to settle."""
    if target_type and target_type not in param.targets:
        return False
    return param.compartment and (not target_type or len(param.targets) == 1)


def _reference(
    spec: ResourceType, param: SearchParam, value: str, type_modifier: str | None
) -> ColumnElement[bool]:
    target_type, target_id = _target(param, value, type_modifier)
    if target_type and target_type not in param.targets:
        return false()
    if param.compartment:
        # The compartment's own column answers this; the write path derived it from here.
        if _by_compartment_column(param, target_type):
            return R.patient_id == target_id
        # A Patient's compartment or a family's (docs/family.md): the type must agree too.
        owner = ResourceRow.__table__.alias("owner").c
        is_owner = and_(owner.resource_type == target_type, owner.resource_id == target_id)
        return and_(R.patient_id == target_id, exists(select(owner.pk).where(is_owner)))
    refs = reference_columns(spec.name)
    where: list[ColumnElement[bool]] = [
        refs.resource_pk == R.pk,
        refs.param == param.name,
        refs.resource_type == spec.name,
        refs.target_id == target_id,
    ]
    if target_type:
        where.append(refs.target_type == target_type)
    return exists(select(refs.id).where(*where))


def reference_columns(resource_type: str) -> ReadOnlyColumnCollection[str, KeyedColumnElement[Any]]:
    """The columns of the table that holds ``resource_type``'s references: an
    AuditEvent's are in a table of their own (``store.models.SearchAuditReference``)."""
    return SAR if resource_type == AUDIT_EVENT else SR


def _prefix(value: str) -> tuple[str, str]:
    if len(value) > 2 and value[:2] in DATE_PREFIXES and not value[:2].isdigit():
        return value[:2], value[2:]
    return "eq", value


def _range(value: str, name: str) -> tuple[str, int, int]:
    prefix, text = _prefix(value)
    try:
        low, high = parse_date_range(text)
    except ValueError:
        raise BadRequest(
            f"'{name}' value '{text[:40]}' is not a FHIR date", expression=[name]
        ) from None
    return prefix, low, high


def _compare(
    prefix: str, qlo: int, qhi: int, rlo: ColumnElement[int], rhi: ColumnElement[int]
) -> ColumnElement[bool]:
    """FHIR date prefixes over ranges: the query range [qlo, qhi), the row range [rlo, rhi)."""
    contained = and_(rlo >= qlo, rhi <= qhi)
    match prefix:
        case "eq":
            return contained
        case "ne":
            return not_(contained)
        case "gt":
            return rhi > qhi
        case "lt":
            return rlo < qlo
        case "ge":
            return or_(rhi > qhi, contained)
        case "le":
            return or_(rlo < qlo, contained)
        case "sa":
            return rlo >= qhi
        case "eb":
            return rhi <= qlo
        case _:  # "ap": the ranges overlap
            return and_(rlo < qhi, rhi > qlo)


def _date(spec: ResourceType, param: SearchParam, value: str) -> ColumnElement[bool]:
    prefix, low, high = _range(value, param.name)
    if param.single:
        rlo, rhi = SS[f"{param.name}_low"], SS[f"{param.name}_high"]
        return exists(
            select(SS.resource_pk).where(
                SS.resource_pk == R.pk, rlo.is_not(None), _compare(prefix, low, high, rlo, rhi)
            )
        )
    return exists(
        select(SD.id).where(
            SD.resource_pk == R.pk,
            SD.param == param.name,
            SD.resource_type == spec.name,
            _compare(prefix, low, high, SD.low, SD.high),
        )
    )


def _date_on_instant(value: str) -> ColumnElement[bool]:
    """``_lastUpdated``: :func:`_compare` for a row range of one microsecond, ``[t, t+1)``,
    worked out to plain bounds on ``t`` so the planner can walk the type's index by
    ``last_updated`` (an export page walked every row of its type, issue 13)."""
    prefix, low, high = _range(value, "_lastUpdated")
    t = R.last_updated
    match prefix:
        case "eq" | "ap":  # qlo <= t and t + 1 <= qhi; t < qhi and t + 1 > qlo
            return and_(t >= low, t < high)
        case "ne":
            return not_(and_(t >= low, t < high))
        case "gt" | "sa":  # t + 1 > qhi; t >= qhi
            return t >= high
        case "lt" | "eb":  # t < qlo; t + 1 <= qlo
            return t < low
        case "ge":  # t + 1 > qhi, or inside
            return t >= low
        case _:  # "le": t < qlo, or inside
            return t < high
