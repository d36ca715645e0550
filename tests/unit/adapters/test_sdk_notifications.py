"""The SDK reads what the vault sends, refuses what is not for it, and guards its receiver."""

from __future__ import annotations

import queue
from typing import Any

import httpx
import orjson
import pytest

from adapters.sdk import (
    GRANTED_DATA_TOPIC,
    Notification,
    NotificationReceiver,
    NotificationRejected,
    parse_notification,
    subscription_resource,
)
from vault.notify.payload import Event, notification_bundle
from vault.notify.topic import GRANTED_DATA_TOPIC as VAULT_TOPIC

BASE = "https://vault.example.nl/fhir"


def sent(*, subscription_id: str = "s-1", **options: Any) -> dict[str, Any]:
    """A notification exactly as the vault builds it."""
    values: dict[str, Any] = {
        "number": 3,
        "timestamp": 0,
        "kind": "change",
        "resource_type": "Goal",
        "resource_id": "g-1",
        "action": "update",
        "patient_id": "p-1",
    }
    values.update(options)
    return notification_bundle(
        fhir_base=BASE,
        subscription_id=subscription_id,
        status="active",
        event=Event(**values),
        now=0,
    )


def test_the_sdk_and_the_vault_agree_on_the_topic() -> None:
    assert GRANTED_DATA_TOPIC == VAULT_TOPIC


def test_a_change_notification_is_read_as_the_resource_to_fetch() -> None:
    notification = parse_notification(orjson.dumps(sent()), subscriptions={"s-1"})
    assert notification == Notification(
        subscription_id="s-1",
        status="active",
        event_number=3,
        kind="change",
        focus="Goal/g-1",
        patient_id=None,
        method="PUT",
    )
    assert (notification.resource_type, notification.resource_id) == ("Goal", "g-1")


def test_an_ended_grant_is_read_with_its_inwoner() -> None:
    body = sent(kind="access-ended", resource_type="Consent", resource_id="c-1")
    notification = parse_notification(body, subscriptions={"s-1"})
    assert notification.kind == "access-ended"
    assert notification.focus == "Consent/c-1"
    assert notification.patient_id == "p-1"


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        orjson.dumps({"resourceType": "Goal"}),
        orjson.dumps({"resourceType": "Bundle", "type": "searchset", "entry": [{}]}),
        orjson.dumps(sent(subscription_id="someone-elses")),
    ],
)
def test_what_is_not_a_notification_of_mine_is_rejected(body: bytes) -> None:
    with pytest.raises(NotificationRejected):
        parse_notification(body, subscriptions={"s-1"})


def test_a_subscription_resource_asks_for_id_only_with_a_secret_header() -> None:
    resource = subscription_resource("https://partner.example.nl/hook", secret="x", types=["Goal"])
    assert resource["criteria"] == GRANTED_DATA_TOPIC
    assert resource["channel"]["_payload"]["extension"][0]["valueCode"] == "id-only"
    assert resource["channel"]["header"] == ["Authorization: Bearer x"]
    assert resource["_criteria"]["extension"][0]["valueString"] == "Goal?"


def test_the_receiver_takes_only_calls_with_the_secret_for_its_subscriptions() -> None:
    handled: queue.Queue[Notification] = queue.Queue()
    with NotificationReceiver(handled.put, secret="right", subscriptions={"s-1"}) as receiver:

        def post(body: Any, secret: str) -> int:
            return httpx.post(
                receiver.url,
                content=orjson.dumps(body),
                headers={"authorization": f"Bearer {secret}"},
            ).status_code

        assert post(sent(), "wrong") == 401
        assert post(sent(subscription_id="other"), "right") == 400
        assert handled.empty()
        assert post(sent(), "right") == 200
        assert handled.get_nowait().focus == "Goal/g-1"


def test_the_receiver_answers_500_when_handling_fails_so_the_vault_retries() -> None:
    def fail(_notification: Notification) -> None:
        raise RuntimeError("partner database down")

    with NotificationReceiver(fail, secret="s", subscriptions={"s-1"}) as receiver:
        response = httpx.post(
            receiver.url, content=orjson.dumps(sent()), headers={"authorization": "Bearer s"}
        )
    assert response.status_code == 500
