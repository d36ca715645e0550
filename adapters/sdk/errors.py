"""The SDK's errors, one tree (like ``httpx/_exceptions.py``)::

VaultClientError            anything the SDK raises on purpose
├── AuthenticationFailed    the token endpoint refused the client assertion
├── VaultUnavailable        retries exhausted on 429 / 5xx / connection errors
├── RequestRejected         any other 4xx (carries the OperationOutcome)
│   └── AccessRevoked       a resource (or resources) the client could read is gone:
│                           404/410 on read, or a sync found it no longer granted
└── ExportFailed            a Bulk Data export ended in an error or was cancelled
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

__all__ = [
    "AccessRevoked",
    "AuthenticationFailed",
    "ExportFailed",
    "RequestRejected",
    "VaultClientError",
    "VaultUnavailable",
]


class VaultClientError(Exception):
    """Base of every error the SDK raises on purpose."""


class AuthenticationFailed(VaultClientError):
    """The token endpoint refused the client: the OAuth ``error`` code says why."""

    def __init__(self, error: str, description: str = "") -> None:
        super().__init__(f"{error}: {description}" if description else error)
        self.error = error
        self.description = description


class VaultUnavailable(VaultClientError):
    """The vault kept answering 429/5xx (or could not be reached) after every retry."""


class RequestRejected(VaultClientError):
    """A 4xx answer other than 401; ``outcome`` is the OperationOutcome, when there is one."""

    def __init__(self, status: int, message: str, outcome: dict[str, Any] | None = None) -> None:
        super().__init__(f"{status}: {message}")
        self.status = status
        self.outcome = outcome


class AccessRevoked(RequestRejected):
    """What the client could read is no longer readable: delete your copy of ``references``.

    The vault answers 404 both for what never existed and for what the inwoner no longer
    shares (it does not tell the two apart, on purpose); for a resource you held a copy of,
    both mean the same thing to you: forget it.
    """

    def __init__(self, references: Sequence[str], status: int = 404) -> None:
        refs = list(references)
        shown = ", ".join(refs[:5]) + (" …" if len(refs) > 5 else "")
        RequestRejected.__init__(self, status, f"no longer readable: {shown}")
        self.references = refs


class ExportFailed(VaultClientError):
    """A Bulk Data export ended in an error, or was cancelled."""
