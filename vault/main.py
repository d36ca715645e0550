"""The ASGI application: ``create_app(settings)`` wires routers, handlers and lifespan."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from starlette.responses import HTMLResponse, JSONResponse

from vault import __version__
from vault.config import Settings
from vault.deps import AccessResolver
from vault.fhir.outcomes import CatchAllMiddleware, install_handlers
from vault.fhir.router import router as fhir_router
from vault.oauth.protector import BearerTokenResolver
from vault.oauth.router import router as oauth_router
from vault.oauth.server import VaultAuthorizationServer
from vault.runtime import Runtime

__all__ = ["app_from_env", "create_app"]

_HOME = """<!doctype html><html lang="nl"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1"><title>Regiekluis</title>
</head><body style="font-family:system-ui,sans-serif;max-width:34rem;margin:1rem auto;
padding:0 1rem;font-size:1.125rem;line-height:1.5"><h1>Regiekluis draait</h1>
<p>De kluis is klaar. Apps en systemen van organisaties gebruiken de FHIR-ingang
<code>/fhir</code>; wat de kluis kan staat in <a href="/fhir/metadata">/fhir/metadata</a>.</p>
</body></html>"""


def _attach(app: FastAPI, runtime: Runtime, access_resolver: AccessResolver | None) -> None:
    app.state.runtime = runtime
    app.state.oauth_server = VaultAuthorizationServer(
        runtime, backend_token_seconds=runtime.settings.backend_token_seconds
    )
    app.state.access_resolver = access_resolver or BearerTokenResolver(runtime)


def create_app(
    settings: Settings,
    *,
    access_resolver: AccessResolver | None = None,
    runtime: Runtime | None = None,
) -> FastAPI:
    """Build the app. FHIR requests need a bearer token this vault issued, unless the
    caller plugs in another ``access_resolver`` (tests of the store itself do)."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        own = runtime is None
        rt = runtime if runtime is not None else Runtime.open(settings)
        if own:
            _attach(app, rt, access_resolver)
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
    if runtime is not None:
        _attach(app, runtime, access_resolver)
    install_handlers(app)
    app.add_middleware(CatchAllMiddleware)
    app.include_router(fhir_router)
    app.include_router(oauth_router)

    @app.get("/", include_in_schema=False)
    def home() -> HTMLResponse:
        """A plain page that says the vault runs (the consent page will live here)."""
        return HTMLResponse(_HOME)

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
