"""The yardstick: a plain FastAPI app that answers the read URL with fixed CarePlan bytes.

Served by ``fhir_read_search.py`` beside the vault, on the same core, with the same
uvicorn settings. It does no work beyond routing, so the ratio "bare req/s / vault req/s"
is what the vault's read path costs on top of the framework. The body is the JSON of a
real stored CarePlan, read once at start-up from ``BENCH_BARE_BODY``.

``/sync/...`` is the same endpoint as a plain ``def``: FastAPI runs those in a thread
pool, so the difference between the two is the price of that hop alone.
"""

from __future__ import annotations

import os
from pathlib import Path

from fastapi import FastAPI
from starlette.responses import Response

__all__ = ["bare_app"]

FHIR_JSON = "application/fhir+json"


def bare_app() -> FastAPI:
    """Factory for ``uvicorn --factory``."""
    body = Path(os.environ["BENCH_BARE_BODY"]).read_bytes()
    app = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)

    @app.get("/healthz")
    async def healthz() -> Response:
        return Response(b'{"status":"ok"}', media_type="application/json")

    @app.get("/fhir/CarePlan/{resource_id}")
    async def careplan(resource_id: str) -> Response:
        return Response(body, media_type=FHIR_JSON)

    @app.get("/sync/fhir/CarePlan/{resource_id}")
    def careplan_sync(resource_id: str) -> Response:
        return Response(body, media_type=FHIR_JSON)

    return app
