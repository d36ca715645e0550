"""The access decision as SQL: the rule of ``consent/policy.py``, applied where the data is.

Design section 3: grants compiled from Consents live in ``consent_grant``; a partner's
search is one query whose WHERE clause includes this condition, so results, totals,
includes, history and paging only ever see granted rows. Nothing is fetched and then
filtered. The tests compare this against the plain-Python reference for random Consents.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    BigInteger,
    BindParameter,
    Boolean,
    ColumnElement,
    String,
    and_,
    bindparam,
    exists,
    false,
    literal,
    literal_column,
    or_,
    select,
)
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.visitors import InternalTraversal

from vault.consent.compile import GRANTABLE_TYPES
from vault.consent.family import is_member
from vault.consent.models import ConsentGrant, ConsentRelated
from vault.store.models import DataKey, ResourceRow, SearchReference, SearchToken

__all__ = ["NOW", "Decided", "RowColumns", "granted", "words"]

# The instant of the decision as a bind parameter: a condition built with it can be built
# once and reused, with the instant passed at execution (``{NOW.key: now}``).
NOW: BindParameter[int] = bindparam("rk_now", type_=BigInteger)

SR = SearchReference.__table__.c
ST = SearchToken.__table__.c
DK = DataKey.__table__.c
CR = ConsentRelated.__table__.c
# Built once: an alias's column collection costs more to set up than the rest of the query.
_PERMIT = ConsentGrant.__table__.alias("g")
_DENY = ConsentGrant.__table__.alias("d")
_NAMED = ResourceRow.__table__.alias("named")


class Decided(ColumnElement[bool]):
    """A built access condition whose cache key is ``decision``, not its whole tree.

    SQLAlchemy walks an expression on every execution to find its compiled form; for the
    consent condition (subqueries, lists of grantees) that walk cost a partner's search
    more than its SQL. ``decision`` must name everything the condition was built from. The
    values that change between runs, the instant (:data:`NOW`) and the inwoner of a
    patient-kind caller (``consent/decision.py`` ``PATIENT``), are bind parameters every
    execution passes by name; a run without them fails instead of using a stale value.
    """

    __visit_name__ = "rk_decided"
    _traverse_internals = [("decision", InternalTraversal.dp_plain_obj)]
    inherit_cache = True
    type = Boolean()
    _is_implicitly_boolean = True  # a condition, not a column: no "= 1" around it

    def __init__(self, condition: ColumnElement[bool], decision: tuple[Any, ...]) -> None:
        self.condition = condition
        self.decision = decision


@compiles(Decided)
def _compile_decided(element: Decided, compiler: SQLCompiler, **kw: Any) -> str:
    # Always in parentheses: it is an OR, and may stand inside an AND.
    return "(" + compiler.process(element.condition, **kw) + ")"


def _one_of(values: Iterable[str]) -> list[ColumnElement[str]]:
    """``IN`` with one bound value each, not SQLAlchemy's expanding parameter: that one
    renders the statement again at every execution, which cost a partner's search more
    than its queries. The lists here are fixed per cached condition (grantees, purposes)."""
    return [literal(value) for value in values]


_WORD = re.compile(r"[A-Za-z_*]{1,40}")


def _word(value: str) -> ColumnElement[str]:
    """One of this module's own constants (an effect, an action, a type name, a search
    parameter's name) written into the SQL text instead of bound.

    PostgreSQL plans a prepared statement once for all its runs (a generic plan), and it
    can only weigh a value it sees. With ``effect = $1`` it priced each deny check as a
    read of every grant row of the Consent; at 100 grant rows per inwoner it then chose,
    for a partner's search, a plan that read the whole ``fhir_version`` table (124 ms
    against 0.7, docs/performance.md), or planned every run anew. A grantee or a purpose
    stays bound, so every partner shares one statement. Only plain words: never a value a
    caller sent."""
    if not _WORD.fullmatch(value):
        raise ValueError("not a plain word")
    return literal_column(f"'{value}'", String)


def words(values: Iterable[str]) -> list[ColumnElement[str]]:
    """:func:`_word` for each value: an ``IN`` list written into the SQL text. The
    repository writes a search's type this way too (a registry name, never the caller's
    text): bound, it made PostgreSQL plan each one-inwoner search anew once the access log
    held a few hundred AuditEvents per inwoner (docs/performance.md)."""
    return [_word(value) for value in values]


_GRANTABLE = words(sorted(GRANTABLE_TYPES))


@dataclass(frozen=True, slots=True)
class RowColumns:
    """The columns that identify a resource row: of fhir_resource or of fhir_version."""

    pk: Any
    resource_type: Any
    resource_id: Any
    patient_id: Any


def _related(g: Any, row: RowColumns, *, effect: str) -> ColumnElement[bool]:
    """FHIR consent-data-meaning ``related``: the named resource and what it refers to.

    "What it refers to" is read twice: what the named resource referred to when the
    Consent was written (``consent_related``) and what it refers to now. A permit needs
    both, so a later write (a partner's ``correct`` above all) never widens it, while a
    reference the inwoner removes ends at once; a deny takes either, so it never narrows.
    """
    named = _NAMED.c
    now_refers = exists(
        select(SR.id)
        .select_from(_NAMED.join(SearchReference.__table__, SR.resource_pk == named.pk))
        .where(
            named.resource_type == g.data_type,
            named.resource_id == g.data_id,
            named.deleted.is_(False),
            SR.target_type == row.resource_type,
            SR.target_id == row.resource_id,
        )
        .correlate_except(SearchReference.__table__, _NAMED)
    )
    referred_then = exists(
        select(CR.id)
        .where(
            CR.consent_pk == g.consent_pk,
            CR.data_type == g.data_type,
            CR.data_id == g.data_id,
            CR.target_type == row.resource_type,
            CR.target_id == row.resource_id,
        )
        .correlate_except(ConsentRelated.__table__)
    )
    if effect == "permit":
        return and_(now_refers, referred_then)
    return or_(now_refers, referred_then)


def _compartment(g: Any, row: RowColumns) -> ColumnElement[bool]:
    """The row is in the compartment the grant reaches: the granting inwoner's own, or the
    family compartment its ``data`` names while she is a member of that family
    (docs/family.md section 6: a member's Consent that names the family plan)."""
    return or_(
        g.patient_id == row.patient_id,
        and_(g.family_id == row.patient_id, is_member(g.family_id, g.patient_id)),
    )


def _match(
    g: Any,
    row: RowColumns,
    *,
    effect: str,
    action: str,
    purposes: Iterable[str],
    now: int | BindParameter[int],
) -> list[ColumnElement[bool]]:
    purpose_list = sorted(set(purposes))
    # A deny only cuts into a permit of its own Consent (``granted``), which has already
    # placed the row in one of that Consent's compartments: the deny's own or its family's.
    where = [_compartment(g, row)] if effect == "permit" else []
    return [
        *where,
        or_(
            and_(g.resource_type == _word("*"), row.resource_type.in_(_GRANTABLE)),
            g.resource_type == row.resource_type,
        ),
        or_(g.action.is_(None), g.action == _word(action)),
        or_(g.valid_from.is_(None), g.valid_from <= now),
        or_(g.valid_until.is_(None), g.valid_until > now),
        or_(g.purpose.is_(None), g.purpose.in_(_one_of(purpose_list)))
        if purpose_list
        else g.purpose.is_(None),
        or_(
            g.data_type.is_(None),
            and_(g.data_type == row.resource_type, g.data_id == row.resource_id),
            and_(g.data_meaning == _word("related"), _related(g, row, effect=effect)),
        ),
        or_(
            g.label_hash.is_(None),
            exists(
                select(ST.id)
                .where(
                    ST.resource_pk == row.pk,
                    ST.param == _word("_security"),
                    ST.code_hash == g.label_hash,
                    or_(g.label_system.is_(None), ST.system == g.label_system),
                )
                .correlate_except(SearchToken.__table__)
            ),
        ),
    ]


def granted(
    row: RowColumns,
    *,
    grantees: Iterable[str],
    action: str,
    purposes: Iterable[str],
    now: int | BindParameter[int],
) -> ColumnElement[bool]:
    """True for rows some active Consent lets one of ``grantees`` ``action`` at ``now``.

    ``now`` is an instant in microseconds, or :data:`NOW` for a condition that is built
    once and given the instant when it runs.
    """
    who = sorted(set(grantees))
    if not who:
        return false()
    g, d = _PERMIT, _DENY
    denied = exists(
        select(d.c.id)
        .where(
            d.c.consent_pk == g.c.consent_pk,
            d.c.effect == _word("deny"),
            or_(d.c.grantee.is_(None), d.c.grantee.in_(_one_of(who))),
            *_match(d.c, row, effect="deny", action=action, purposes=purposes, now=now),
        )
        .correlate_except(d)
    )
    permitted = exists(
        select(g.c.id)
        .where(
            g.c.effect == _word("permit"),
            g.c.grantee.in_(_one_of(who)),
            *_match(g.c, row, effect="permit", action=action, purposes=purposes, now=now),
            ~denied,
        )
        .correlate_except(g)
    )
    return permitted


def not_erased(row: RowColumns) -> ColumnElement[bool]:
    """Rows whose owner's data key is not destroyed: an erased inwoner's rows stay in the
    database, unreadable, and are gone for every caller, the operator's tools included."""
    return ~exists(
        select(DK.owner)
        .where(DK.owner == row.patient_id, DK.wrapped.is_(None))
        .correlate_except(DataKey.__table__)
    )


def names_grantee(row: RowColumns, *, grantees: Iterable[str]) -> ColumnElement[bool]:
    """A Consent row that names one of ``grantees`` as actor: a partner sees its own grant."""
    pairs = [tuple(g.split("/", 1)) for g in sorted(set(grantees))]
    if not pairs:
        return false()
    return and_(
        row.resource_type == _word("Consent"),
        exists(
            select(SR.id)
            .where(
                SR.resource_pk == row.pk,
                SR.param == _word("actor"),
                or_(*(and_(SR.target_type == t, SR.target_id == i) for t, i in pairs)),
            )
            .correlate_except(SearchReference.__table__)
        ),
        # An erased inwoner's Consents cannot be opened: they are gone, as if never written.
        exists(
            select(DK.owner)
            .where(DK.owner == row.patient_id, DK.wrapped.is_not(None))
            .correlate_except(DataKey.__table__)
        ),
    )
