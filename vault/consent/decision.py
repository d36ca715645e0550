"""The one access decision: which stored rows a caller may see, as a SQL condition.

Every path that shows stored data (read, vread, search and its total, ``_include`` and
``_revinclude``, history, ``$everything``, Bulk export, notifications and the consent page)
asks this module, for every kind of caller (design section 3):

    kind      who                                       rows visible
    full      the operator's tools                      all but an erased inwoner's
    patient   the inwoner (her app, her page, someone   her own compartment, the family
              acting for her)                           compartments she is a member of,
                                                        plus the shared directory
    system    a partner system, a practitioner, the     compartment rows an active Consent
              page's preview of what a party sees       grants them (``consent/enforce.py``;
                                                        a member's Consent that names the
                                                        family plan reaches the family
                                                        compartment, docs/family.md),
                                                        the Consents that name them, plus
                                                        the shared directory

Nothing else: deny by default. ``consent/policy.py`` is the plain-Python reference of the
same rule, and the property tests compare the two for random vaults and callers.

A condition is built once per kind of caller and reused: the values that change between
requests (the instant, the inwoner) are bind parameters that ``decision_params`` gives.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import BindParameter, ColumnElement, String, and_, bindparam, or_

from vault.consent.access import AccessContext
from vault.consent.enforce import (
    NOW,
    Decided,
    RowColumns,
    granted,
    names_grantee,
    not_erased,
    words,
)
from vault.consent.family import is_member
from vault.store.registry import SHARED_TYPES

__all__ = ["PATIENT", "decision_params", "visible"]

# The inwoner whose compartment a patient-kind caller sees, passed at execution.
PATIENT: BindParameter[str] = bindparam("rk_patient", type_=String)

# Conditions by (row columns, kind[, action, grantees, purposes]): few distinct keys, one per
# partner organisation and action, so a plain dict that is emptied when full will do.
_CACHE: dict[tuple[Any, ...], ColumnElement[bool]] = {}
_CACHE_SIZE = 1024
_SHARED_TYPES = tuple(sorted(SHARED_TYPES))


def decision_params(ctx: AccessContext, now: int) -> dict[str, Any]:
    """The bind values every statement built with :func:`visible` is executed with."""
    params: dict[str, Any] = {NOW.key: now}
    if ctx.kind == "patient":
        params[PATIENT.key] = ctx.patient_id
    return params


def visible(ctx: AccessContext, row: RowColumns, *, action: str = "access") -> ColumnElement[bool]:
    """The rows of ``row``'s table that ``ctx`` may see (``action`` "access"), or may
    change under a Consent's ``correct`` (``action`` "correct")."""
    # Building the partner condition cost a read more than a millisecond, so each condition
    # is built once per key and reused; the instant and the inwoner are bind parameters.
    if ctx.kind == "full":
        # All rows but an erased inwoner's: their data key is shredded, so they are gone.
        key: tuple[Any, ...] = (id(row), "full")
        cached = _CACHE.get(key)
        if cached is None:
            cached = _remember(key, not_erased(row))
        return cached
    if ctx.kind == "patient":
        key = (id(row), "patient")
        cached = _CACHE.get(key)
        if cached is None:
            # Her own compartment, and the family compartments she is a member of.
            cached = _remember(
                key,
                or_(row.patient_id == PATIENT, is_member(row.patient_id, PATIENT), _shared(row)),
            )
        return cached
    grantees, purposes = tuple(sorted(ctx.grantees)), tuple(sorted(ctx.purposes))
    key = (id(row), ctx.kind, action, grantees, purposes)
    cached = _CACHE.get(key)
    if cached is None:
        conditions = [
            _shared(row),
            granted(row, grantees=grantees, action=action, purposes=purposes, now=NOW),
        ]
        if action == "access":
            conditions.append(names_grantee(row, grantees=grantees))
        cached = _remember(key, or_(*conditions))
    return cached


def _shared(row: RowColumns) -> ColumnElement[bool]:
    """Rows of the shared directory: no inwoner, and a type outside every compartment."""
    return and_(row.patient_id.is_(None), row.resource_type.in_(words(_SHARED_TYPES)))


def _remember(key: tuple[Any, ...], condition: ColumnElement[bool]) -> ColumnElement[bool]:
    decided = Decided(condition, key)
    if len(_CACHE) >= _CACHE_SIZE:
        _CACHE.clear()
    _CACHE[key] = decided
    return decided
