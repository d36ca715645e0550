"""The partner SDK: SMART Backend Services auth, typed FHIR, paging, retries, sync, export."""

from adapters.sdk.auth import ClientAssertionSigner, TokenCache, signing_algorithm
from adapters.sdk.client import ExportManifest, RetryPolicy, VaultClient, to_model
from adapters.sdk.errors import (
    AccessRevoked,
    AuthenticationFailed,
    ExportFailed,
    RequestRejected,
    VaultClientError,
    VaultUnavailable,
)
from adapters.sdk.sync import DEFAULT_TYPES, Synchroniser, SyncResult, SyncTarget

__all__ = [
    "DEFAULT_TYPES",
    "AccessRevoked",
    "AuthenticationFailed",
    "ClientAssertionSigner",
    "ExportFailed",
    "ExportManifest",
    "RequestRejected",
    "RetryPolicy",
    "SyncResult",
    "SyncTarget",
    "Synchroniser",
    "TokenCache",
    "VaultClient",
    "VaultClientError",
    "VaultUnavailable",
    "signing_algorithm",
    "to_model",
]
