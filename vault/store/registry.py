"""The resource types the vault stores and their search parameters: the registry.

The single source of truth: the FHIR router routes from it, the store indexes from it and
the CapabilityStatement is generated from it, so the server can never claim what it does
not do. It is plain data (no FHIR models): the R4B models that validate a resource are
joined to it by name in ``vault/fhir/resources.py``, the only module that imports
``fhir.resources``.

Search parameter names and expressions follow the FHIR R4 search parameter registry
(https://hl7.org/fhir/R4/searchparameter-registry.html).

Over 500 lines: it is one table, the stored types and their search parameters.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from vault.kernel.errors import NotFound
from vault.kernel.fhirdata import MAX_MICROS, MIN_MICROS, parse_date_range, split_reference

__all__ = [
    "FAMILY_TYPES",
    "RESOURCE_TYPES",
    "RESULT_PARAMETERS",
    "SCOPE_TYPES",
    "SHARED_TYPES",
    "SUBSCRIPTION",
    "ParamType",
    "ResourceType",
    "SearchParam",
    "TokenValue",
    "resource_type",
]

ParamType = Literal["token", "reference", "date"]


@dataclass(frozen=True, slots=True)
class TokenValue:
    system: str | None
    code: str


@dataclass(frozen=True, slots=True)
class SearchParam:
    name: str
    type: ParamType
    expression: str  # FHIRPath as in the R4 registry, shown in the CapabilityStatement
    extract: Callable[[dict[str, Any]], Iterator[Any]]
    targets: tuple[str, ...] = ()  # reference parameters: the types they may point at
    # True when the parameter names the Patient compartment: it is answered from the
    # patient id every row carries, which the write path derived from this same element.
    compartment: bool = False
    # True when the parameter has one value at most (R4 cardinality 0..1) and is kept in
    # its resource's one row of such values (``store.models.SearchAuditEvent``; AuditEvent
    # only, the access log's record) instead of a row of its own.
    single: bool = False


@dataclass(frozen=True, slots=True)
class ResourceType:
    name: str
    # Where the compartment's Patient reference sits; "self" for Patient; None when the
    # type belongs to no compartment (Organization, Practitioner).
    compartment: str | None
    params: tuple[SearchParam, ...]
    writable: bool = True  # AuditEvent is written by the vault only
    required_codes: dict[str, frozenset[str]] = field(default_factory=dict)
    description: str = ""

    @property
    def params_by_name(self) -> dict[str, SearchParam]:
        return {p.name: p for p in self.params}


# -- extraction helpers: walk a JSON path over dicts and lists ---------------------------


def _walk(node: Any, path: str) -> Iterator[Any]:
    if not path:
        if isinstance(node, list):
            yield from node
        elif node is not None:
            yield node
        return
    head, _, rest = path.partition(".")
    items = node if isinstance(node, list) else [node]
    for item in items:
        if isinstance(item, dict) and head in item:
            yield from _walk(item[head], rest)


def _tokens(*paths: str) -> Callable[[dict[str, Any]], Iterator[Any]]:
    def extract(resource: dict[str, Any]) -> Iterator[TokenValue]:
        for path in paths:
            for value in _walk(resource, path):
                yield from _as_tokens(value)

    return extract


def _as_tokens(value: Any) -> Iterator[TokenValue]:
    if isinstance(value, bool):
        yield TokenValue(None, "true" if value else "false")
    elif isinstance(value, str):
        yield TokenValue(None, value)
    elif isinstance(value, dict):
        if "coding" in value:  # CodeableConcept
            for coding in value.get("coding") or []:
                yield from _as_tokens(coding)
        elif "code" in value:  # Coding
            yield TokenValue(value.get("system"), str(value["code"]))
        elif "value" in value:  # Identifier
            yield TokenValue(value.get("system"), str(value["value"]))


def _references(*paths: str, only: str | None = None) -> Callable[[dict[str, Any]], Iterator[Any]]:
    def extract(resource: dict[str, Any]) -> Iterator[tuple[str, str]]:
        for path in paths:
            for value in _walk(resource, path):
                if isinstance(value, dict):
                    parsed = split_reference(value.get("reference"))
                    if parsed is not None and (only is None or parsed[0] == only):
                        yield parsed

    return extract


def _dates(*paths: str) -> Callable[[dict[str, Any]], Iterator[Any]]:
    def extract(resource: dict[str, Any]) -> Iterator[tuple[int, int]]:
        for path in paths:
            for value in _walk(resource, path):
                if isinstance(value, str):
                    yield parse_date_range(value)
                elif isinstance(value, dict) and ("start" in value or "end" in value):
                    low = parse_date_range(value["start"])[0] if "start" in value else MIN_MICROS
                    high = parse_date_range(value["end"])[1] if "end" in value else MAX_MICROS
                    yield (low, high)

    return extract


# -- the registry ------------------------------------------------------------------------

_ALL_TYPES = (
    "Patient",
    "CarePlan",
    "Goal",
    "CareTeam",
    "RelatedPerson",
    "Organization",
    "Practitioner",
    "Consent",
    "Observation",
    "Provenance",
    "AuditEvent",
    "Group",
)
_PERSON_TARGETS = ("Patient", "Practitioner", "Organization", "RelatedPerson", "CareTeam")


def _patient_param(path: str) -> SearchParam:
    return SearchParam(
        "patient",
        "reference",
        path,
        _references(path.split(".", 1)[1]),
        ("Patient",),
        compartment=True,
    )


def _identifier() -> SearchParam:
    return SearchParam("identifier", "token", "identifier", _tokens("identifier"))


def _status(element: str = "status") -> SearchParam:
    return SearchParam("status", "token", element, _tokens(element))


_REQUEST_STATUS = frozenset(
    {"draft", "active", "on-hold", "revoked", "completed", "entered-in-error", "unknown"}
)

_DECLARED: dict[str, ResourceType] = {
    t.name: t
    for t in (
        ResourceType(
            "Patient",
            "self",
            (
                _identifier(),
                SearchParam("active", "token", "Patient.active", _tokens("active")),
            ),
            description="The inwoner who owns the vault compartment.",
        ),
        ResourceType(
            "CarePlan",
            "subject",
            (
                _patient_param("CarePlan.subject"),
                SearchParam(
                    "subject",
                    "reference",
                    "CarePlan.subject",
                    _references("subject"),
                    ("Patient", "Group"),
                    compartment=True,
                ),
                _status(),
                SearchParam("intent", "token", "CarePlan.intent", _tokens("intent")),
                SearchParam("category", "token", "CarePlan.category", _tokens("category")),
                SearchParam("date", "date", "CarePlan.period", _dates("period")),
                SearchParam(
                    "care-team",
                    "reference",
                    "CarePlan.careTeam",
                    _references("careTeam"),
                    ("CareTeam",),
                ),
                SearchParam(
                    "careteam",
                    "reference",
                    "CarePlan.careTeam",
                    _references("careTeam"),
                    ("CareTeam",),
                ),
                SearchParam("goal", "reference", "CarePlan.goal", _references("goal"), ("Goal",)),
                SearchParam(
                    "performer",
                    "reference",
                    "CarePlan.activity.detail.performer",
                    _references("activity.detail.performer"),
                    _PERSON_TARGETS,
                ),
                _identifier(),
            ),
            required_codes={
                "status": _REQUEST_STATUS,
                "intent": frozenset({"proposal", "plan", "order", "option"}),
            },
            description="The inwoner's plan: what I want, what I can do, what I need.",
        ),
        ResourceType(
            "Goal",
            "subject",
            (
                _patient_param("Goal.subject"),
                SearchParam(
                    "subject",
                    "reference",
                    "Goal.subject",
                    _references("subject"),
                    ("Patient", "Group"),
                    compartment=True,
                ),
                SearchParam(
                    "lifecycle-status", "token", "Goal.lifecycleStatus", _tokens("lifecycleStatus")
                ),
                SearchParam(
                    "achievement-status",
                    "token",
                    "Goal.achievementStatus",
                    _tokens("achievementStatus"),
                ),
                SearchParam("category", "token", "Goal.category", _tokens("category")),
                SearchParam("start-date", "date", "Goal.startDate", _dates("startDate")),
                SearchParam("target-date", "date", "Goal.target.dueDate", _dates("target.dueDate")),
                _identifier(),
            ),
            required_codes={
                "lifecycleStatus": frozenset(
                    {
                        "proposed",
                        "planned",
                        "accepted",
                        "active",
                        "on-hold",
                        "completed",
                        "cancelled",
                        "entered-in-error",
                        "rejected",
                    }
                )
            },
            description="What the inwoner wants, in their own words.",
        ),
        ResourceType(
            "CareTeam",
            "subject",
            (
                _patient_param("CareTeam.subject"),
                SearchParam(
                    "subject",
                    "reference",
                    "CareTeam.subject",
                    _references("subject"),
                    ("Patient", "Group"),
                    compartment=True,
                ),
                _status(),
                SearchParam("category", "token", "CareTeam.category", _tokens("category")),
                SearchParam("date", "date", "CareTeam.period", _dates("period")),
                SearchParam(
                    "participant",
                    "reference",
                    "CareTeam.participant.member",
                    _references("participant.member"),
                    _PERSON_TARGETS,
                ),
                SearchParam(
                    "member",
                    "reference",
                    "CareTeam.participant.member",
                    _references("participant.member"),
                    _PERSON_TARGETS,
                ),
                _identifier(),
            ),
            description="The network and professionals around the inwoner.",
        ),
        ResourceType(
            "RelatedPerson",
            "patient",
            (
                _patient_param("RelatedPerson.patient"),
                SearchParam(
                    "relationship", "token", "RelatedPerson.relationship", _tokens("relationship")
                ),
                SearchParam("active", "token", "RelatedPerson.active", _tokens("active")),
                _identifier(),
            ),
            description="Family, neighbours, mantelzorgers.",
        ),
        ResourceType(
            "Organization",
            None,
            (
                _identifier(),
                SearchParam("type", "token", "Organization.type", _tokens("type")),
                SearchParam("active", "token", "Organization.active", _tokens("active")),
            ),
            description="Partner organisations: sociaal team, GGZ, MEE, housing corporation.",
        ),
        ResourceType(
            "Practitioner",
            None,
            (
                _identifier(),
                SearchParam("active", "token", "Practitioner.active", _tokens("active")),
            ),
            description="Professionals of the partner organisations.",
        ),
        ResourceType(
            "Consent",
            "patient",
            (
                _patient_param("Consent.patient"),
                _status(),
                SearchParam("scope", "token", "Consent.scope", _tokens("scope")),
                SearchParam("category", "token", "Consent.category", _tokens("category")),
                SearchParam("date", "date", "Consent.dateTime", _dates("dateTime")),
                SearchParam(
                    "period", "date", "Consent.provision.period", _dates("provision.period")
                ),
                SearchParam(
                    "actor",
                    "reference",
                    "Consent.provision.actor.reference",
                    _references("provision.actor.reference", "provision.provision.actor.reference"),
                    ("Organization", "Practitioner", "RelatedPerson", "CareTeam"),
                ),
                SearchParam(
                    "data",
                    "reference",
                    "Consent.provision.data.reference",
                    _references("provision.data.reference", "provision.provision.data.reference"),
                    _ALL_TYPES,
                ),
                SearchParam(
                    "action", "token", "Consent.provision.action", _tokens("provision.action")
                ),
                _identifier(),
            ),
            required_codes={
                "status": frozenset(
                    {"draft", "proposed", "active", "rejected", "inactive", "entered-in-error"}
                )
            },
            description="Who may see what: one per grantee.",
        ),
        ResourceType(
            "Observation",
            "subject",
            (
                _patient_param("Observation.subject"),
                SearchParam(
                    "subject",
                    "reference",
                    "Observation.subject",
                    _references("subject"),
                    ("Patient",),
                    compartment=True,
                ),
                _status(),
                SearchParam("category", "token", "Observation.category", _tokens("category")),
                SearchParam("code", "token", "Observation.code", _tokens("code")),
                SearchParam(
                    "date",
                    "date",
                    "Observation.effective",
                    _dates("effectiveDateTime", "effectivePeriod", "effectiveInstant"),
                ),
                _identifier(),
            ),
            required_codes={
                "status": frozenset(
                    {
                        "registered",
                        "preliminary",
                        "final",
                        "amended",
                        "corrected",
                        "cancelled",
                        "entered-in-error",
                        "unknown",
                    }
                )
            },
            description="Self-assessed scores per life domain, over time.",
        ),
        ResourceType(
            "Provenance",
            "target",
            (
                SearchParam(
                    "patient",
                    "reference",
                    "Provenance.target.where(resolve() is Patient)",
                    _references("target", only="Patient"),
                    ("Patient",),
                    compartment=True,
                ),
                SearchParam(
                    "target", "reference", "Provenance.target", _references("target"), _ALL_TYPES
                ),
                SearchParam(
                    "agent",
                    "reference",
                    "Provenance.agent.who",
                    _references("agent.who"),
                    _PERSON_TARGETS,
                ),
                SearchParam("recorded", "date", "Provenance.recorded", _dates("recorded")),
            ),
            description="Who changed what, on whose behalf.",
        ),
        ResourceType(
            "AuditEvent",
            "entity.what",
            (
                SearchParam(
                    "patient",
                    "reference",
                    "AuditEvent.entity.what.where(resolve() is Patient)",
                    _references("entity.what", only="Patient"),
                    ("Patient",),
                    compartment=True,
                ),
                SearchParam("date", "date", "AuditEvent.recorded", _dates("recorded"), single=True),
                SearchParam(
                    "entity",
                    "reference",
                    "AuditEvent.entity.what",
                    _references("entity.what"),
                    _ALL_TYPES,
                ),
                SearchParam(
                    "agent",
                    "reference",
                    "AuditEvent.agent.who",
                    _references("agent.who"),
                    _PERSON_TARGETS,
                ),
                SearchParam("type", "token", "AuditEvent.type", _tokens("type"), single=True),
                SearchParam("action", "token", "AuditEvent.action", _tokens("action"), single=True),
                SearchParam(
                    "outcome", "token", "AuditEvent.outcome", _tokens("outcome"), single=True
                ),
            ),
            writable=False,
            description="Who looked at what: written by the vault only.",
        ),
        ResourceType(
            "Group",
            "self",
            (
                SearchParam(
                    "member",
                    "reference",
                    "Group.member.entity",
                    _references("member.entity"),
                    ("Patient",),
                ),
                SearchParam("type", "token", "Group.type", _tokens("type")),
                SearchParam("actual", "token", "Group.actual", _tokens("actual")),
                _identifier(),
            ),
            required_codes={
                "type": frozenset(
                    {"person", "animal", "practitioner", "device", "medication", "substance"}
                )
            },
            description="A family (1 Gezin 1 Plan): its members, and the family compartment "
            "its own id names (docs/family.md section 6).",
        ),
    )
}

# Every type is searchable by its security labels (FHIR's common ``_security``): the
# consent engine matches labels such as "sensitive" through this index.
_SECURITY = SearchParam("_security", "token", "meta.security", _tokens("meta.security"))
RESOURCE_TYPES: dict[str, ResourceType] = {
    name: replace(spec, params=(*spec.params, _SECURITY)) for name, spec in _DECLARED.items()
}


# Subscription is not stored in the registry's tables: a partner's Subscription belongs to
# that client alone and is served by ``vault/notify``. Its search-free entry lives here.
SUBSCRIPTION = ResourceType(
    "Subscription",
    None,
    (),
    required_codes={"status": frozenset({"requested", "active", "error", "off"})},
    description="Change notifications of what an inwoner granted the client.",
)


def resource_type(name: str) -> ResourceType:
    found = RESOURCE_TYPES.get(name)
    if found is None:
        raise NotFound(f"Resource type '{name}' is not supported by this server")
    return found


# The types a SMART scope may name: the stored ones, a client's own Subscriptions, and the
# reporting scope of vault/reports (figures, no records).
SCOPE_TYPES: tuple[str, ...] = (*RESOURCE_TYPES, SUBSCRIPTION.name, "Measure", "MeasureReport")
# The types that may sit in a family compartment (``subject`` = the Group): the family
# CarePlan, its shared Goals and its CareTeam, besides the Group itself (docs/family.md).
FAMILY_TYPES = frozenset({"Group", "CarePlan", "Goal", "CareTeam"})
# Types outside every compartment (the shared directory), sealed with the shared data key.
SHARED_TYPES = frozenset(name for name, spec in RESOURCE_TYPES.items() if spec.compartment is None)

# Parameters every type takes that shape what a search returns, not which resources
# (FHIR R4 search, 3.1.1.5 "Modifying Search Results"): the search reads them, and a
# granular scope may not restrict by them (oauth/scopes.py).
RESULT_PARAMETERS = frozenset(
    {"_count", "_sort", "_total", "_summary", "_elements", "_include", "_revinclude"}
)
