"""The vault's error tree. Every error a caller can cause is one of these.

    VaultError
    ├── FhirError                 -> an OperationOutcome with an HTTP status (fhir/outcomes.py)
    │   ├── BadRequest            400  unparsable input, bad search, id mismatch
    │   ├── Unauthorized          401  no or bad credentials (with WWW-Authenticate)
    │   ├── Forbidden             403  the caller can see it but may not do this
    │   ├── NotFound              404  unknown type or id, or outside the caller's view
    │   ├── MethodNotAllowed      405  the interaction does not exist for this type
    │   ├── NotAcceptable         406  a response format we do not speak
    │   ├── Conflict              409  the change clashes with stored data
    │   ├── Gone                  410  the resource was deleted
    │   ├── PreconditionFailed    412  If-Match / If-None-Exist did not hold
    │   ├── PayloadTooLarge       413  body over the configured limit
    │   ├── UnsupportedMediaType  415  body not FHIR JSON
    │   └── Unprocessable         422  valid FHIR that breaks a vault rule
    └── KeyUnavailable            master key missing or wrong, or a data key destroyed

Messages are written for the caller and never contain personal data or stack traces.
"""

from __future__ import annotations

__all__ = [
    "BadRequest",
    "Conflict",
    "FhirError",
    "Forbidden",
    "Gone",
    "KeyUnavailable",
    "MethodNotAllowed",
    "NotAcceptable",
    "NotFound",
    "PayloadTooLarge",
    "PreconditionFailed",
    "Unauthorized",
    "Unprocessable",
    "UnsupportedMediaType",
    "VaultError",
]


class VaultError(Exception):
    """Base of every error the vault raises on purpose."""


class FhirError(VaultError):
    status: int = 500
    code: str = "exception"  # OperationOutcome.issue.code (value set issue-type)

    def __init__(
        self,
        diagnostics: str,
        *,
        expression: list[str] | None = None,
        headers: dict[str, str] | None = None,
        code: str | None = None,
    ) -> None:
        super().__init__(diagnostics)
        self.diagnostics = diagnostics
        self.expression = expression or []
        self.headers = headers or {}
        if code is not None:
            self.code = code


class BadRequest(FhirError):
    status, code = 400, "invalid"


class Unauthorized(FhirError):
    status, code = 401, "login"


class Forbidden(FhirError):
    status, code = 403, "forbidden"


class NotFound(FhirError):
    status, code = 404, "not-found"


class MethodNotAllowed(FhirError):
    status, code = 405, "not-supported"


class NotAcceptable(FhirError):
    status, code = 406, "not-supported"


class Conflict(FhirError):
    status, code = 409, "conflict"


class Gone(FhirError):
    status, code = 410, "deleted"


class PreconditionFailed(FhirError):
    status, code = 412, "conflict"


class PayloadTooLarge(FhirError):
    status, code = 413, "too-costly"


class UnsupportedMediaType(FhirError):
    status, code = 415, "not-supported"


class Unprocessable(FhirError):
    status, code = 422, "processing"


class KeyUnavailable(VaultError):
    """A key needed to decrypt is missing: wrong master key, or a destroyed data key."""
