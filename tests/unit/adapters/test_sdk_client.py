"""The SDK's client against httpx.MockTransport: auth, renewal, retries, paging, revocation."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs

import httpx
import pytest
from joserfc import jwt
from joserfc.jwk import ECKey, RSAKey

from adapters.sdk import (
    AccessRevoked,
    AuthenticationFailed,
    RetryPolicy,
    VaultClient,
    VaultUnavailable,
)

BASE = "https://vault.test"
TOKEN_URL = f"{BASE}/oauth/token"
Handler = Callable[[httpx.Request], httpx.Response]


def goal(goal_id: str, version: str = "1") -> dict[str, Any]:
    return {
        "resourceType": "Goal",
        "id": goal_id,
        "meta": {"versionId": version, "lastUpdated": "2026-11-01T10:00:00.000001Z"},
        "lifecycleStatus": "active",
        "description": {"text": f"doel {goal_id}"},
        "subject": {"reference": "Patient/p1"},
    }


class FakeVault:
    """Discovery and a token endpoint; FHIR answers come from ``fhir``."""

    def __init__(self, fhir: Handler, *, expires_in: int = 300) -> None:
        self.fhir = fhir
        self.expires_in = expires_in
        self.assertions: list[dict[str, Any]] = []
        self.issued = 0
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if request.url.path == "/.well-known/smart-configuration":
            return httpx.Response(200, json={"token_endpoint": TOKEN_URL})
        if request.url.path == "/oauth/token":
            form = parse_qs(request.content.decode())
            self.assertions.append(
                {
                    "form": form,
                    "token": jwt.decode(form["client_assertion"][0], KEY, algorithms=["ES384"]),
                }
            )
            self.issued += 1
            return httpx.Response(
                200,
                json={
                    "access_token": f"token-{self.issued}",
                    "token_type": "Bearer",
                    "expires_in": self.expires_in,
                    "scope": form["scope"][0],
                },
            )
        return self.fhir(request)


KEY = ECKey.generate_key("P-384", parameters={"kid": "k1"})


def make_client(vault: FakeVault, **options: Any) -> tuple[VaultClient, list[float]]:
    slept: list[float] = []
    options.setdefault("rng", lambda: 1.0)
    client = VaultClient(
        BASE,
        "client-1",
        KEY,
        http=httpx.Client(transport=httpx.MockTransport(vault)),
        scopes=["system/Goal.rs"],
        sleep=slept.append,
        **options,
    )
    return client, slept


def ok_goal(request: httpx.Request) -> httpx.Response:
    return httpx.Response(200, json=goal(request.url.path.rsplit("/", 1)[1]))


def test_client_assertion_follows_backend_services() -> None:
    vault = FakeVault(ok_goal)
    client, _ = make_client(vault)
    client.read("Goal", "g1")
    assert len(vault.assertions) == 1
    sent = vault.assertions[0]
    form, token = sent["form"], sent["token"]
    assert form["grant_type"] == ["client_credentials"]
    assert form["scope"] == ["system/Goal.rs"]
    assert form["client_assertion_type"] == [
        "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
    ]
    assert token.header["alg"] == "ES384" and token.header["kid"] == "k1"
    claims = token.claims
    assert claims["iss"] == claims["sub"] == "client-1"
    assert claims["aud"] == TOKEN_URL
    assert 0 < claims["exp"] - time.time() <= 300
    fhir_request = vault.requests[-1]
    assert fhir_request.headers["authorization"] == "Bearer token-1"


def test_rsa_key_signs_rs384_with_a_new_jti_each_time() -> None:
    rsa = RSAKey.generate_key(2048)
    seen: list[dict[str, Any]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/oauth/token":
            form = parse_qs(request.content.decode())
            seen.append(jwt.decode(form["client_assertion"][0], rsa, algorithms=["RS384"]).claims)
            return httpx.Response(200, json={"access_token": "t", "expires_in": 1})
        if request.url.path.endswith("smart-configuration"):
            return httpx.Response(200, json={"token_endpoint": TOKEN_URL})
        return ok_goal(request)

    client = VaultClient(
        BASE, "c", rsa, http=httpx.Client(transport=httpx.MockTransport(handler)), scopes=["x"]
    )
    client.read("Goal", "a")
    client.read("Goal", "b")  # a token of 1 second is renewed at once
    assert len(seen) == 2
    assert seen[0]["jti"] != seen[1]["jti"]


def test_token_is_cached_and_renewed_shortly_before_it_expires() -> None:
    now = [1000.0]
    vault = FakeVault(ok_goal, expires_in=300)
    client, _ = make_client(vault, monotonic=lambda: now[0])
    client.read("Goal", "a")
    client.read("Goal", "b")
    assert vault.issued == 1
    now[0] += 300 - 31
    client.read("Goal", "c")
    assert vault.issued == 1
    now[0] += 2  # inside the renewal margin
    client.read("Goal", "d")
    assert vault.issued == 2
    assert vault.requests[-1].headers["authorization"] == "Bearer token-2"


def test_a_401_renews_the_token_once_and_retries() -> None:
    def fhir(request: httpx.Request) -> httpx.Response:
        if request.headers["authorization"] == "Bearer token-1":
            return httpx.Response(401, json={"resourceType": "OperationOutcome", "issue": []})
        return ok_goal(request)

    vault = FakeVault(fhir)
    client, _ = make_client(vault)
    assert client.read("Goal", "g1").id == "g1"
    assert vault.issued == 2


def test_a_second_401_is_not_retried_forever() -> None:
    vault = FakeVault(lambda _r: httpx.Response(401, json={}))
    client, _ = make_client(vault)
    with pytest.raises(Exception, match="401"):
        client.read("Goal", "g1")
    assert vault.issued == 2


def test_refused_assertion_raises_authentication_failed() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/oauth/token":
            return httpx.Response(
                401, json={"error": "invalid_client", "error_description": "Unknown client"}
            )
        return httpx.Response(200, json={"token_endpoint": TOKEN_URL})

    client = VaultClient(
        BASE, "c", KEY, http=httpx.Client(transport=httpx.MockTransport(handler)), scopes=["x"]
    )
    with pytest.raises(AuthenticationFailed) as caught:
        client.read("Goal", "g1")
    assert caught.value.error == "invalid_client"


def test_retries_429_and_5xx_with_exponential_backoff() -> None:
    answers = iter([503, 502, 429])

    def fhir(request: httpx.Request) -> httpx.Response:
        status = next(answers, 200)
        return ok_goal(request) if status == 200 else httpx.Response(status)

    vault = FakeVault(fhir)
    client, slept = make_client(vault, retry=RetryPolicy(attempts=4, base=0.5, cap=30))
    assert client.read("Goal", "g1").id == "g1"
    assert slept == [0.5, 1.0, 2.0]


def test_backoff_has_jitter() -> None:
    answers = iter([503, 503])

    def fhir(request: httpx.Request) -> httpx.Response:
        status = next(answers, 200)
        return ok_goal(request) if status == 200 else httpx.Response(status)

    client, slept = make_client(FakeVault(fhir), rng=lambda: 0.25)
    client.read("Goal", "g1")
    assert slept == [0.125, 0.25]


def test_retry_after_is_honoured_and_capped() -> None:
    answers = iter([("7", 429), ("3600", 503)])

    def fhir(request: httpx.Request) -> httpx.Response:
        item = next(answers, None)
        if item is None:
            return ok_goal(request)
        return httpx.Response(item[1], headers={"retry-after": item[0]})

    client, slept = make_client(FakeVault(fhir), retry=RetryPolicy(cap=60))
    client.read("Goal", "g1")
    assert slept == [7.0, 60.0]


def test_retries_are_bounded() -> None:
    vault = FakeVault(lambda _r: httpx.Response(503))
    client, slept = make_client(vault, retry=RetryPolicy(attempts=3))
    with pytest.raises(VaultUnavailable):
        client.read("Goal", "g1")
    assert len(slept) == 3


def test_connection_errors_are_retried() -> None:
    failures = iter([True, True])

    def fhir(request: httpx.Request) -> httpx.Response:
        if next(failures, False):
            raise httpx.ConnectError("refused", request=request)
        return ok_goal(request)

    client, slept = make_client(FakeVault(fhir))
    assert client.read("Goal", "g1").id == "g1"
    assert len(slept) == 2


def test_client_errors_are_not_retried() -> None:
    calls = []

    def fhir(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        return httpx.Response(400, json={"resourceType": "OperationOutcome", "issue": []})

    client, slept = make_client(FakeVault(fhir))
    with pytest.raises(Exception, match="400"):
        client.read("Goal", "g1")
    assert len(calls) == 1 and slept == []


def test_paging_follows_next_links_and_returns_typed_resources() -> None:
    pages = {
        "1": ([goal("a"), goal("b")], f"{BASE}/fhir/Goal?patient=p1&_cursor=2"),
        "2": ([goal("c")], None),
    }

    def fhir(request: httpx.Request) -> httpx.Response:
        page = request.url.params.get("_cursor", "1")
        if page == "1":
            assert request.url.params["patient"] == "p1"
        entries, next_url = pages[page]
        bundle: dict[str, Any] = {
            "resourceType": "Bundle",
            "type": "searchset",
            "entry": [{"resource": e, "search": {"mode": "match"}} for e in entries],
            "link": [{"relation": "self", "url": str(request.url)}],
        }
        if next_url:
            bundle["link"].append({"relation": "next", "url": next_url})
        return httpx.Response(200, json=bundle)

    client, _ = make_client(FakeVault(fhir))
    found = list(client.search("Goal", {"patient": "p1"}))
    assert [g.id for g in found] == ["a", "b", "c"]
    assert type(found[0]).__module__ == "fhir.resources.R4B.goal"


@pytest.mark.parametrize("status", [404, 410])
def test_read_of_a_resource_no_longer_granted_raises_access_revoked(status: int) -> None:
    client, _ = make_client(FakeVault(lambda _r: httpx.Response(status, json={})))
    with pytest.raises(AccessRevoked) as caught:
        client.read("Goal", "g1")
    assert caught.value.references == ["Goal/g1"]
    assert caught.value.status == status
