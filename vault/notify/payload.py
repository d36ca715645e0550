"""The id-only notification Bundle (Subscriptions R5 Backport IG, R4 profiles).

``backport-subscription-notification-r4``: a ``history`` Bundle whose first entry is a
``backport-subscription-status-r4`` Parameters resource (subscription, topic, status,
type, events-since-subscription-start, one notification-event). For a change, a second
entry names the resource by ``fullUrl`` and ``request`` only: no resource body ever leaves
the vault in a notification, the partner fetches it with its own token.

A change of the grant itself (``access-ended``, ``access-changed``) has the Consent as its
focus, the inwoner's Patient as additional-context, and says which it is in the
``EVENT_KIND`` extension of the notification-event. No second entry: the Consent may
already be gone.

Pure: no database, no web framework.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from vault.kernel.fhirdata import format_instant
from vault.notify.topic import EVENT_KIND, GRANTED_DATA_TOPIC, NOTIFICATION_PROFILE, STATUS_PROFILE

__all__ = ["Event", "notification_bundle"]

_METHODS = {"create": ("PUT", "201"), "update": ("PUT", "200"), "delete": ("DELETE", "204")}


@dataclass(frozen=True, slots=True)
class Event:
    number: int
    timestamp: int  # microseconds since the epoch
    kind: str  # change | access-ended | access-changed
    resource_type: str
    resource_id: str
    action: str  # create | update | delete
    patient_id: str | None = None


def notification_bundle(
    *,
    fhir_base: str,
    subscription_id: str,
    status: str,
    event: Event,
    now: int,
) -> dict[str, Any]:
    # Long on purpose: one notification Bundle document, as the Subscriptions Backport lays it out.
    focus = f"{fhir_base}/{event.resource_type}/{event.resource_id}"
    parts: list[dict[str, Any]] = [
        {"name": "event-number", "valueString": str(event.number)},
        {"name": "timestamp", "valueInstant": format_instant(event.timestamp)},
        {"name": "focus", "valueReference": {"reference": focus}},
    ]
    notification_event: dict[str, Any] = {"name": "notification-event", "part": parts}
    if event.kind != "change":
        if event.patient_id is not None:
            parts.append(
                {
                    "name": "additional-context",
                    "valueReference": {"reference": f"{fhir_base}/Patient/{event.patient_id}"},
                }
            )
        notification_event["extension"] = [{"url": EVENT_KIND, "valueCode": event.kind}]
    status_id = str(uuid.uuid4())
    subscription_url = f"{fhir_base}/Subscription/{subscription_id}"
    entries: list[dict[str, Any]] = [
        {
            "fullUrl": f"urn:uuid:{status_id}",
            "resource": {
                "resourceType": "Parameters",
                "id": status_id,
                "meta": {"profile": [STATUS_PROFILE]},
                "parameter": [
                    {"name": "subscription", "valueReference": {"reference": subscription_url}},
                    {"name": "topic", "valueCanonical": GRANTED_DATA_TOPIC},
                    {"name": "status", "valueCode": status},
                    {"name": "type", "valueCode": "event-notification"},
                    {"name": "events-since-subscription-start", "valueString": str(event.number)},
                    notification_event,
                ],
            },
            "request": {"method": "GET", "url": f"{subscription_url}/$status"},
            "response": {"status": "200"},
        }
    ]
    if event.kind == "change":
        method, answer = _METHODS.get(event.action, ("PUT", "200"))
        entries.append(
            {
                "fullUrl": focus,
                "request": {"method": method, "url": f"{event.resource_type}/{event.resource_id}"},
                "response": {"status": answer},
            }
        )
    return {
        "resourceType": "Bundle",
        "id": str(uuid.uuid4()),
        "meta": {"profile": [NOTIFICATION_PROFILE]},
        "type": "history",
        "timestamp": format_instant(now),
        "entry": entries,
    }
