"""Change notifications against a real vault, a real OAuth client and a real receiver."""

from __future__ import annotations

import time
from typing import Any

import httpx
import orjson

from tests.factories import careplan, goal, patient
from tests.integration.notify.conftest import (
    MAX_ATTEMPTS,
    WAIT,
    Receiver,
    fhir,
    register,
    subscribe,
)
from tests.support.partners import share
from vault.page.mydata import erase_vault
from vault.testing import RegisteredClient, ThrowawayVault

SECRET = "s3cret-of-the-partner"


def test_a_granted_goal_change_reaches_the_partner_as_an_id_only_notification(
    notify_vault: ThrowawayVault,
    partner: RegisteredClient,
    partner_http: httpx.Client,
    inwoner: str,
    receiver: Receiver,
) -> None:
    mine = notify_vault.write(goal(patient_id=inwoner, text="Ik wil weer werken"))
    share(notify_vault, inwoner, partner, "Goal")
    sub = subscribe(partner_http, receiver.url, types=("Goal",))

    mine["description"] = {"text": "Ik wil vier dagen per week werken"}
    notify_vault.write(mine)

    got = receiver.next()
    assert got.headers["Authorization"] == f"Bearer {SECRET}"
    assert got.body["resourceType"] == "Bundle"
    assert got.body["type"] == "history"
    params = got.parameters
    assert params["subscription"]["valueReference"]["reference"].endswith(
        f"/Subscription/{sub['id']}"
    )
    assert params["type"]["valueCode"] == "event-notification"
    assert got.focus == f"{notify_vault.url}/fhir/Goal/{mine['id']}"
    # id-only: the changed resource is named, never sent.
    assert all("resource" not in entry for entry in got.body["entry"][1:])
    assert "vier dagen" not in orjson.dumps(got.body).decode()

    fetched = partner_http.get(got.focus.removeprefix(f"{notify_vault.url}/fhir"))
    assert fetched.status_code == 200
    assert fetched.json()["description"]["text"] == "Ik wil vier dagen per week werken"


def test_a_change_outside_the_grant_is_never_notified(
    notify_vault: ThrowawayVault,
    partner: RegisteredClient,
    partner_http: httpx.Client,
    inwoner: str,
    receiver: Receiver,
) -> None:
    granted = notify_vault.write(goal(patient_id=inwoner))
    share(notify_vault, inwoner, partner, "Goal")  # goals only, not the plan
    other = str(notify_vault.write(patient(given="Erik"))["id"])
    subscribe(partner_http, receiver.url)  # every type the partner may read

    notify_vault.write(careplan(patient_id=inwoner))  # not granted: a plan
    notify_vault.write(goal(patient_id=other))  # not granted: another inwoner's goal
    granted["description"] = {"text": "Bijgewerkt"}
    notify_vault.write(granted)

    # Events are delivered in order: if either earlier change had been sent, it would be
    # the first to arrive.
    first = receiver.next()
    assert first.focus.endswith(f"/Goal/{granted['id']}")
    assert first.event_number == 1
    assert receiver.received.empty()


def test_delivery_is_retried_until_the_partner_accepts_it(
    notify_vault: ThrowawayVault,
    partner: RegisteredClient,
    partner_http: httpx.Client,
    inwoner: str,
    receiver: Receiver,
) -> None:
    mine = notify_vault.write(goal(patient_id=inwoner))
    share(notify_vault, inwoner, partner, "Goal")
    subscribe(partner_http, receiver.url, types=("Goal",))
    receiver.statuses = [500, 503]

    notify_vault.write({**mine, "description": {"text": "Eerste"}})
    attempts = [receiver.next() for _ in range(3)]
    assert {a.event_number for a in attempts} == {1}
    assert {a.focus for a in attempts} == {attempts[0].focus}

    notify_vault.write({**mine, "description": {"text": "Tweede"}})
    # The accepted event is not sent again: the next one to arrive is the next event.
    assert receiver.next().event_number == 2


def test_a_subscription_whose_endpoint_keeps_failing_goes_to_error(
    notify_vault: ThrowawayVault,
    partner: RegisteredClient,
    partner_http: httpx.Client,
    inwoner: str,
    receiver: Receiver,
) -> None:
    mine = notify_vault.write(goal(patient_id=inwoner))
    share(notify_vault, inwoner, partner, "Goal")
    sub = subscribe(partner_http, receiver.url, types=("Goal",))
    receiver.statuses = [500] * MAX_ATTEMPTS

    notify_vault.write({**mine, "description": {"text": "Nooit aangekomen"}})
    for _ in range(MAX_ATTEMPTS):
        receiver.next()
    status = _wait_for_status(partner_http, sub["id"], "error")
    assert "HTTP 500" in status["error"]

    # The owner switches it on again: the event that failed is delivered after all.
    resumed = {**status, "status": "requested"}
    resumed.pop("error")
    answer = partner_http.put(
        f"/Subscription/{sub['id']}",
        content=orjson.dumps(resumed),
        headers={"content-type": "application/fhir+json"},
    )
    assert answer.status_code == 200, answer.text
    assert answer.json()["status"] == "active"
    assert receiver.next().event_number == 1


def test_revoking_the_grant_notifies_the_partner_and_its_next_read_fails(
    notify_vault: ThrowawayVault,
    partner: RegisteredClient,
    partner_http: httpx.Client,
    inwoner: str,
    receiver: Receiver,
) -> None:
    mine = notify_vault.write(goal(patient_id=inwoner))
    consent_id = share(notify_vault, inwoner, partner, "Goal")
    subscribe(partner_http, receiver.url, types=("Goal",))
    assert partner_http.get(f"/Goal/{mine['id']}").status_code == 200

    notify_vault.set_consent_status(consent_id, "inactive")

    got = receiver.next()
    event = got.parameters["notification-event"]
    assert event["extension"][0]["valueCode"] == "access-ended"
    parts = {p["name"]: p for p in event["part"]}
    assert parts["focus"]["valueReference"]["reference"].endswith(f"/Consent/{consent_id}")
    assert parts["additional-context"]["valueReference"]["reference"].endswith(
        f"/Patient/{inwoner}"
    )
    assert len(got.body["entry"]) == 1  # nothing to fetch
    assert partner_http.get(f"/Goal/{mine['id']}").status_code == 404


def test_another_client_can_neither_read_nor_find_nor_remove_a_subscription(
    notify_vault: ThrowawayVault, partner_http: httpx.Client, receiver: Receiver
) -> None:
    sub = subscribe(partner_http, receiver.url)
    with fhir(notify_vault, register(notify_vault)) as stranger:
        missing = stranger.get("/Subscription/does-not-exist")
        hidden = stranger.get(f"/Subscription/{sub['id']}")
        assert hidden.status_code == missing.status_code == 404
        assert hidden.json()["issue"][0]["diagnostics"].replace(sub["id"], "X") == (
            missing.json()["issue"][0]["diagnostics"].replace("does-not-exist", "X")
        )
        assert stranger.get("/Subscription").json()["total"] == 0
        assert stranger.delete(f"/Subscription/{sub['id']}").status_code == 404
    assert partner_http.get(f"/Subscription/{sub['id']}").status_code == 200


def test_a_client_without_the_subscription_scope_cannot_subscribe(
    notify_vault: ThrowawayVault, receiver: Receiver
) -> None:
    plain = register(notify_vault, scopes=("system/Goal.rs",))
    with fhir(notify_vault, plain) as http:
        response = _post(http, _body(receiver.url))
    assert response.status_code == 403
    assert response.json()["resourceType"] == "OperationOutcome"


def test_bad_subscriptions_are_refused_with_an_operation_outcome_and_change_nothing(
    partner_http: httpx.Client, receiver: Receiver
) -> None:
    cases: list[tuple[int, Any]] = [
        (400, b"{not json"),
        (400, {"resourceType": "Goal"}),
        (400, {k: v for k, v in _body(receiver.url).items() if k != "status"}),
        (422, _body("http://partner.example.nl/hook")),  # plain http, not local
        (422, _body("https://10.0.0.7/hook")),  # a private address
        (422, _body("ftp://partner.example.nl/hook")),
        (422, _body(receiver.url, criteria="http://example.org/SubscriptionTopic/other")),
        (422, _body(receiver.url, channel_type="email")),
        (422, _body(receiver.url, payload_content="full-resource")),
        (422, _body(receiver.url, types=("AuditEvent",))),  # not readable by this client
    ]
    for status, body in cases:
        response = _post(partner_http, body)
        assert response.status_code == status, (body, response.text)
        assert response.json()["resourceType"] == "OperationOutcome"
    assert partner_http.get("/Subscription").json()["total"] == 0


def test_the_capability_statement_declares_subscriptions(partner_http: httpx.Client) -> None:
    statement = partner_http.get("/metadata").json()
    (entry,) = [r for r in statement["rest"][0]["resource"] if r["type"] == "Subscription"]
    assert {i["code"] for i in entry["interaction"]} == {
        "read",
        "search-type",
        "create",
        "update",
        "delete",
    }


def _body(endpoint: str, **options: Any) -> dict[str, Any]:
    from tests.factories import subscription

    return subscription(endpoint=endpoint, **options)


def _post(http: httpx.Client, body: Any) -> httpx.Response:
    content = body if isinstance(body, bytes) else orjson.dumps(body)
    return http.post(
        "/Subscription", content=content, headers={"content-type": "application/fhir+json"}
    )


def _wait_for_status(http: httpx.Client, sub_id: str, status: str) -> dict[str, Any]:
    """Poll until the Subscription reaches ``status`` (the worker sets it after the answer)."""
    deadline = time.monotonic() + WAIT
    while True:
        body: dict[str, Any] = http.get(f"/Subscription/{sub_id}").json()
        if body["status"] == status or time.monotonic() > deadline:
            assert body["status"] == status
            return body
        time.sleep(0.05)


def test_deleting_the_consent_ends_the_grant_for_the_partner(
    notify_vault: ThrowawayVault,
    partner: RegisteredClient,
    partner_http: httpx.Client,
    inwoner: str,
    receiver: Receiver,
) -> None:
    consent_id = share(notify_vault, inwoner, partner, "Goal")
    subscribe(partner_http, receiver.url, types=("Goal",))

    notify_vault.delete("Consent", consent_id)

    event = receiver.next().parameters["notification-event"]
    assert event["extension"][0]["valueCode"] == "access-ended"


def test_erasing_the_vault_tells_every_grantee_that_access_ended(
    notify_vault: ThrowawayVault,
    partner: RegisteredClient,
    partner_http: httpx.Client,
    inwoner: str,
    receiver: Receiver,
) -> None:
    notify_vault.write(goal(patient_id=inwoner))
    share(notify_vault, inwoner, partner, "Goal")
    subscribe(partner_http, receiver.url, types=("Goal",))
    assert notify_vault.runtime is not None

    with notify_vault.runtime.db.write() as conn:
        erase_vault(conn, patient_id=inwoner)

    got = receiver.next()
    parts = {p["name"]: p for p in got.parameters["notification-event"]["part"]}
    assert parts["additional-context"]["valueReference"]["reference"].endswith(
        f"/Patient/{inwoner}"
    )
    assert got.parameters["notification-event"]["extension"][0]["valueCode"] == "access-ended"
