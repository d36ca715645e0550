"""``/fhir/Measure``: the figure definitions and ``$evaluate-measure`` for a gemeente's system.

FHIR R4 Measure operation ``$evaluate-measure``
(https://hl7.org/fhir/R4/measure-operation-evaluate-measure.html), ``reportType`` summary
only, ``periodStart``/``periodEnd`` exactly one calendar quarter or year that has ended.
Only a client with the reporting scope ``system/MeasureReport.r`` (named explicitly; a
``system/*`` scope does not count) may ask, and the figures are those of the inwoners who
allow its Organization the statistics purpose (``collect.py``). Registered before
``fhir/router.py``, whose ``/{resource_type}`` routes would otherwise take these paths.
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

import orjson
from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from vault.consent.access import AccessContext
from vault.consent.caller import AccessDep
from vault.fhir.outcomes import FHIR_JSON
from vault.kernel.errors import BadRequest, Forbidden, NotFound
from vault.kernel.urls import fhir_base
from vault.kernel.web import RuntimeDep
from vault.reports.collect import figures_for
from vault.reports.figures import Period, parse_period
from vault.reports.measure import MEASURE_BASE, measure_of, measure_report, measures

__all__ = ["REPORTING_SCOPE", "router"]

REPORTING_SCOPE = "system/MeasureReport.r"
router = APIRouter(prefix="/fhir/Measure", tags=["reports"])


def _reporter(ctx: AccessContext) -> str:
    """The Organization a reporting client reports for; 403 for any other caller."""
    explicit = "r" in ctx.permissions.letters.get("MeasureReport", frozenset())
    if ctx.kind != "system" or not explicit or ctx.organization is None:
        raise Forbidden(
            f"Reports are for a client with the scope {REPORTING_SCOPE} that acts for an "
            "organisation"
        )
    return ctx.organization


def _json(data: dict[str, Any]) -> Response:
    return Response(orjson.dumps(data), media_type=FHIR_JSON)


@router.get("")
def search_measures(request: Request, runtime: RuntimeDep, ctx: AccessDep) -> Response:
    """Every figure this vault reports, as Measure resources."""
    _reporter(ctx)
    base = fhir_base(request, runtime.settings)
    found = measures()
    return _json(
        {
            "resourceType": "Bundle",
            "type": "searchset",
            "total": len(found),
            "link": [{"relation": "self", "url": f"{base}/Measure"}],
            "entry": [
                {"fullUrl": f"{base}/Measure/{m['id']}", "resource": m, "search": {"mode": "match"}}
                for m in found
            ],
        }
    )


def _period(start: str | None, end: str | None) -> Period:
    if not start or not end:
        raise BadRequest("$evaluate-measure needs periodStart and periodEnd")
    try:
        first = date.fromisoformat(start[:10])
        last = date.fromisoformat(end[:10])
    except ValueError:
        raise BadRequest("periodStart and periodEnd must be dates (YYYY-MM-DD)") from None
    quarter = (first.month - 1) // 3 + 1
    for code in (str(first.year), f"{first.year}-Q{quarter}"):
        period = parse_period(code)
        if period.start == first and period.end - timedelta(days=1) == last:
            return period
    raise BadRequest(
        "The period must be one calendar quarter or one calendar year, e.g. "
        "periodStart=2026-01-01&periodEnd=2026-03-31"
    )


async def _evaluate(
    request: Request, runtime: RuntimeDep, ctx: AccessContext, name: str
) -> Response:
    organization = _reporter(ctx)
    params = request.query_params
    report_type = params.get("reportType", "summary")
    if report_type != "summary":
        raise BadRequest("Only reportType=summary is offered: a report never names an inwoner")
    if params.get("subject"):
        raise BadRequest("A report is about no one in particular: subject is not supported")
    period = _period(params.get("periodStart"), params.get("periodEnd"))

    def work() -> dict[str, Any]:
        reports = figures_for(
            runtime,
            period=period,
            organization=organization,
            client_id=ctx.client_id,
            k=runtime.settings.report_min_cell,
        )
        return measure_report(reports[-1], name)

    return _json(await run_in_threadpool(work))


@router.get("/$evaluate-measure")
async def evaluate_by_url(request: Request, runtime: RuntimeDep, ctx: AccessDep) -> Response:
    """``$evaluate-measure`` at type level: ``measure`` names the figure."""
    _reporter(ctx)
    wanted = request.query_params.get("measure", "")
    name = measure_of(wanted.removeprefix(MEASURE_BASE + "/").join(["regiekluis-", ""]))
    if name is None:
        name = measure_of(wanted.rsplit("/", 1)[-1])
    if name is None:
        raise BadRequest("measure must name one of this vault's Measures (see GET /fhir/Measure)")
    return await _evaluate(request, runtime, ctx, name)


@router.get("/{measure_id}")
def read_measure(measure_id: str, runtime: RuntimeDep, ctx: AccessDep) -> Response:
    """One figure's definition."""
    _reporter(ctx)
    name = measure_of(measure_id)
    if name is None:
        raise NotFound(f"Measure/{measure_id[:64]} is not known")
    return _json(next(m for m in measures() if m["id"] == measure_id))


@router.get("/{measure_id}/$evaluate-measure")
async def evaluate(
    measure_id: str, request: Request, runtime: RuntimeDep, ctx: AccessDep
) -> Response:
    """The summary MeasureReport of one figure for one closed quarter or year."""
    _reporter(ctx)
    name = measure_of(measure_id)
    if name is None:
        raise NotFound(f"Measure/{measure_id[:64]} is not known")
    return await _evaluate(request, runtime, ctx, name)
