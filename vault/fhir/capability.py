"""The CapabilityStatement (https://hl7.org/fhir/R4/capabilitystatement.html).

Generated from ``RESOURCE_TYPES``, the registry the router and the repository work from,
so the statement cannot claim an interaction, a type or a search parameter the server
does not have.

``rest.security`` follows SMART App Launch 2.x, section "Conformance"
(https://hl7.org/fhir/smart-app-launch/conformance.html): the service is SMART-on-FHIR and
the OAuth endpoints ride in the ``oauth-uris`` extension. The same endpoints are in
``/.well-known/smart-configuration``, which SMART clients read first.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from vault import __version__
from vault.fhir.resources import FHIR_VERSION
from vault.fhir.search import MAX_ALTERNATIVES, MAX_INCLUDES, MAX_PARAMETERS, MAX_VALUES
from vault.store.registry import RESOURCE_TYPES, ResourceType

__all__ = ["SecurityFor", "capability_statement", "interactions"]

# ``rest.security`` for the FHIR base URL of one request (the endpoints depend on the address
# the client used, unless a public URL is configured).
SecurityFor = Callable[[str], Mapping[str, Any]]

READ_INTERACTIONS = ("read", "vread", "search-type", "history-instance", "history-type")
WRITE_INTERACTIONS = ("create", "update", "delete")
# Bulk Data Access 2.0 (fhir/export.py); Group-level export is not offered.
BULK_DATA = "http://hl7.org/fhir/uv/bulkdata/CapabilityStatement/bulk-data"
BULK_EXPORT = "http://hl7.org/fhir/uv/bulkdata/OperationDefinition/export"
BULK_PATIENT_EXPORT = "http://hl7.org/fhir/uv/bulkdata/OperationDefinition/patient-export"
COMMON_PARAMS = (
    ("_id", "token", "Logical id of the resource"),
    ("_lastUpdated", "date", "When the resource version last changed"),
)


# Issue 12 B8: what one search may ask; more answers 400 (too-costly), naming the limit.
SEARCH_LIMITS = (
    f"A search takes at most {MAX_PARAMETERS} parameters, {MAX_ALTERNATIVES} comma-separated "
    f"values per parameter (also _id), {MAX_VALUES} values in all, and {MAX_INCLUDES} "
    "_include/_revinclude together; a larger search is refused with 400 (too-costly)."
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
    if spec.name == "Patient":
        entry["operation"] = [
            {"name": "export", "definition": BULK_PATIENT_EXPORT},
            {
                "name": "everything",
                "definition": "http://hl7.org/fhir/OperationDefinition/Patient-everything",
            },
        ]
    return entry


def capability_statement(
    *,
    base: str,
    software_date: str,
    security: Mapping[str, Any] | SecurityFor | None = None,
    more_resources: Sequence[Mapping[str, Any]] = (),
) -> dict[str, Any]:
    """The statement; ``more_resources``: what the layers above add to ``rest.resource``
    (their Subscription and Measure entries, registered by the app)."""
    if callable(security):
        security = security(base)
    rest: dict[str, Any] = {
        "mode": "server",
        "documentation": "Deny by default: every request needs a bearer token issued by "
        "this vault, and sees only what the inwoner granted. " + SEARCH_LIMITS + " "
        "Read and search take _summary (true, text, data, false; count on search) and "
        "_elements; a part of a resource is tagged SUBSETTED. A parameter this server does "
        "not know is refused with 400 (strict handling, the default); with the header "
        "Prefer: handling=lenient it is ignored, and a search names it in a warning "
        "OperationOutcome entry. "
        "Update-as-create (PUT to a new id) is for the operator only: an inwoner's app "
        "creates with POST, and its PUT to an id it cannot see answers 404, whether or not "
        "the id is in use.",
        "resource": [_resource(spec) for spec in RESOURCE_TYPES.values()]
        + [dict(entry) for entry in more_resources],
        "operation": [{"name": "export", "definition": BULK_EXPORT}],
    }
    if security is not None:
        rest["security"] = dict(security)
    return {
        "resourceType": "CapabilityStatement",
        "status": "active",
        "date": software_date,
        "publisher": "Regiekluis",
        "kind": "instance",
        "instantiates": [BULK_DATA],
        "software": {"name": "Regiekluis", "version": __version__},
        "implementation": {"description": "Regiekluis personal data vault", "url": base},
        "fhirVersion": FHIR_VERSION,
        "format": ["application/fhir+json", "json"],
        "rest": [rest],
    }
