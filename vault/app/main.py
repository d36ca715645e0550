"""The ASGI application: ``create_app(settings)`` wires routers, handlers and lifespan."""

from __future__ import annotations

import gc
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from starlette.concurrency import run_in_threadpool
from starlette.responses import JSONResponse, Response

from vault import __version__
from vault.app.metrics import (
    MetricsMiddleware,
    metrics_response,
    readiness,
    warn_without_autovacuum,
)
from vault.audit.runtime import open_runtime
from vault.consent.caller import AccessResolver
from vault.fhir.export import reclaim_stranded
from vault.fhir.export_router import router as export_router
from vault.fhir.outcomes import CatchAllMiddleware, install_handlers
from vault.fhir.router import PlainReadMiddleware
from vault.fhir.router import router as fhir_router
from vault.kernel.config import Settings
from vault.kernel.runtime import Runtime
from vault.notify.router import router as notify_router
from vault.notify.topic import subscription_capability
from vault.notify.worker import Notifier
from vault.oauth.clients import is_registered
from vault.oauth.protector import BearerTokenResolver
from vault.oauth.router import capability_security
from vault.oauth.router import router as oauth_router
from vault.oauth.server import VaultAuthorizationServer
from vault.page.router import install_page
from vault.reports.measure import measure_capability
from vault.reports.router import router as reports_router

__all__ = ["app_from_env", "create_app"]


def _attach(app: FastAPI, runtime: Runtime, access_resolver: AccessResolver | None) -> None:
    app.state.runtime = runtime
    app.state.oauth_server = VaultAuthorizationServer(
        runtime, backend_token_seconds=runtime.settings.backend_token_seconds
    )
    app.state.access_resolver = access_resolver or BearerTokenResolver(runtime)
    app.state.capability_security = capability_security(runtime.settings)
    app.state.capability_resources = (subscription_capability(), measure_capability())
    app.state.client_registered = is_registered


def create_app(
    settings: Settings,
    *,
    access_resolver: AccessResolver | None = None,
    runtime: Runtime | None = None,
) -> FastAPI:
    """Build the app. FHIR requests need a bearer token this vault issued, unless the
    caller plugs in another ``access_resolver`` (tests of the store itself do)."""
    # Long on purpose: the app's wiring in one place: routers, middleware order, lifespan, health
    # routes.

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        own = runtime is None
        rt = runtime if runtime is not None else open_runtime(settings)
        if own:
            _attach(app, rt, access_resolver)
            await run_in_threadpool(warn_without_autovacuum, rt)
        rt.db.start_background_tasks()
        notifier = Notifier(rt)
        notifier.start()
        # Exports whose worker died (a crash, a deploy) go on here rather than hang.
        await run_in_threadpool(reclaim_stranded, rt, client_registered=is_registered)
        # The import-time objects (fhir.resources, pydantic) never die; moving them out of
        # what the collector scans took the read p99 from 57 ms to 8 ms (docs/performance.md).
        gc.collect()
        gc.freeze()
        try:
            yield
        finally:
            notifier.stop()
            await rt.db.close_async()
            if own:
                rt.close()

    app = FastAPI(
        title="Regiekluis",
        version=__version__,
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
        # FastAPI's own OpenTelemetry stays off, whatever the environment configures
        # (FASTAPI_OTEL_AUTO_CONFIGURE included): its spans carry the request's query (a
        # search names the inwoner) and its logs carry exception messages and stack traces,
        # none of which may leave the vault. What an operator watches is /metrics
        # (docs/operating.md). Off, it also costs nothing per request: asking whether it is
        # on cost 3 to 5 µs (docs/performance.md).
        telemetry={"tracing": False, "metrics": False, "logs": False, "auto_configure": False},
    )
    app.state.settings = settings
    if runtime is not None:
        _attach(app, runtime, access_resolver)
    install_handlers(app)
    # Outermost last: metrics see every request, the error handling wraps the plain read.
    app.add_middleware(PlainReadMiddleware)
    app.add_middleware(CatchAllMiddleware)
    app.add_middleware(MetricsMiddleware)
    app.include_router(export_router)  # before fhir_router: its /{type} would take $export
    app.include_router(notify_router)  # before fhir_router: Subscription is not a stored type
    app.include_router(reports_router)  # before fhir_router: Measure is not a stored type
    # before fhir_router: its /{type}/{id} would take /fhir/.well-known/smart-configuration
    app.include_router(oauth_router)
    app.include_router(fhir_router)

    install_page(app)

    @app.get("/healthz", tags=["operations"])
    def healthz() -> JSONResponse:
        """Liveness and database reachability for load balancers."""
        rt: Runtime = app.state.runtime
        with rt.db.read() as conn:
            conn.exec_driver_sql("SELECT 1")
        return JSONResponse({"status": "ok"})

    @app.get("/readyz", tags=["operations"])
    def readyz() -> JSONResponse:
        """Ready to serve: database reachable, migrations at head, keys loadable."""
        return readiness(app.state.runtime)

    if settings.metrics:  # off by default: docs/operating.md, "Metrics and health"

        @app.get("/metrics", tags=["operations"])
        def metrics() -> Response:
            """Prometheus exposition of this vault's counters and queues."""
            return metrics_response(app.state.runtime)

    return app


def app_from_env() -> FastAPI:
    """Factory for ``uvicorn --factory`` (used by ``vault serve --workers N``)."""
    logging.basicConfig(level=logging.INFO)
    return create_app(Settings.from_env())
