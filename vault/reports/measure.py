"""The figures as FHIR: a ``Measure`` per figure and a summary ``MeasureReport``.

FHIR R4 Measure (https://hl7.org/fhir/R4/measure.html) and MeasureReport
(https://hl7.org/fhir/R4/measurereport.html), operation ``$evaluate-measure``
(https://hl7.org/fhir/R4/measure-operation-evaluate-measure.html), report type
``summary`` only: a report never names an inwoner. Counts are ``cohort`` measures, means
``continuous-variable`` ones. The figure per life domain is a stratum of the stratifier
``levensdomein`` (``alle``: all domains together); a suppressed figure has no
``measureScore`` and carries the data-absent-reason ``masked``.
"""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING, Any

from vault.fhir.codesystems import LEVENSDOMEIN, LEVENSDOMEINEN
from vault.kernel.fhirdata import format_instant
from vault.reports.figures import ALL_DOMAINS, MEASURES

if TYPE_CHECKING:
    from vault.reports.collect import Report

__all__ = [
    "MEASURE_BASE",
    "measure_capability",
    "measure_id",
    "measure_of",
    "measure_report",
    "measures",
]

MEASURE_BASE = "https://regiekluis.nl/fhir/Measure"
DATA_ABSENT = "http://hl7.org/fhir/StructureDefinition/data-absent-reason"
SCORING = "http://terminology.hl7.org/CodeSystem/measure-scoring"
POPULATION = "http://terminology.hl7.org/CodeSystem/measure-population"


def measure_capability() -> dict[str, Any]:
    """The CapabilityStatement entry of ``Measure`` (only what ``reports/router.py`` does)."""
    return {
        "type": "Measure",
        "documentation": "The figures of outcome reports; needs the scope "
        "system/MeasureReport.r. Only closed calendar quarters and years; summary only.",
        "interaction": [{"code": "read"}, {"code": "search-type"}],
        "operation": [
            {
                "name": "evaluate-measure",
                "definition": "http://hl7.org/fhir/OperationDefinition/Measure-evaluate-measure",
            }
        ],
    }


def measure_id(measure: str) -> str:
    return f"regiekluis-{measure}"


def measure_of(resource_id: str) -> str | None:
    """The measure an id names, or None."""
    name = resource_id.removeprefix("regiekluis-")
    return name if resource_id.startswith("regiekluis-") and name in MEASURES else None


def measures() -> list[dict[str, Any]]:
    return [_measure(name) for name in MEASURES]


def _measure(name: str) -> dict[str, Any]:
    label, kind = MEASURES[name]
    scoring = "cohort" if kind == "count" else "continuous-variable"
    return {
        "resourceType": "Measure",
        "id": measure_id(name),
        "url": f"{MEASURE_BASE}/{name}",
        "name": name.replace("-", "_"),
        "title": label,
        "status": "active",
        "experimental": False,
        "publisher": "Regiekluis",
        "description": (
            f"{label}, per kwartaal of jaar en per levensdomein, alleen over inwoners die "
            "toestemming gaven voor een overzicht zonder namen. Cijfers die op minder dan k "
            "inwoners rusten worden niet getoond."
        ),
        "scoring": {"coding": [{"system": SCORING, "code": scoring}]},
        "group": [
            {
                "population": [
                    {
                        "code": {"coding": [{"system": POPULATION, "code": "initial-population"}]},
                        "criteria": {
                            "language": "text/plain",
                            "expression": "inwoners met toestemming voor statistiek",
                        },
                    }
                ],
                "stratifier": [
                    {
                        "code": {"text": "levensdomein"},
                        "criteria": {"language": "text/plain", "expression": "Goal.category"},
                    }
                ],
            }
        ],
    }


def _score(value: float | None, kind: str) -> dict[str, Any]:
    if value is None:
        return {"extension": [{"url": DATA_ABSENT, "valueCode": "masked"}]}
    score: dict[str, Any] = {"value": value}
    if kind == "mean":
        return {"measureScore": score}
    return {"measureScore": {**score, "value": int(value)}}


def measure_report(report: Report, name: str) -> dict[str, Any]:
    """A summary MeasureReport of one figure for one period, every domain a stratum."""
    label, kind = MEASURES[name]
    strata = []
    for domain in [ALL_DOMAINS, *LEVENSDOMEINEN]:
        value = report.values.get((domain, name))
        stratum: dict[str, Any] = {
            "value": {
                "coding": [{"system": LEVENSDOMEIN, "code": domain}]
                if domain != ALL_DOMAINS
                else [],
                "text": LEVENSDOMEINEN.get(domain, "Alle domeinen"),
            },
            **_score(value, kind),
        }
        if not stratum["value"]["coding"]:
            del stratum["value"]["coding"]
        strata.append(stratum)
    overall = report.values.get((ALL_DOMAINS, name))
    group: dict[str, Any] = {
        "code": {"text": label},
        "stratifier": [{"code": [{"text": "levensdomein"}], "stratum": strata}],
    }
    if overall is not None:
        group.update(_score(overall, kind))
    last_day = report.period.end - timedelta(days=1)
    return {
        "resourceType": "MeasureReport",
        "status": "complete",
        "type": "summary",
        "measure": f"{MEASURE_BASE}/{name}",
        "date": format_instant(report.frozen_at),
        "reporter": {"display": "Regiekluis"},
        "period": {
            "start": report.period.start.isoformat(),
            "end": last_day.isoformat(),
        },
        "group": [group],
    }
