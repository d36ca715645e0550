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

from vault.errors import FhirError, KeyUnavailable

__all__ = ["FHIR_JSON", "install_handlers", "outcome", "outcome_response"]

FHIR_JSON = "application/fhir+json"
log = logging.getLogger("vault.errors")


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


async def _fhir_error(_request: Request, exc: Exception) -> Response:
    assert isinstance(exc, FhirError)
    return outcome_response(
        exc.status, exc.diagnostics, code=exc.code, expression=exc.expression, headers=exc.headers
    )


async def _key_unavailable(request: Request, exc: Exception) -> Response:
    log.error("key unavailable on %s %s: %s", request.method, request.url.path, exc)
    return outcome_response(500, "The vault cannot open this data right now", code="exception")


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


async def _unexpected(request: Request, exc: Exception) -> Response:
    # The type name only: messages of unexpected errors may carry personal data.
    log.error("unexpected %s on %s %s", type(exc).__name__, request.method, request.url.path)
    return outcome_response(
        500, "Something went wrong in the vault; nothing was changed", code="exception"
    )


def install_handlers(app: FastAPI) -> None:
    app.add_exception_handler(FhirError, _fhir_error)
    app.add_exception_handler(KeyUnavailable, _key_unavailable)
    app.add_exception_handler(RequestValidationError, _validation)
    app.add_exception_handler(StarletteHTTPException, _http)
    app.add_exception_handler(Exception, _unexpected)
