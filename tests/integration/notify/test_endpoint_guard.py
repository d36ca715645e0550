"""Subscription endpoints that reach inside the vault's own network are refused (issue 12 B5).

At registration (422 OperationOutcome) and again at each delivery: a name that resolved to a
public address when the partner subscribed may point at 127.0.0.1 later (DNS rebinding).
Name resolution lies outside this machine, so the rebinding test swaps the resolver of
vault/kernel/netguard.py; the worker, its check and its connection are the real ones.
"""

from __future__ import annotations

import time
from typing import Any

import httpx
import orjson
import pytest

from tests.factories import goal, subscription
from tests.integration.notify.conftest import MAX_ATTEMPTS, WAIT, Receiver, subscribe
from tests.support.partners import share
from vault.kernel.netguard import use_resolver
from vault.testing import RegisteredClient, ThrowawayVault

PUBLIC = "93.184.215.14"  # a globally routable address (nothing connects to it here)


def _post(http: httpx.Client, endpoint: str) -> httpx.Response:
    return http.post(
        "/Subscription",
        content=orjson.dumps(subscription(endpoint=endpoint)),
        headers={"content-type": "application/fhir+json"},
    )


@pytest.mark.parametrize(
    "endpoint",
    [
        "https://127.1:{port}/hook",
        "https://localhost:{port}/hook",
        "https://2130706433:{port}/hook",
        "https://0x7f000001:{port}/hook",
        "https://localhost.:{port}/hook",
        "https://0177.0.0.1:{port}/hook",
        "https://[::1]:{port}/hook",
        "https://[::ffff:127.0.0.1]:{port}/hook",
        "https://[::ffff:7f00:1]:{port}/hook",
        "https://169.254.169.254/latest/meta-data",
        "https://[fe80::1]:{port}/hook",
        "https://224.0.0.1:{port}/hook",
        "https://0.0.0.0:{port}/hook",
        "https://100.64.0.1:{port}/hook",
        "http://localhost:{port}/hook",  # the development switch allows 127.0.0.1 only
        "https://127.0.0.1@partner.example.nl/hook",
        "https://partner.example.nl@127.0.0.1:{port}/hook",
    ],
)
def test_a_subscription_to_an_address_inside_the_network_is_refused(
    endpoint: str, partner_http: httpx.Client, receiver: Receiver
) -> None:
    port = receiver.url.split(":")[2].split("/")[0]
    response = _post(partner_http, endpoint.format(port=port))
    assert response.status_code == 422, response.text
    outcome = response.json()
    assert outcome["resourceType"] == "OperationOutcome"
    assert outcome["issue"][0]["expression"] == ["Subscription.channel.endpoint"]
    assert partner_http.get("/Subscription").json()["total"] == 0


def test_a_name_that_resolves_to_a_private_address_is_refused(partner_http: httpx.Client) -> None:
    with use_resolver(lambda host, port: ["10.1.2.3"] if host == "hooks.partner.test" else []):
        response = _post(partner_http, "https://hooks.partner.test/hook")
    assert response.status_code == 422, response.text
    assert "private" in response.json()["issue"][0]["diagnostics"]


def test_a_name_that_resolves_to_a_public_address_is_accepted(partner_http: httpx.Client) -> None:
    with use_resolver(lambda host, port: [PUBLIC]):
        response = _post(partner_http, "https://hooks.partner.test/hook")
    assert response.status_code == 201, response.text


def test_delivery_is_refused_when_the_name_points_inside_the_network_by_then(
    notify_vault: ThrowawayVault,
    partner: RegisteredClient,
    partner_http: httpx.Client,
    inwoner: str,
    receiver: Receiver,
) -> None:
    port = int(receiver.url.split(":")[2].split("/")[0])
    answers = {"rebind.partner.test": [PUBLIC]}

    def resolver(host: str, _port: int) -> list[str]:
        return answers.get(host, [])

    with use_resolver(resolver):
        mine = notify_vault.write(goal(patient_id=inwoner))
        share(notify_vault, inwoner, partner, "Goal")
        sub = subscribe(partner_http, f"https://rebind.partner.test:{port}/hook", types=("Goal",))
        # After registration the name moves to this machine, where the receiver listens.
        answers["rebind.partner.test"] = ["127.0.0.1"]
        notify_vault.write({**mine, "description": {"text": "Nooit naar binnen"}})
        status = _wait_for_error(partner_http, sub["id"])
    assert "refused" in status["error"]
    assert receiver.received.empty()


def _wait_for_error(http: httpx.Client, sub_id: str) -> dict[str, Any]:
    deadline = time.monotonic() + WAIT * MAX_ATTEMPTS
    while True:
        body: dict[str, Any] = http.get(f"/Subscription/{sub_id}").json()
        if body["status"] == "error" or time.monotonic() > deadline:
            assert body["status"] == "error", body
            return body
        time.sleep(0.05)
