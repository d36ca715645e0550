"""Errors as FHIR OperationOutcome (https://hl7.org/fhir/R4/operationoutcome.html).

The one place where an error becomes a response. Nothing here echoes request data back
beyond what the error itself chose to say, and no stack trace ever leaves the process.
"""

from __future__ import annotations

import logging
from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from vault.kernel.errors import FhirError, KeyUnavailable

__all__ = [
    "FHIR_JSON",
    "CatchAllMiddleware",
    "error_response",
    "install_handlers",
    "outcome",
    "outcome_response",
]

FHIR_JSON = "application/fhir+json"
log = logging.getLogger("vault.kernel.errors")


def outcome(
    diagnostics: str, *, code: str, severity: str = "error", expression: list[str] | None = None
) -> dict[str, Any]:
    issue: dict[str, Any] = {"severity": severity, "code": code, "diagnostics": diagnostics}
    if expression:
        issue["expression"] = expression
    return {"resourceType": "OperationOutcome", "issue": [issue]}


def outcome_response(
    status: int,
    diagnostics: str,
    *,
    code: str,
    expression: list[str] | None = None,
    headers: dict[str, str] | None = None,
) -> Response:
    body = orjson.dumps(outcome(diagnostics, code=code, expression=expression))
    return Response(body, status_code=status, media_type=FHIR_JSON, headers=headers)


def error_response(scope: Scope, exc: Exception) -> Response:
    """The answer to an error raised while handling ``scope``: the one mapping, shared by
    the exception handlers, the last-resort middleware and the plain read (``fast_read``)."""
    if isinstance(exc, FhirError):
        return outcome_response(
            exc.status,
            exc.diagnostics,
            code=exc.code,
            expression=exc.expression,
            headers=exc.headers,
        )
    if isinstance(exc, KeyUnavailable):
        log.error("key unavailable on %s %s: %s", scope.get("method"), scope.get("path"), exc)
        return outcome_response(500, "The vault cannot open this data right now", code="exception")
    # Only the type: a message may carry personal data.
    log.error("unexpected %s on %s %s", type(exc).__name__, scope.get("method"), scope.get("path"))
    return outcome_response(
        500, "Something went wrong in the vault; nothing was changed", code="exception"
    )


async def _vault_error(request: Request, exc: Exception) -> Response:
    return error_response(request.scope, exc)


async def _validation(_request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    where = [".".join(str(p) for p in err.get("loc", ())) for err in exc.errors()[:5]]
    return outcome_response(
        400, "The request is not valid: " + ", ".join(where), code="invalid", expression=where
    )


async def _http(_request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    code = {404: "not-found", 405: "not-supported"}.get(exc.status_code, "processing")
    text = {
        404: "There is nothing at this address",
        405: "This interaction is not supported here",
    }.get(exc.status_code, str(exc.detail))
    return outcome_response(exc.status_code, text, code=code, headers=getattr(exc, "headers", None))


class CatchAllMiddleware:
    """Turns any unexpected error into a 500 OperationOutcome, and logs only its type.

    Starlette's own last-resort handler re-raises after responding, so the server would log
    the full traceback and message, which may carry personal data. This pure ASGI
    middleware sits inside it and swallows the error instead.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except Exception as exc:
            response = error_response(scope, exc)
            if started:
                return  # the response is under way; nothing sensible can be added
            await response(scope, receive, send)


def install_handlers(app: FastAPI) -> None:
    app.add_exception_handler(FhirError, _vault_error)
    app.add_exception_handler(KeyUnavailable, _vault_error)
    app.add_exception_handler(RequestValidationError, _validation)
    app.add_exception_handler(StarletteHTTPException, _http)
