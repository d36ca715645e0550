"""The consent page at ``/``: the inwoner runs their own plan and decides who sees it.

One module per part of the page, each with its routes: ``login_routes.py``,
``sharing_routes.py`` (wie mag wat zien), ``log_routes.py`` (wie heeft er gekeken),
``mydata_routes.py`` (mijn gegevens), ``plan_routes.py`` (mijn plan) and
``network_routes.py`` (mijn netwerk), ``family_plan_routes.py`` (ons gezinsplan); what
they share (rendering, the visitor and the rights
a route needs, forms, transactions) is ``web.py``. This module joins them into one router
and mounts the page. Sessions and CSRF live in ``oauth/sessions.py``; what each part reads
and writes beside it in ``sharing_data.py``, ``plan_data.py``, ``network_data.py`` and
``mydata.py``, with what they share in ``data.py`` (always through the Repository, with the
caller's own AccessContext); the sentences in ``words.py``; the eenvoudig view of Mijn plan
in ``easy.py``. Every page is server-rendered HTML that works without JavaScript and carries
a strict Content-Security-Policy (only the eenvoudig view may load its one script, a file of
this site); every POST needs the session's CSRF token.
"""

from __future__ import annotations

from inspect import isawaitable

from fastapi import APIRouter, FastAPI, Request
from fastapi.staticfiles import StaticFiles
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from vault.page import (
    family_plan_routes,
    log_routes,
    login_routes,
    mydata_routes,
    network_routes,
    plan_routes,
    sharing_routes,
)
from vault.page.web import HERE, LoginNeeded, Refused, current_visitor, render, see_other

__all__ = ["install_page", "router"]

# The page's routes, part by part (one module each), as one router whose ``routes`` list
# them all (``include_router`` would list only the included routers).
router = APIRouter(tags=["consent page"], include_in_schema=False)
for part in (
    login_routes,
    sharing_routes,
    log_routes,
    mydata_routes,
    plan_routes,
    family_plan_routes,
    network_routes,
):
    router.routes.extend(part.router.routes)


# -- wiring ----------------------------------------------------------------------------------

FHIR_PREFIXES = ("/fhir", "/oauth", "/.well-known")


def wants_page(request: Request) -> bool:
    """A browser asking for a page: a GET outside the FHIR API that accepts HTML and not
    FHIR JSON. Every other caller gets the OperationOutcome of the FHIR API."""
    accept = request.headers.get("accept", "")
    return (
        request.method in ("GET", "HEAD")
        and not request.url.path.startswith(FHIR_PREFIXES)
        and "text/html" in accept
        and "json" not in accept
    )


async def _error_page(request: Request, title: str, message: str, status: int) -> Response:
    """An error as a page in plain Dutch, with the menu and "Ingelogd als ..." kept."""
    from_session = await run_in_threadpool(current_visitor, request)
    return render(
        request,
        "error.html",
        {"title": title, "message": message},
        visitor=from_session,
        status=status,
    )


def install_page(app: FastAPI) -> None:
    """Mount the page: its routes, its stylesheet, and its two answers for refusals."""

    async def login_needed(request: Request, _exc: Exception) -> Response:
        return see_other("/inloggen")

    async def refused(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, Refused)
        return await _error_page(request, exc.title, exc.message, exc.status)

    # FHIR clients keep their OperationOutcome; a browser asking for a page gets one.
    fhir_answer = app.exception_handlers.get(StarletteHTTPException)

    async def not_found(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        if exc.status_code == 404 and wants_page(request):
            return await _error_page(
                request,
                "Deze pagina bestaat niet",
                "Misschien is het adres niet goed overgenomen. Kies een pagina in het menu.",
                404,
            )
        if fhir_answer is None:
            raise exc
        answer = fhir_answer(request, exc)
        return await answer if isawaitable(answer) else answer

    app.add_exception_handler(LoginNeeded, login_needed)
    app.add_exception_handler(Refused, refused)
    app.add_exception_handler(StarletteHTTPException, not_found)
    app.mount("/static", StaticFiles(directory=str(HERE / "static")), name="page-static")
    app.include_router(router)
