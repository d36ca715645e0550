"""The partner SDK: SMART Backend Services auth, typed FHIR, paging, retries, sync, export,
change notifications; and SMART App Launch auth for a tool that acts for one inwoner."""

from adapters.sdk.app_launch import AppLaunchAuth, LoopbackReceiver, TokenFile, pkce_pair
from adapters.sdk.auth import ClientAssertionSigner, TokenCache, signing_algorithm
from adapters.sdk.client import ExportManifest, RetryPolicy, TokenSource, VaultClient, to_model
from adapters.sdk.errors import (
    AccessRevoked,
    AuthenticationFailed,
    ExportFailed,
    RequestRejected,
    VaultClientError,
    VaultUnavailable,
)
from adapters.sdk.notifications import (
    GRANTED_DATA_TOPIC,
    Notification,
    NotificationReceiver,
    NotificationRejected,
    apply_notification,
    describe_notification,
    parse_notification,
    subscription_resource,
)
from adapters.sdk.sync import DEFAULT_TYPES, Synchroniser, SyncResult, SyncTarget

__all__ = [
    "DEFAULT_TYPES",
    "GRANTED_DATA_TOPIC",
    "AccessRevoked",
    "AppLaunchAuth",
    "AuthenticationFailed",
    "ClientAssertionSigner",
    "ExportFailed",
    "ExportManifest",
    "LoopbackReceiver",
    "Notification",
    "NotificationReceiver",
    "NotificationRejected",
    "RequestRejected",
    "RetryPolicy",
    "SyncResult",
    "SyncTarget",
    "Synchroniser",
    "TokenCache",
    "TokenFile",
    "TokenSource",
    "VaultClient",
    "VaultClientError",
    "VaultUnavailable",
    "apply_notification",
    "describe_notification",
    "parse_notification",
    "pkce_pair",
    "signing_algorithm",
    "subscription_resource",
    "to_model",
]
