"""SMART on FHIR scopes: parse, narrow to what a client may have, and read as permissions.

Implements the scope grammar of SMART App Launch 2.x, section "Scopes and Launch Context"
(https://hl7.org/fhir/smart-app-launch/scopes-and-launch-context.html):

    <context>/<resource type or *>.<permissions>[?<search parameters>]

with context ``patient``, ``user`` or ``system``; SMART v2 permissions are a subset of
``cruds`` in that order, SMART v1 permissions ``read`` (= ``rs``) and ``write`` (= ``cud``).
Non-resource scopes: ``openid``, ``fhirUser``, ``launch/patient``, ``offline_access``,
``online_access``.

No web framework and no database here: this module is pure and easy to test.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import parse_qsl

from vault.consent.access import Permissions
from vault.store.registry import RESULT_PARAMETERS

__all__ = [
    "IDENTITY_SCOPES",
    "InvalidScope",
    "ResourceScope",
    "grant_scopes",
    "parse_scope",
    "permissions_from",
]

IDENTITY_SCOPES = frozenset(
    {"openid", "fhirUser", "launch/patient", "offline_access", "online_access"}
)
V2_ORDER = "cruds"
_RESOURCE_SCOPE = re.compile(
    r"^(?P<context>patient|user|system)/(?P<type>\*|[A-Z][A-Za-z]+)\."
    r"(?P<perm>read|write|\*|c?r?u?d?s?)(?:\?(?P<query>.+))?$"
)


class InvalidScope(ValueError):
    """A scope string that is not SMART grammar, or names what this server lacks."""


@dataclass(frozen=True, slots=True)
class ResourceScope:
    context: str  # "patient" | "user" | "system"
    resource_type: str  # a type name or "*"
    permissions: frozenset[str]  # letters of "cruds"
    query: tuple[tuple[str, str], ...] = ()
    text: str = ""

    def covers(self, other: ResourceScope) -> bool:
        """True when this scope allows everything ``other`` asks for."""
        return (
            self.context == other.context
            and self.resource_type in ("*", other.resource_type)
            and other.permissions <= self.permissions
            and (not self.query or self.query == other.query)
        )


def parse_scope(text: str, *, known_types: Iterable[str]) -> ResourceScope | str:
    """One scope: a ResourceScope, or the string itself for an identity scope."""
    if text in IDENTITY_SCOPES:
        return text
    match = _RESOURCE_SCOPE.match(text)
    if match is None:
        raise InvalidScope(f"'{text[:80]}' is not a SMART scope this server supports")
    resource_type = match["type"]
    if resource_type != "*" and resource_type not in set(known_types):
        raise InvalidScope(f"'{text[:80]}' names a resource type this server does not hold")
    perm = match["perm"]
    if perm == "read":
        letters = frozenset("rs")
    elif perm == "write":
        letters = frozenset("cud")
    elif perm == "*":
        letters = frozenset(V2_ORDER)
    else:
        if not perm:
            raise InvalidScope(f"'{text[:80]}' grants no permissions")
        letters = frozenset(perm)
    query: tuple[tuple[str, str], ...] = ()
    if match["query"]:
        if resource_type == "*":
            raise InvalidScope("a scope with a search query must name one resource type")
        query = tuple(sorted(parse_qsl(match["query"], keep_blank_values=False)))
        if not query:
            raise InvalidScope(f"'{text[:80]}' has an empty query")
        # A result parameter narrows nothing: the scope would read as a restriction and
        # let every resource of the type through (found by mutation testing, issue 16).
        shaping = sorted({name for name, _ in query if name.split(":")[0] in RESULT_PARAMETERS})
        if shaping:
            raise InvalidScope(
                f"'{text[:80]}' restricts by {', '.join(shaping)}: "
                "a scope's query takes search parameters only"
            )
    return ResourceScope(match["context"], resource_type, letters, query, text)


def _parse_all(scopes: Iterable[str], known_types: Iterable[str]) -> list[ResourceScope | str]:
    """Scopes granted or registered before: one that no longer parses (a rule tightened
    since, as no result parameter in a query) grants nothing now; the others still count."""
    known = tuple(known_types)
    parsed: list[ResourceScope | str] = []
    for text in scopes:
        try:
            parsed.append(parse_scope(text, known_types=known))
        except InvalidScope:
            continue  # deny by default
    return parsed


def grant_scopes(
    requested: Iterable[str], registered: Iterable[str], *, known_types: Iterable[str]
) -> list[str]:
    """The requested scopes a client may have: each must be covered by a registered one.

    A token is never wider than the client's registration. A requested scope that is not
    covered raises ``InvalidScope`` rather than being dropped silently, so that the client
    learns at once why it will not get what it asked for.
    """
    known = tuple(known_types)
    allowed = _parse_all(registered, known)
    granted: list[str] = []
    for text in requested:
        if not text or text in granted:
            continue
        scope = parse_scope(text, known_types=known)
        if isinstance(scope, str):
            ok = scope in allowed
        else:
            ok = any(isinstance(a, ResourceScope) and a.covers(scope) for a in allowed)
        if not ok:
            raise InvalidScope(f"'{text[:80]}' is wider than this client's registration")
        granted.append(text)
    return granted


def permissions_from(
    scopes: Iterable[str], *, context: str, known_types: Iterable[str]
) -> Permissions:
    """Fold the resource scopes of one context (``patient`` or ``system``) together."""
    letters: dict[str, set[str]] = {}
    unrestricted: set[tuple[str, str]] = set()
    queries: dict[str, list[tuple[tuple[str, str], ...]]] = {}
    for scope in _parse_all(scopes, known_types):
        if isinstance(scope, str) or scope.context != context:
            continue
        letters.setdefault(scope.resource_type, set()).update(scope.permissions)
        if scope.permissions & {"r", "s"}:
            if scope.query:
                found = queries.setdefault(scope.resource_type, [])
                if scope.query not in found:
                    found.append(scope.query)
            else:
                unrestricted.add((scope.resource_type, "r"))
    # A type read through an unrestricted scope needs no query filter, whatever else says.
    final_queries = {
        t: tuple(qs)
        for t, qs in queries.items()
        if (t, "r") not in unrestricted and ("*", "r") not in unrestricted
    }
    return Permissions({t: frozenset(ls) for t, ls in letters.items()}, final_queries)
