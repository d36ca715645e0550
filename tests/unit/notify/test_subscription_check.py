"""What the vault accepts as a Subscription, and what it refuses (422, never ignored)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.factories import subscription
from vault.kernel.config import Settings
from vault.kernel.errors import BadRequest, Unprocessable
from vault.kernel.netguard import use_resolver
from vault.notify.subscriptions import check_subscription

READABLE = frozenset({"Goal", "CarePlan", "Consent"})


@pytest.fixture(autouse=True)
def partner_dns() -> Iterator[None]:
    """partner.example.nl has a public address (DNS lies outside this machine)."""
    with use_resolver(lambda host, port: ["93.184.215.14"] if host == "partner.example.nl" else []):
        yield


def settings(*, local_http: bool = False) -> Settings:
    return Settings(
        data_dir=Path("/nonexistent"), database_url="sqlite://", notify_allow_local_http=local_http
    )


def check(body: dict[str, Any], *, local_http: bool = False) -> Any:
    return check_subscription(body, settings(local_http=local_http), readable=READABLE)


def test_a_backport_subscription_with_type_filters_is_accepted() -> None:
    checked = check(subscription(endpoint="https://partner.example.nl/hook", types=("Goal",)))
    assert checked.endpoint == "https://partner.example.nl/hook"
    assert checked.types == ("Goal",)
    assert checked.status == "requested"


@pytest.mark.parametrize(
    "endpoint",
    [
        "http://partner.example.nl/hook",
        "http://127.0.0.1:8080/hook",  # local http only when the setting allows it
        "https://192.168.1.5/hook",
        "https://[::1]/hook",
        "https://user:pw@partner.example.nl/hook",
        "mailto:someone@example.nl",
        "/relative",
    ],
)
def test_endpoints_outside_https_to_the_internet_are_refused(endpoint: str) -> None:
    with pytest.raises(Unprocessable):
        check(subscription(endpoint=endpoint))


def test_plain_http_to_this_machine_is_allowed_when_the_setting_says_so() -> None:
    body = subscription(endpoint="http://127.0.0.1:8080/hook")
    assert check(body, local_http=True).endpoint == "http://127.0.0.1:8080/hook"
    with pytest.raises(Unprocessable):
        check(subscription(endpoint="http://partner.example.nl/hook"), local_http=True)


@pytest.mark.parametrize(
    "options",
    [
        {"criteria": "Goal?patient=Patient/1"},  # R4 classic criteria: not this vault's topic
        {"channel_type": "websocket"},
        {"payload_content": "full-resource"},
        {"payload_content": "empty"},
        {"types": ("AuditEvent",)},  # a type this client may not read
        {"status": "error"},
    ],
)
def test_what_the_vault_cannot_honour_is_refused(options: dict[str, Any]) -> None:
    with pytest.raises(Unprocessable):
        check(subscription(endpoint="https://partner.example.nl/hook", **options))


def test_invalid_fhir_is_a_bad_request() -> None:
    body = subscription(endpoint="https://partner.example.nl/hook")
    del body["reason"]
    with pytest.raises(BadRequest):
        check(body)
    with pytest.raises(BadRequest):
        check({"resourceType": "Goal"})


def test_too_many_or_malformed_headers_are_refused() -> None:
    body = subscription(endpoint="https://partner.example.nl/hook")
    body["channel"]["header"] = ["no colon here"]
    with pytest.raises(Unprocessable):
        check(body)
