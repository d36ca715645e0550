"""The CapabilityStatement (https://hl7.org/fhir/R4/capabilitystatement.html).

Generated from ``RESOURCE_TYPES``, the registry the router and the repository work from,
so the statement cannot claim an interaction, a type or a search parameter the server
does not have.
"""

from __future__ import annotations

from typing import Any

from vault import __version__
from vault.fhir.resources import FHIR_VERSION, RESOURCE_TYPES, ResourceType

__all__ = ["capability_statement", "interactions"]

READ_INTERACTIONS = ("read", "vread", "search-type", "history-instance", "history-type")
WRITE_INTERACTIONS = ("create", "update", "delete")
COMMON_PARAMS = (
    ("_id", "token", "Logical id of the resource"),
    ("_lastUpdated", "date", "When the resource version last changed"),
)


def interactions(spec: ResourceType) -> tuple[str, ...]:
    return READ_INTERACTIONS + (WRITE_INTERACTIONS if spec.writable else ())


def _resource(spec: ResourceType) -> dict[str, Any]:
    params = [{"name": n, "type": t, "documentation": d} for n, t, d in COMMON_PARAMS]
    params += [
        {
            "name": p.name,
            "type": p.type,
            "definition": f"http://hl7.org/fhir/SearchParameter/{spec.name}-{p.name}",
            "documentation": p.expression,
        }
        for p in spec.params
    ]
    includes = [f"{spec.name}:{p.name}" for p in spec.params if p.type == "reference"]
    revincludes = [
        f"{other.name}:{p.name}"
        for other in RESOURCE_TYPES.values()
        for p in other.params
        if p.type == "reference" and spec.name in p.targets
    ]
    entry: dict[str, Any] = {
        "type": spec.name,
        "documentation": spec.description,
        "interaction": [{"code": code} for code in interactions(spec)],
        "versioning": "versioned-update",
        "readHistory": True,
        "updateCreate": spec.writable,
        "conditionalCreate": spec.writable,
        "conditionalRead": "not-supported",
        "conditionalUpdate": False,
        "conditionalDelete": "not-supported",
        "searchInclude": includes,
        "searchRevInclude": revincludes,
        "searchParam": params,
    }
    return entry


def capability_statement(
    *, base: str, software_date: str, security: dict[str, Any] | None = None
) -> dict[str, Any]:
    rest: dict[str, Any] = {
        "mode": "server",
        "documentation": "Deny by default: every request needs a bearer token issued by "
        "this vault, and sees only what the inwoner granted.",
        "resource": [_resource(spec) for spec in RESOURCE_TYPES.values()],
    }
    if security is not None:
        rest["security"] = security
    return {
        "resourceType": "CapabilityStatement",
        "status": "active",
        "date": software_date,
        "publisher": "Regiekluis",
        "kind": "instance",
        "software": {"name": "Regiekluis", "version": __version__},
        "implementation": {"description": "Regiekluis personal data vault", "url": base},
        "fhirVersion": FHIR_VERSION,
        "format": ["application/fhir+json", "json"],
        "rest": [rest],
    }
