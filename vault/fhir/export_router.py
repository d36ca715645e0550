"""Bulk Data export routes (https://hl7.org/fhir/uv/bulkdata/export.html): kick-off,
status, download, cancel. Thin: the work is ``fhir/export.py``'s.

Registered before ``fhir/router.py``, whose ``/{resource_type}`` routes would otherwise
take ``$export`` for a resource type.
"""

from __future__ import annotations

import asyncio
from email.utils import formatdate

import orjson
from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from vault.consent.caller import AccessDep
from vault.fhir import export
from vault.fhir.outcomes import FHIR_JSON
from vault.kernel.errors import BadRequest, NotAcceptable, NotFound
from vault.kernel.fhirdata import parse_date_range
from vault.kernel.urls import fhir_base
from vault.kernel.web import RuntimeDep

__all__ = ["router"]

router = APIRouter(prefix="/fhir", tags=["bulk-data"])

NDJSON = "application/fhir+ndjson"
RETRY_AFTER_SECONDS = 1
SHORT_WAIT_STEPS = 10  # of 50 ms
_KNOWN = frozenset({"_type", "_since", "_outputFormat"})


def _kick_off(
    request: Request, runtime: RuntimeDep, ctx: AccessDep, level: export.Level
) -> Response:
    accept = request.headers.get("accept", FHIR_JSON)
    if "json" not in accept and "*/*" not in accept:
        raise NotAcceptable("The kick-off request takes Accept: application/fhir+json")
    prefer = [p.strip() for p in request.headers.get("prefer", "").split(",")]
    if "respond-async" not in prefer:
        raise BadRequest("Bulk export is asynchronous only: send 'Prefer: respond-async'")
    types: list[str] = []
    since = None
    for name, value in request.query_params.multi_items():
        if name not in _KNOWN:
            raise BadRequest(f"'{name}' is not a parameter of $export", expression=[name])
        if name == "_outputFormat" and value not in export.OUTPUT_FORMATS:
            raise BadRequest(f"Only {NDJSON} is produced", expression=["_outputFormat"])
        if name == "_type":
            types.extend(t.strip() for t in value.split(",") if t.strip())
        if name == "_since":
            try:
                parse_date_range(value)
            except ValueError:
                raise BadRequest("_since must be a FHIR instant", expression=["_since"]) from None
            since = value
    chosen = export.resolve_types(ctx, level, types)
    job_id = export.start(
        runtime,
        ctx,
        export.ExportRequest(level=level, types=chosen, since=since),
        request_url=str(request.url),
    )
    base = fhir_base(request, runtime.settings)
    return Response(
        status_code=202, headers={"Content-Location": f"{base}/$export-status/{job_id}"}
    )


@router.get("/$export")
def export_system(request: Request, runtime: RuntimeDep, ctx: AccessDep) -> Response:
    """Kick off a system-level export of everything this client may see."""
    return _kick_off(request, runtime, ctx, "system")


@router.get("/Patient/$export")
def export_patients(request: Request, runtime: RuntimeDep, ctx: AccessDep) -> Response:
    """Kick off a Patient-level export: the compartments this client may see."""
    return _kick_off(request, runtime, ctx, "patient")


@router.get("/Group/{group_id}/$export")
def export_group(group_id: str) -> Response:
    """Group-level export is not offered: the same 404 for every id, known or not."""
    raise NotFound("Group-level export is not supported by this vault; use Patient/$export")


@router.get("/$export-status/{job_id}")
async def export_status(
    request: Request, runtime: RuntimeDep, ctx: AccessDep, job_id: str
) -> Response:
    """Poll an export: 202 while it runs, the manifest when done."""
    view = await run_in_threadpool(
        export.job_view,
        runtime,
        ctx,
        job_id,
        client_registered=request.app.state.client_registered,
    )
    # Small exports finish in well under a second: wait a little before answering 202,
    # so a client need not sleep a whole Retry-After for them (asleep, not in a thread).
    for _ in range(SHORT_WAIT_STEPS):
        if view.status != "running":
            break
        await asyncio.sleep(0.05)
        view = await run_in_threadpool(
            export.job_view,
            runtime,
            ctx,
            job_id,
            client_registered=request.app.state.client_registered,
        )
    if view.status == "running":
        return Response(
            status_code=202,
            headers={
                "Retry-After": str(RETRY_AFTER_SECONDS),
                "X-Progress": view.progress or "started",
            },
        )
    expires = formatdate(view.expires_at / 1e6, usegmt=True)
    if view.status == "error":
        outcome = {
            "resourceType": "OperationOutcome",
            "issue": [
                {"severity": "error", "code": "exception", "diagnostics": "The export failed"}
            ],
        }
        return Response(orjson.dumps(outcome), status_code=500, media_type=FHIR_JSON)
    base = fhir_base(request, runtime.settings)
    body = export.manifest(view, file_url=f"{base}/$export-file/{job_id}")
    return Response(orjson.dumps(body), media_type="application/json", headers={"Expires": expires})


@router.delete("/$export-status/{job_id}")
async def export_cancel(runtime: RuntimeDep, ctx: AccessDep, job_id: str) -> Response:
    """Cancel an export (or delete its files now)."""
    await run_in_threadpool(export.cancel, runtime, ctx, job_id)
    return Response(status_code=202)


@router.get("/$export-file/{job_id}/{file_id}")
async def export_file(runtime: RuntimeDep, ctx: AccessDep, job_id: str, file_id: str) -> Response:
    """One ndjson output file, for the client that asked for the export."""
    if not (file_id.isascii() and file_id.isdigit()) or len(file_id) > 18:
        raise NotFound("This export file is not known")
    body = await run_in_threadpool(export.open_file, runtime, ctx, job_id, int(file_id))
    return Response(body, media_type=NDJSON)
