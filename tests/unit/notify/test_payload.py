"""The id-only notification Bundle of the Subscriptions Backport IG (R4 profiles)."""

from __future__ import annotations

from typing import Any

from vault.notify.payload import Event, notification_bundle
from vault.notify.topic import EVENT_KIND, GRANTED_DATA_TOPIC, NOTIFICATION_PROFILE

BASE = "https://vault.example.nl/fhir"


def event(**options: Any) -> Event:
    values: dict[str, Any] = {
        "number": 7,
        "timestamp": 1_700_000_000_000_000,
        "kind": "change",
        "resource_type": "Goal",
        "resource_id": "g-1",
        "action": "update",
        "patient_id": "p-1",
    }
    values.update(options)
    return Event(**values)


def build(**options: Any) -> dict[str, Any]:
    return notification_bundle(
        fhir_base=BASE, subscription_id="s-1", status="active", event=event(**options), now=0
    )


def parameters(bundle: dict[str, Any]) -> dict[str, Any]:
    return {p["name"]: p for p in bundle["entry"][0]["resource"]["parameter"]}


def test_a_change_notification_names_the_resource_and_carries_no_body() -> None:
    bundle = build()
    assert bundle["type"] == "history"
    assert bundle["meta"]["profile"] == [NOTIFICATION_PROFILE]
    params = parameters(bundle)
    assert params["subscription"]["valueReference"]["reference"] == f"{BASE}/Subscription/s-1"
    assert params["topic"]["valueCanonical"] == GRANTED_DATA_TOPIC
    assert params["type"]["valueCode"] == "event-notification"
    assert params["events-since-subscription-start"]["valueString"] == "7"
    parts = {p["name"]: p for p in params["notification-event"]["part"]}
    assert parts["focus"]["valueReference"]["reference"] == f"{BASE}/Goal/g-1"
    assert "additional-context" not in parts  # a change names no inwoner
    (_, changed) = bundle["entry"]
    assert changed == {
        "fullUrl": f"{BASE}/Goal/g-1",
        "request": {"method": "PUT", "url": "Goal/g-1"},
        "response": {"status": "200"},
    }


def test_a_deletion_is_a_delete_entry() -> None:
    (_, changed) = build(action="delete")["entry"]
    assert changed["request"]["method"] == "DELETE"


def test_an_ended_grant_names_the_consent_and_the_inwoner_and_nothing_to_fetch() -> None:
    bundle = build(kind="access-ended", resource_type="Consent", resource_id="c-1")
    assert len(bundle["entry"]) == 1
    event_param = parameters(bundle)["notification-event"]
    assert event_param["extension"] == [{"url": EVENT_KIND, "valueCode": "access-ended"}]
    parts = {p["name"]: p for p in event_param["part"]}
    assert parts["focus"]["valueReference"]["reference"] == f"{BASE}/Consent/c-1"
    assert parts["additional-context"]["valueReference"]["reference"] == f"{BASE}/Patient/p-1"
