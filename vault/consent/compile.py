"""Consent -> grants: what an inwoner's FHIR Consent allows, as flat rows the database can join.

FHIR R4 Consent (https://hl7.org/fhir/R4/consent.html), scope ``patient-privacy``, read the
way design section 1 describes. Deny by default: nothing is visible to a partner unless a
permit provision of an active Consent names it. Each provision is compiled into rows, one
per combination of actor, action, resource class, data item and purpose, with the
constraints of its ancestors folded in (a nested provision narrows its parent):

- ``provision.type``: permit or deny. Within one Consent a deny cuts an exception out of
  that Consent's permits; it does not reach into another Consent.
- ``actor.reference``: Organization, Practitioner or RelatedPerson (the grantee).
- ``action``: ``access`` (read) and ``correct`` (write). A permit must name its actions.
- ``class``: resource types (system ``http://hl7.org/fhir/resource-types``); none = all
  types an inwoner's plan is made of. AuditEvent is never granted to anyone else, and a
  Consent is shown only to the actors it names, never granted.
- ``data``: specific resources, ``meaning`` ``instance`` (that resource) or ``related``
  (that resource and the resources it refers to, FHIR's consent-data-meaning: both when
  the Consent is written and now, so a later write never widens it; see
  ``consent/service.py`` and docs/partner-writes.md).
- ``securityLabel``: one label per provision; the rows then apply to resources carrying it.
- ``period``: from/until; ``purpose``: the purpose of use a request must have.

Anything else that would change the meaning (``code``, ``dataPeriod``, deeper nesting,
CareTeam as actor, unknown codes) is refused with an explanation rather than ignored:
silently ignoring part of a Consent would grant more, or less, than the inwoner said.

Pure: no database, no web framework.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from vault.kernel.errors import Unprocessable
from vault.kernel.fhirdata import parse_date_range, split_reference
from vault.store.registry import RESOURCE_TYPES

__all__ = ["GRANTABLE_TYPES", "Grant", "compile_consent"]

RESOURCE_TYPES_SYSTEM = "http://hl7.org/fhir/resource-types"
CONSENT_SCOPE_SYSTEM = "http://terminology.hl7.org/CodeSystem/consentscope"
ACTIONS = frozenset({"access", "correct"})
GRANTEE_TYPES = frozenset({"Organization", "Practitioner", "RelatedPerson"})
# What a Consent can open up: the inwoner's plan and what surrounds it. AuditEvent (the
# access log) belongs to the inwoner alone; a partner sees only the Consents that name it
# (enforce.names_grantee), so one partner never learns what another was granted.
GRANTABLE_TYPES = frozenset(RESOURCE_TYPES) - {"AuditEvent", "Consent"}
MEANINGS = frozenset({"instance", "related"})


@dataclass(frozen=True, slots=True)
class Grant:
    """One compiled row: ``effect`` for ``grantee`` doing ``action`` on matching resources."""

    effect: str  # "permit" | "deny"
    grantee: str | None  # "Organization/x"; None on a deny = whoever the permit named
    action: str | None  # "access" | "correct"; None on a deny = every action
    resource_type: str  # a type, or "*"
    data_type: str | None = None
    data_id: str | None = None
    data_meaning: str | None = None
    label_system: str | None = None
    label_code: str | None = None
    purpose: str | None = None
    valid_from: int | None = None
    valid_until: int | None = None
    # The family compartment ``data`` names (set by ``consent/service.py``, which knows
    # where the named resource lives); None for the inwoner's own compartment.
    family_id: str | None = None


@dataclass(frozen=True, slots=True)
class _Scope:
    """The constraints in force at one provision (its own, narrowed by its ancestors)."""

    actors: tuple[str, ...] | None = None
    actions: tuple[str, ...] | None = None
    classes: tuple[str, ...] | None = None
    data: tuple[tuple[str, str, str], ...] | None = None
    label: tuple[str | None, str] | None = None
    purposes: tuple[str, ...] | None = None
    valid_from: int | None = None
    valid_until: int | None = None


def _fail(message: str, path: str) -> Unprocessable:
    return Unprocessable(message, expression=[path], code="not-supported")


def compile_consent(consent: Mapping[str, Any], *, patient_id: str) -> list[Grant]:
    """Rows for an active Consent; none for any other status. Raises Unprocessable."""
    scope_codes = {c.get("code") for c in (consent.get("scope") or {}).get("coding") or []}
    if "patient-privacy" not in scope_codes:
        raise _fail("Only Consents with scope patient-privacy are supported", "Consent.scope")
    patient = split_reference((consent.get("patient") or {}).get("reference"))
    if patient != ("Patient", patient_id):
        raise _fail("Consent.patient must be the inwoner the Consent belongs to", "Consent.patient")
    root = consent.get("provision")
    if not isinstance(root, dict):
        raise _fail("A Consent needs a provision that says who may see what", "Consent.provision")
    grants = _compile(root, _Scope(), "Consent.provision", depth=0)
    if consent.get("status") != "active":
        return []
    return grants


_KNOWN = {
    "type",
    "actor",
    "action",
    "class",
    "data",
    "securityLabel",
    "period",
    "purpose",
    "provision",
    "id",
    "extension",
    "modifierExtension",
}


def _compile(node: Mapping[str, Any], parent: _Scope, path: str, *, depth: int) -> list[Grant]:
    unknown = sorted(set(node) - _KNOWN)
    if unknown:
        raise _fail(f"{path}.{unknown[0]} is not supported by this vault", f"{path}.{unknown[0]}")
    if node.get("modifierExtension"):
        raise _fail(
            "modifierExtension on a provision is not supported", f"{path}.modifierExtension"
        )
    kind = node.get("type", "permit" if depth == 0 else None)
    if kind not in ("permit", "deny"):
        raise _fail(f"{path}.type must be permit or deny", f"{path}.type")
    scope = _narrow(parent, node, path)
    rows: list[Grant] = []
    if not (depth == 0 and kind == "deny"):
        rows.extend(_rows(kind, scope, path))
    children = node.get("provision") or []
    if children and depth >= 1:
        raise _fail(
            "Provisions nested more than one level deep are not supported", f"{path}.provision"
        )
    for index, child in enumerate(children):
        if not isinstance(child, dict):
            raise _fail("A provision must be an object", f"{path}.provision[{index}]")
        child_kind = child.get("type")
        if kind == "deny" and child_kind == "deny":
            continue  # a deny inside a deny changes nothing under deny by default
        rows.extend(_compile(child, scope, f"{path}.provision[{index}]", depth=depth + 1))
    return rows


def _codes(items: Iterable[Any], system: str | None, path: str) -> list[str]:
    codes = []
    for item in items:
        codings = item.get("coding") if isinstance(item, dict) and "coding" in item else [item]
        for coding in codings or []:
            if not isinstance(coding, dict) or not coding.get("code"):
                raise _fail(f"{path} needs a code", path)
            if system is not None and coding.get("system") not in (None, system):
                raise _fail(f"{path}: system must be {system}", path)
            codes.append(str(coding["code"]))
    return codes


def _intersect(
    parent: tuple[str, ...] | None, own: list[str] | None, path: str
) -> tuple[str, ...] | None:
    if own is None:
        return parent
    if parent is None:
        return tuple(dict.fromkeys(own))
    narrowed = tuple(x for x in dict.fromkeys(own) if x in parent)
    if not narrowed:
        raise _fail(f"{path} names nothing its parent provision covers", path)
    return narrowed


def _narrow(parent: _Scope, node: Mapping[str, Any], path: str) -> _Scope:
    # Long on purpose: one Consent provision's elements, each narrowing the scope of its parent in
    # turn.
    scope = parent
    if "actor" in node:
        actors = []
        for index, actor in enumerate(node["actor"]):
            ref = split_reference(((actor or {}).get("reference") or {}).get("reference"))
            where = f"{path}.actor[{index}].reference"
            if ref is None or ref[0] not in GRANTEE_TYPES:
                raise _fail(
                    "An actor must be an Organization, Practitioner or RelatedPerson "
                    "(name the members of a team one by one)",
                    where,
                )
            actors.append(f"{ref[0]}/{ref[1]}")
        scope = replace(scope, actors=_intersect(parent.actors, actors, f"{path}.actor"))
    if "action" in node:
        actions = _codes(node["action"], None, f"{path}.action")
        bad = sorted(set(actions) - ACTIONS)
        if bad:
            raise _fail(
                f"Action '{bad[0]}' is not supported; use access or correct", f"{path}.action"
            )
        scope = replace(scope, actions=_intersect(parent.actions, actions, f"{path}.action"))
    if "class" in node:
        classes = _codes(node["class"], RESOURCE_TYPES_SYSTEM, f"{path}.class")
        bad = sorted(set(classes) - GRANTABLE_TYPES)
        if bad:
            raise _fail(f"'{bad[0]}' cannot be shared through a Consent", f"{path}.class")
        scope = replace(scope, classes=_intersect(parent.classes, classes, f"{path}.class"))
    if "data" in node:
        data = []
        for index, item in enumerate(node["data"]):
            where = f"{path}.data[{index}]"
            meaning = (item or {}).get("meaning")
            if meaning not in MEANINGS:
                raise _fail("data.meaning must be instance or related", f"{where}.meaning")
            ref = split_reference(((item or {}).get("reference") or {}).get("reference"))
            if ref is None or ref[0] not in GRANTABLE_TYPES:
                raise _fail(
                    "data.reference must point at a resource of the inwoner's plan",
                    f"{where}.reference",
                )
            data.append((ref[0], ref[1], str(meaning)))
        if parent.data is not None:
            raise _fail("data on both a provision and its parent is not supported", f"{path}.data")
        scope = replace(scope, data=tuple(data))
    if "securityLabel" in node:
        labels = node["securityLabel"]
        if len(labels) != 1 or not isinstance(labels[0], dict) or not labels[0].get("code"):
            raise _fail("A provision may name exactly one security label", f"{path}.securityLabel")
        if parent.label is not None:
            raise _fail(
                "securityLabel on both a provision and its parent is not supported",
                f"{path}.securityLabel",
            )
        scope = replace(scope, label=(labels[0].get("system"), str(labels[0]["code"])))
    if "purpose" in node:
        purposes = _codes(node["purpose"], None, f"{path}.purpose")
        scope = replace(scope, purposes=_intersect(parent.purposes, purposes, f"{path}.purpose"))
    if "period" in node:
        period = node["period"] or {}
        try:
            start = parse_date_range(period["start"])[0] if period.get("start") else None
            end = parse_date_range(period["end"])[1] if period.get("end") else None
        except ValueError:
            raise _fail("period has a date that is not valid", f"{path}.period") from None
        if start is not None and end is not None and end <= start:
            raise _fail("period ends before it starts", f"{path}.period")
        scope = replace(
            scope,
            valid_from=max(x for x in (start, parent.valid_from) if x is not None)
            if start is not None or parent.valid_from is not None
            else None,
            valid_until=min(x for x in (end, parent.valid_until) if x is not None)
            if end is not None or parent.valid_until is not None
            else None,
        )
    return scope


def _rows(kind: str, scope: _Scope, path: str) -> list[Grant]:
    if kind == "permit":
        if scope.actors is None:
            raise _fail("A permit must say who it is for (provision.actor)", f"{path}.actor")
        if scope.actions is None:
            raise _fail(
                "A permit must say what they may do (provision.action: access or correct)",
                f"{path}.action",
            )
    actors: Iterable[str | None] = scope.actors or [None]
    actions: Iterable[str | None] = scope.actions or [None]
    classes: Iterable[str] = scope.classes or ["*"]
    data: Iterable[tuple[str, str, str] | None] = scope.data or [None]
    purposes: Iterable[str | None] = scope.purposes or [None]
    label_system, label_code = scope.label if scope.label else (None, None)
    return [
        Grant(
            effect=kind,
            grantee=actor,
            action=action,
            resource_type=cls,
            data_type=item[0] if item else None,
            data_id=item[1] if item else None,
            data_meaning=item[2] if item else None,
            label_system=label_system,
            label_code=label_code,
            purpose=purpose,
            valid_from=scope.valid_from,
            valid_until=scope.valid_until,
        )
        for actor, action, cls, item, purpose in itertools.product(
            actors, actions, classes, data, purposes
        )
    ]
