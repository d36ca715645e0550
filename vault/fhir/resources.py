"""Validation of the resource types the vault stores, and their elements.

The only module that imports ``fhir.resources`` (its R4B models; the types used here are the
same in R4 and R4B). The registry of types and search parameters is plain data in
``vault/store/registry.py``; this module joins each type to its model by name.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from typing import Any

from fhir.resources.R4B.auditevent import AuditEvent
from fhir.resources.R4B.careplan import CarePlan
from fhir.resources.R4B.careteam import CareTeam
from fhir.resources.R4B.consent import Consent
from fhir.resources.R4B.goal import Goal
from fhir.resources.R4B.group import Group
from fhir.resources.R4B.observation import Observation
from fhir.resources.R4B.organization import Organization
from fhir.resources.R4B.patient import Patient
from fhir.resources.R4B.practitioner import Practitioner
from fhir.resources.R4B.provenance import Provenance
from fhir.resources.R4B.relatedperson import RelatedPerson
from fhir.resources.R4B.subscription import Subscription
from pydantic import ValidationError

from vault.fhir.narrative import check_narratives
from vault.kernel.errors import BadRequest
from vault.store.registry import ResourceType

__all__ = [
    "FHIR_VERSION",
    "ID_PATTERN",
    "ElementNames",
    "element_names",
    "validate_resource",
]

FHIR_VERSION = "4.0.1"
ID_PATTERN = re.compile(r"^[A-Za-z0-9\-.]{1,64}$")


# The R4B model that validates each type of the registry (``vault/store/registry.py``).
_MODELS: dict[str, Any] = {
    "Patient": Patient,
    "CarePlan": CarePlan,
    "Goal": Goal,
    "CareTeam": CareTeam,
    "RelatedPerson": RelatedPerson,
    "Organization": Organization,
    "Practitioner": Practitioner,
    "Consent": Consent,
    "Observation": Observation,
    "Provenance": Provenance,
    "AuditEvent": AuditEvent,
    "Group": Group,
    "Subscription": Subscription,
}


def validate_resource(spec: ResourceType, data: dict[str, Any]) -> None:
    """Check ``data`` against the R4B model; name every element that is wrong."""
    try:
        _MODELS[spec.name].model_validate(data)
    except ValidationError as exc:
        problems = []
        expressions = []
        for error in exc.errors()[:10]:
            path = ".".join([spec.name, *(str(part) for part in error["loc"])])
            path = re.sub(r"\.(\d+)(?=\.|$)", r"[\1]", path)
            expressions.append(path)
            problems.append(f"{path}: {_describe(error)}")
        raise BadRequest(
            "The resource is not valid FHIR R4: " + "; ".join(problems),
            expression=expressions,
            code="structure",
        ) from None
    for element, allowed in spec.required_codes.items():
        value = data.get(element)
        if value is None:
            raise BadRequest(
                f"{spec.name}.{element} is required",
                expression=[f"{spec.name}.{element}"],
                code="required",
            )
        if value not in allowed:
            raise BadRequest(
                f"{spec.name}.{element}: '{value}' is not one of " + ", ".join(sorted(allowed)),
                expression=[f"{spec.name}.{element}"],
                code="code-invalid",
            )
    # Narrative XHTML is shown to people: only what FHIR R4 allows (issue 12 B9).
    check_narratives(spec.name, data)


def _describe(error: Any) -> str:
    kind = error.get("type", "")
    if kind == "missing":
        return "is required"
    if kind == "extra_forbidden":
        return "is not an element of this resource"
    message = str(error.get("msg", "is invalid"))
    # Pydantic messages may echo the input back; keep only the first clause, no values.
    return message.split(" [", 1)[0].removeprefix("Value error, ")


# -- element names, for _summary and _elements (R4 search.html, sections 3.1.1.5.8-9) ------


@dataclass(frozen=True, slots=True)
class ElementNames:
    """A type's top-level elements as the base definition flags them.

    ``base`` maps each JSON member name (``valueQuantity``, ``_status``) to the element it
    belongs to (``value``, ``status``); ``summary`` and ``mandatory`` hold element names
    (isSummary, and min >= 1).
    """

    base: dict[str, str]
    summary: frozenset[str]
    mandatory: frozenset[str]


@functools.cache
def element_names(name: str) -> ElementNames:
    """The element flags of a stored type, read from its R4B model once."""
    model = _MODELS[name]
    base: dict[str, str] = {}
    summary: set[str] = set()
    mandatory: set[str] = set()
    for field_name, info in model.model_fields.items():
        extra = info.json_schema_extra if isinstance(info.json_schema_extra, dict) else {}
        json_name = info.alias or field_name
        if field_name.endswith("__ext"):
            # The primitive's extension member (``_status``) goes with the primitive.
            base[json_name] = base.get(json_name[1:], json_name[1:])
            continue
        if not extra.get("element_property"):
            continue
        element = str(extra.get("one_of_many") or json_name)
        base[json_name] = element
        if extra.get("summary_element_property"):
            summary.add(element)
        if extra.get("element_required") or info.is_required():
            mandatory.add(element)
    for json_name in list(base):
        if json_name.startswith("_") and json_name[1:] in base:
            base[json_name] = base[json_name[1:]]
    return ElementNames(base=base, summary=frozenset(summary), mandatory=frozenset(mandatory))
