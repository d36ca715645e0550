"""Change notifications from the vault: subscribe, receive, check, act.

The vault sends id-only notifications of the Subscriptions R5 Backport IG for R4
(``docs/notifications.md``): a ``history`` Bundle with a subscription-status Parameters
resource and, for a change, the changed resource's ``fullUrl`` — never its content. The
partner then fetches it with its own token, so the vault's access decision applies again.

- ``subscription_resource`` builds the Subscription to POST (``VaultClient.subscribe``
  does that); the channel carries a secret header the vault sends back with every
  notification, so a receiver can tell the vault's calls from anyone else's.
- ``parse_notification`` checks a received body: for one of *my* subscriptions, the
  topic this SDK knows, one event with a focus.
- ``NotificationReceiver`` is a small HTTP server for those calls; ``apply_notification``
  brings a ``SyncTarget`` in step: fetch and upsert the changed resource, remove it when
  it is no longer readable, and run a full sync when a grant changed or ended.
"""

from __future__ import annotations

import hmac
import logging
import threading
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Literal

import orjson

from adapters.sdk.client import VaultClient, to_model
from adapters.sdk.errors import AccessRevoked, VaultClientError
from adapters.sdk.sync import Synchroniser, SyncTarget

__all__ = [
    "GRANTED_DATA_TOPIC",
    "Notification",
    "NotificationReceiver",
    "NotificationRejected",
    "apply_notification",
    "describe_notification",
    "parse_notification",
    "subscription_resource",
]

log = logging.getLogger(__name__)

GRANTED_DATA_TOPIC = "https://regiekluis.nl/fhir/SubscriptionTopic/granted-data"
EVENT_KIND = "https://regiekluis.nl/fhir/StructureDefinition/notification-event-kind"
BACKPORT = "http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition"
AUTH_HEADER = "Authorization"  # the secret rides here, as a bearer value
MAX_BODY = 64 * 1024  # an id-only notification is small

EventKind = Literal["change", "access-ended", "access-changed"]


class NotificationRejected(VaultClientError):
    """A received body is not a notification of one of this client's subscriptions."""


@dataclass(frozen=True, slots=True)
class Notification:
    subscription_id: str
    status: str  # the Subscription's status at the vault
    event_number: int
    kind: EventKind
    focus: str  # "Goal/123"; for a grant change "Consent/…"
    patient_id: str | None  # the inwoner, for a grant change
    method: str | None  # PUT or DELETE for a change

    @property
    def resource_type(self) -> str:
        return self.focus.split("/", 1)[0]

    @property
    def resource_id(self) -> str:
        return self.focus.split("/", 1)[1]


def subscription_resource(
    endpoint: str, *, secret: str, types: Sequence[str] = (), reason: str = ""
) -> dict[str, Any]:
    """A Subscription to the vault's granted-data topic, id-only, optionally by type."""
    resource: dict[str, Any] = {
        "resourceType": "Subscription",
        "meta": {"profile": [f"{BACKPORT}/backport-subscription"]},
        "status": "requested",
        "reason": reason or "Keep our copy in step with what inwoners share with us",
        "criteria": GRANTED_DATA_TOPIC,
        "channel": {
            "type": "rest-hook",
            "endpoint": endpoint,
            "payload": "application/fhir+json",
            "_payload": {
                "extension": [
                    {"url": f"{BACKPORT}/backport-payload-content", "valueCode": "id-only"}
                ]
            },
            "header": [f"{AUTH_HEADER}: Bearer {secret}"],
        },
    }
    if types:
        resource["_criteria"] = {
            "extension": [
                {"url": f"{BACKPORT}/backport-filter-criteria", "valueString": f"{t}?"}
                for t in types
            ]
        }
    return resource


def _reference_tail(reference: Any) -> str:
    """``https://host/fhir/Goal/1`` -> ``Goal/1``."""
    if not isinstance(reference, str) or reference.count("/") < 1:
        raise NotificationRejected("a reference in the notification is not Type/id")
    resource_type, resource_id = reference.rstrip("/").split("/")[-2:]
    if not resource_type[:1].isupper() or not resource_id:
        raise NotificationRejected("a reference in the notification is not Type/id")
    return f"{resource_type}/{resource_id}"


def parse_notification(
    body: bytes | Mapping[str, Any], *, subscriptions: Collection[str]
) -> Notification:
    """Check a received notification and read it; ``NotificationRejected`` if it is not ours."""
    try:
        data = orjson.loads(body) if isinstance(body, bytes) else dict(body)
    except orjson.JSONDecodeError:
        raise NotificationRejected("the body is not JSON") from None
    if not isinstance(data, dict) or data.get("resourceType") != "Bundle":
        raise NotificationRejected("a notification is a Bundle")
    if data.get("type") != "history" or not data.get("entry"):
        raise NotificationRejected("a notification is a history Bundle with entries")
    status = data["entry"][0].get("resource") or {}
    if status.get("resourceType") != "Parameters":
        raise NotificationRejected("the first entry must be the subscription status")
    params: dict[str, Any] = {}
    for parameter in status.get("parameter") or []:
        params.setdefault(parameter.get("name"), parameter)
    subscription = _reference_tail(
        (params.get("subscription") or {}).get("valueReference", {}).get("reference")
    )
    subscription_id = subscription.split("/", 1)[1]
    if subscription.split("/", 1)[0] != "Subscription" or subscription_id not in subscriptions:
        raise NotificationRejected("the notification is not for a subscription of this client")
    if (params.get("topic") or {}).get("valueCanonical") != GRANTED_DATA_TOPIC:
        raise NotificationRejected("the notification is for a topic this SDK does not know")
    if (params.get("type") or {}).get("valueCode") != "event-notification":
        raise NotificationRejected("only event notifications are sent by the vault")
    event = params.get("notification-event")
    if event is None:
        raise NotificationRejected("the notification has no event")
    parts = {p.get("name"): p for p in event.get("part") or []}
    focus = _reference_tail((parts.get("focus") or {}).get("valueReference", {}).get("reference"))
    kind: EventKind = "change"
    for ext in event.get("extension") or []:
        if ext.get("url") == EVENT_KIND and ext.get("valueCode") in (
            "access-ended",
            "access-changed",
        ):
            kind = ext["valueCode"]
    patient_id = None
    context = (parts.get("additional-context") or {}).get("valueReference", {}).get("reference")
    if context is not None:
        patient_id = _reference_tail(context).split("/", 1)[1]
    method = None
    if len(data["entry"]) > 1:
        method = (data["entry"][1].get("request") or {}).get("method")
    try:
        number = int((parts.get("event-number") or {}).get("valueString", "0"))
    except ValueError:
        raise NotificationRejected("the event number is not a number") from None
    return Notification(
        subscription_id=subscription_id,
        status=str((params.get("status") or {}).get("valueCode", "")),
        event_number=number,
        kind=kind,
        focus=focus,
        patient_id=patient_id,
        method=method,
    )


def apply_notification(
    notification: Notification,
    *,
    client: VaultClient,
    target: SyncTarget,
    synchroniser: Synchroniser,
    types: Collection[str] | None = None,
) -> str:
    """Bring ``target`` in step with one notification, fetching with the client's own token.

    A change of a type outside ``types`` (when given) is ignored. Returns what was applied,
    in one line (``"upserted Goal/123"``), for a log.
    """
    if (
        notification.kind == "change"
        and types is not None
        and notification.resource_type not in types
    ):
        return f"ignored {notification.focus} (type not synced)"
    if notification.kind != "change":
        # A grant changed or ended: the id-set comparison removes what is no longer shared.
        result = synchroniser.sync(full=True)
        return f"full sync: upserted {len(result.upserted)}, removed {len(result.removed)}"
    with target.transaction():
        try:
            data = client.read_json(notification.resource_type, notification.resource_id)
        except AccessRevoked:
            target.remove(notification.focus)
            return f"removed {notification.focus} (no longer readable)"
        target.upsert(to_model(data))
    return f"upserted {notification.focus}"


def describe_notification(notification: Notification) -> str:
    """What arrived, in one line: ``"event 3 change Goal/123 (PUT)"``."""
    what = f"event {notification.event_number} {notification.kind} {notification.focus}"
    if notification.method:
        what += f" ({notification.method})"
    if notification.patient_id and notification.kind != "change":
        what += f" for Patient/{notification.patient_id}"
    return what


Handler = Callable[[Notification], None]


class NotificationReceiver:
    """An HTTP endpoint for the vault's notifications, on ``host:port`` (0: any free port).

    Every POST must carry the subscription's secret and be a notification of one of
    ``subscriptions``; then ``handler`` runs. 200 when it succeeded; 500 when it raised,
    so the vault delivers the event again later. Use as a context manager.
    """

    def __init__(
        self,
        handler: Handler,
        *,
        secret: str,
        subscriptions: Collection[str] = (),
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self.handler = handler
        self.subscriptions: set[str] = set(subscriptions)
        self._secret = f"Bearer {secret}".encode()
        self._server = ThreadingHTTPServer((host, port), self._request_handler())
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}/notify"

    def _request_handler(self) -> type[BaseHTTPRequestHandler]:
        receiver = self

        class _Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                status = receiver._receive(self)
                self.send_response(status)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                return  # no request lines (they carry ids) in the partner's logs

        return _Handler

    def _receive(self, request: BaseHTTPRequestHandler) -> int:
        given = request.headers.get(AUTH_HEADER, "").encode()
        if not hmac.compare_digest(given, self._secret):
            return 401
        length = int(request.headers.get("content-length") or 0)
        if length > MAX_BODY:
            return 413
        try:
            notification = parse_notification(
                request.rfile.read(length), subscriptions=self.subscriptions
            )
        except NotificationRejected:
            return 400
        try:
            self.handler(notification)
        except Exception as exc:  # the vault retries; the reason stays here
            log.warning(
                "handling notification %d failed: %s", notification.event_number, type(exc).__name__
            )
            return 500
        return 200

    def start(self) -> NotificationReceiver:
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def __enter__(self) -> NotificationReceiver:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()
