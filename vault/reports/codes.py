"""The codes of outcome reports: the statistics purpose, the plan's phases, the own rating.

Statistics purpose: a Consent provision whose ``purpose`` is ``HRESCH`` (v3-ActReason
"healthcare research": use of data for research and statistics, not for the care of this
person) lets the vault count the inwoner in figures without names. The vault alone uses
that purpose, inside ``vault/reports``; a client can never act under it (see
``vault.consent.access.registered_purposes``), so the grant never opens a read of the plan.

Plan phase: an extension on CarePlan whose ``valueCoding`` comes from the vault CodeSystem
``plan-fase`` (the five steps of a samenwerkplan). When a plan first reaches "samen op
weg", the page also stamps ``plan-agreed`` (valueDateTime): the day the plan was agreed.

Own rating of the way of working: an Observation with code ``werkwijze`` of the vault
CodeSystem ``evaluatie`` and a valueInteger from 1 to 10, written by the inwoner.
"""

from __future__ import annotations

__all__ = [
    "EVALUATIE",
    "PHASES",
    "PLAN_AGREED",
    "PLAN_FASE",
    "PLAN_PHASE",
    "RATING_CODE",
    "STATISTICS_PURPOSE",
    "STATISTICS_PURPOSE_SYSTEM",
]

STATISTICS_PURPOSE = "HRESCH"
STATISTICS_PURPOSE_SYSTEM = "http://terminology.hl7.org/CodeSystem/v3-ActReason"

PLAN_FASE = "https://regiekluis.nl/fhir/CodeSystem/plan-fase"
PLAN_PHASE = "https://regiekluis.nl/fhir/StructureDefinition/plan-phase"
PLAN_AGREED = "https://regiekluis.nl/fhir/StructureDefinition/plan-agreed"
# code -> display, in the order a plan goes through them
PHASES = {
    "contact": "Contact",
    "verkennen": "Verkennen",
    "samenwerkoverleg": "Samenwerkoverleg",
    "samen-op-weg": "Samen op weg",
    "evaluatie": "Evaluatie",
}
# From this phase on, the plan is agreed.
AGREED_FROM = ("samen-op-weg", "evaluatie")

EVALUATIE = "https://regiekluis.nl/fhir/CodeSystem/evaluatie"
RATING_CODE = "werkwijze"
