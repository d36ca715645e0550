"""``_summary`` and ``_elements``: a part of each resource, marked SUBSETTED.

FHIR R4 search, sections 3.1.1.5.8 (``_summary``) and 3.1.1.5.9 (``_elements``)
(https://hl7.org/fhir/R4/search.html#summary), on read and on search:

- ``_summary=true``: the elements the base definition marks isSummary;
- ``_summary=text``: ``text``, ``id``, ``meta`` and the mandatory top-level elements;
- ``_summary=data``: everything except ``text``;
- ``_summary=count``: search only, no resources (``fhir/search.py``);
- ``_summary=false``: the whole resource;
- ``_elements=a,b``: those top-level elements of the matched resources (not of included
  ones), plus the mandatory elements, which servers "SHOULD always return".

Modifier elements are never left out (``modifierExtension``, ``implicitRules``): a reader
that misses one could misread the rest. Every subset carries the meta.tag SUBSETTED
(http://terminology.hl7.org/CodeSystem/v3-ObservationValue), so nobody writes it back as
if it were the whole resource (R4 resource.html, section 6.1.0.7 "Tags").
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal

import orjson

from vault.fhir.resources import element_names
from vault.kernel.errors import BadRequest

__all__ = ["SUBSETTED", "Subset", "from_params", "parse_elements", "parse_summary"]

OBSERVATION_VALUE = "http://terminology.hl7.org/CodeSystem/v3-ObservationValue"
SUBSETTED = {"system": OBSERVATION_VALUE, "code": "SUBSETTED", "display": "subsetted"}
# Elements a subset keeps whatever was asked: identity, and the modifiers.
_ALWAYS = frozenset({"id", "meta", "implicitRules", "modifierExtension"})
# Read has no count: a count is an answer about a search.
SummaryMode = Literal["true", "text", "data", "count", "false"]
_MODES: tuple[SummaryMode, ...] = ("true", "text", "data", "count", "false")


@dataclass(frozen=True, slots=True)
class Subset:
    """Which part of a resource to return: a ``_summary`` mode or an ``_elements`` list."""

    summary: SummaryMode | None = None
    elements: frozenset[str] | None = None

    @property
    def active(self) -> bool:
        """True when a resource is cut down (``false`` and ``count`` cut nothing)."""
        return self.elements is not None or self.summary in ("true", "text", "data")

    def combined(self, *, summary: str | None, elements: str | None, type_name: str) -> Subset:
        """This subset with one more parameter; both together are refused."""
        result = Subset(
            summary=parse_summary(summary) if summary is not None else self.summary,
            elements=parse_elements(elements, type_name=type_name)
            if elements is not None
            else self.elements,
        )
        if result.elements is not None and result.summary not in (None, "false"):
            raise BadRequest(
                "Use _summary or _elements, not both", expression=["_summary", "_elements"]
            )
        return result

    def apply(self, resource: dict[str, Any], *, included: bool = False) -> dict[str, Any]:
        """The part of ``resource`` to return (``resource`` itself when nothing is cut)."""
        if not self.active or (included and self.elements is not None):
            return resource
        names = element_names(str(resource.get("resourceType", "")))
        if self.elements is not None:
            keep = self.elements | names.mandatory | _ALWAYS
        elif self.summary == "true":
            keep = names.summary | names.mandatory | _ALWAYS
        elif self.summary == "text":
            keep = names.mandatory | _ALWAYS | {"text"}
        else:  # data
            keep = frozenset(names.base.values()) - {"text"}
        result = {
            key: value
            for key, value in resource.items()
            if key == "resourceType" or names.base.get(key, key) in keep
        }
        meta = dict(result.get("meta") or {})
        tags = [t for t in meta.get("tag", []) if t.get("code") != "SUBSETTED"]
        meta["tag"] = [*tags, SUBSETTED]
        result["meta"] = meta
        return result

    def apply_bytes(self, body: bytes, *, included: bool = False) -> bytes:
        """:meth:`apply` on stored JSON; the stored bytes as they are when nothing is cut."""
        if not self.active or (included and self.elements is not None):
            return body
        return orjson.dumps(self.apply(orjson.loads(body), included=included))


def parse_summary(value: str) -> SummaryMode:
    for mode in _MODES:
        if value == mode:
            return mode
    raise BadRequest("_summary must be true, text, data, count or false", expression=["_summary"])


def parse_elements(value: str, *, type_name: str) -> frozenset[str]:
    """The element names of ``_elements``: top-level elements of ``type_name`` only."""
    names = [n.strip() for n in value.split(",") if n.strip()]
    # resourceType is no element, but clients name it (fhirpy's ``.elements()`` always does).
    known = set(element_names(type_name).base.values()) | {"resourceType"}
    unknown = [n for n in names if n not in known]
    if not names or unknown:
        raise BadRequest(
            f"_elements names no element of {type_name}: " + ", ".join(unknown[:5] or ["(empty)"]),
            expression=["_elements"],
        )
    return frozenset(names)


def from_params(params: Iterable[tuple[str, str]], *, type_name: str) -> Subset:
    """The subset a read asks for; ``_summary=count`` is a search's question, not a read's."""
    subset = Subset()
    for name, value in params:
        if name == "_summary":
            subset = subset.combined(summary=value, elements=None, type_name=type_name)
        elif name == "_elements":
            subset = subset.combined(summary=None, elements=value, type_name=type_name)
    if subset.summary == "count":
        raise BadRequest("_summary=count is for searches, not reads", expression=["_summary"])
    return subset
