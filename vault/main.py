"""The ASGI application: ``create_app(settings)`` wires routers, handlers and lifespan."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from starlette.responses import JSONResponse

from vault import __version__
from vault.config import Settings
from vault.deps import AccessResolver, deny_all
from vault.fhir.outcomes import install_handlers
from vault.fhir.router import router as fhir_router
from vault.runtime import Runtime

__all__ = ["app_from_env", "create_app"]


def create_app(
    settings: Settings,
    *,
    access_resolver: AccessResolver | None = None,
    runtime: Runtime | None = None,
) -> FastAPI:
    """Build the app. Without ``access_resolver`` every FHIR request is answered 401."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        own = runtime is None
        rt = runtime if runtime is not None else Runtime.open(settings)
        app.state.runtime = rt
        rt.db.start_background_tasks()
        try:
            yield
        finally:
            if own:
                rt.close()

    app = FastAPI(
        title="Regiekluis",
        version=__version__,
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
    )
    app.state.settings = settings
    app.state.access_resolver = access_resolver or deny_all
    if runtime is not None:
        app.state.runtime = runtime
    install_handlers(app)
    app.include_router(fhir_router)

    @app.get("/healthz", tags=["operations"])
    def healthz() -> JSONResponse:
        """Liveness and database reachability for load balancers."""
        rt: Runtime = app.state.runtime
        with rt.db.read() as conn:
            conn.exec_driver_sql("SELECT 1")
        return JSONResponse({"status": "ok"})

    return app


def app_from_env() -> FastAPI:
    """Factory for ``uvicorn --factory`` (used by ``vault serve --workers N``)."""
    logging.basicConfig(level=logging.INFO)
    return create_app(Settings.from_env())
