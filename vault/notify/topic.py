"""The one subscription topic this vault offers, and the canonical URLs of the backport.

Subscriptions follow the FHIR Subscriptions R5 Backport IG (STU 1.1) for R4
(https://hl7.org/fhir/uv/subscriptions-backport/): topic-based, ``Subscription.criteria`` is
the topic's canonical URL, ``channel.payload`` carries the ``backport-payload-content``
extension (this vault sends ``id-only`` and nothing else), notifications are ``history``
Bundles led by a ``backport-subscription-status-r4`` Parameters resource.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "EVENT_KIND",
    "FILTER_CRITERIA",
    "GRANTED_DATA_TOPIC",
    "NOTIFICATION_PROFILE",
    "PAYLOAD_CONTENT",
    "STATUS_PROFILE",
    "SUBSCRIPTION_PROFILE",
    "subscription_capability",
]

BACKPORT = "http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition"
SUBSCRIPTION_PROFILE = f"{BACKPORT}/backport-subscription"
NOTIFICATION_PROFILE = f"{BACKPORT}/backport-subscription-notification-r4"
STATUS_PROFILE = f"{BACKPORT}/backport-subscription-status-r4"
PAYLOAD_CONTENT = f"{BACKPORT}/backport-payload-content"
FILTER_CRITERIA = f"{BACKPORT}/backport-filter-criteria"
TOPIC_CANONICAL = f"{BACKPORT}/backport-topic-canonical"

# "Something you may see changed": a resource inside your grant was created, updated or
# deleted, or the grant itself changed or ended.
GRANTED_DATA_TOPIC = "https://regiekluis.nl/fhir/SubscriptionTopic/granted-data"
# On a notification-event: what happened to the grant (access-ended, access-changed).
EVENT_KIND = "https://regiekluis.nl/fhir/StructureDefinition/notification-event-kind"


def subscription_capability() -> dict[str, Any]:
    """The CapabilityStatement entry of ``Subscription`` (only what ``notify/router.py`` does)."""
    return {
        "type": "Subscription",
        "documentation": "Change notifications (Subscriptions R5 Backport, rest-hook, id-only) "
        "for what the inwoner granted you; a client sees only its own Subscriptions.",
        "supportedProfile": [SUBSCRIPTION_PROFILE],
        "extension": [{"url": TOPIC_CANONICAL, "valueCanonical": GRANTED_DATA_TOPIC}],
        "interaction": [
            {"code": code} for code in ("read", "search-type", "create", "update", "delete")
        ],
        "versioning": "versioned",
        "readHistory": False,
        "updateCreate": False,
        "conditionalCreate": False,
        "conditionalRead": "not-supported",
        "conditionalUpdate": False,
        "conditionalDelete": "not-supported",
        "searchParam": [],
    }
