"""The keys of ``jwks_uri`` clients over time: cache, refetch for a new kid, back-off.

The client's key server lies outside the vault's machine, so here it is an
``httpx.MockTransport`` that counts requests; time is a clock the test moves.
"""

from __future__ import annotations

import base64
import contextlib
import json
from typing import Any

import httpx
import pytest

from vault.oauth.keys import (
    BACKOFF_FIRST,
    BACKOFF_MAX,
    CACHE_SECONDS,
    REFETCH_INTERVAL,
    ClientKeyResolver,
    ClientKeysUnavailable,
    key_problem,
)

URI = "https://keys.partner.example/jwks.json"


class KeyServer:
    def __init__(self) -> None:
        self.kids = ["k1"]
        self.failing = False
        self.hits = 0
        self.now = 1000.0

    def handle(self, request: httpx.Request) -> httpx.Response:
        self.hits += 1
        if self.failing:
            return httpx.Response(503)
        keys = [{"kty": "EC", "crv": "P-384", "kid": kid, "x": "x", "y": "y"} for kid in self.kids]
        return httpx.Response(200, content=json.dumps({"keys": keys}))

    def resolver(self) -> ClientKeyResolver:
        http = httpx.Client(transport=httpx.MockTransport(self.handle))
        # The caching rules only; the address guard has tests of its own (test_netguard.py).
        return ClientKeyResolver(http=http, clock=lambda: self.now, guard=False)


@pytest.fixture
def server() -> KeyServer:
    return KeyServer()


def kids(resolver: ClientKeyResolver, kid: str | None = "k1") -> list[Any]:
    found = resolver.keys(client_id="c1", jwks=None, jwks_uri=URI, kid=kid)
    return [k["kid"] for k in found]


def test_keys_are_cached_until_they_are_old(server: KeyServer) -> None:
    resolver = server.resolver()
    assert kids(resolver) == ["k1"]
    server.now += CACHE_SECONDS - 1
    assert kids(resolver) == ["k1"]
    assert server.hits == 1
    server.now += 2
    assert kids(resolver) == ["k1"]
    assert server.hits == 2


def test_a_new_kid_is_taken_up_once_the_refetch_interval_has_passed(server: KeyServer) -> None:
    resolver = server.resolver()
    kids(resolver)
    server.kids = ["k1", "k2"]
    assert kids(resolver, "k2") == ["k1"]  # looked just now: no new fetch
    server.now += REFETCH_INTERVAL / 2
    assert kids(resolver, "k2") == ["k1"]
    assert server.hits == 1
    server.now += REFETCH_INTERVAL
    assert kids(resolver, "k2") == ["k1", "k2"]
    assert server.hits == 2


def test_a_failing_key_server_is_left_alone_for_a_doubling_back_off(server: KeyServer) -> None:
    resolver = server.resolver()
    server.failing = True
    waits = []
    for _ in range(8):
        with pytest.raises(ClientKeysUnavailable):
            kids(resolver)
        hits = server.hits
        with pytest.raises(ClientKeysUnavailable):
            kids(resolver)  # during the back-off: no request
        assert server.hits == hits
        wait = 0.0
        while server.hits == hits:
            server.now += 1
            wait += 1
            with contextlib.suppress(ClientKeysUnavailable):
                kids(resolver)
        waits.append(wait)
    assert waits[0] == BACKOFF_FIRST
    assert waits[1] == 2 * BACKOFF_FIRST
    assert max(waits) == BACKOFF_MAX
    server.failing = False
    server.now += BACKOFF_MAX
    assert kids(resolver) == ["k1"]


def test_the_last_good_keys_stay_in_use_while_the_key_server_fails(server: KeyServer) -> None:
    resolver = server.resolver()
    kids(resolver)
    server.failing = True
    server.now += CACHE_SECONDS + 1
    assert kids(resolver) == ["k1"]
    assert kids(resolver) == ["k1"]
    assert server.hits == 2


def test_another_address_for_the_client_is_fetched_at_once(server: KeyServer) -> None:
    resolver = server.resolver()
    kids(resolver)
    other = resolver.keys(
        client_id="c1", jwks=None, jwks_uri="https://keys.partner.example/v2", kid="k1"
    )
    assert [k["kid"] for k in other] == ["k1"]
    assert server.hits == 2


def test_an_oversized_key_set_is_a_failure() -> None:
    def huge(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=b'{"keys": [' + b" " * 200_000 + b"]}")

    resolver = ClientKeyResolver(
        http=httpx.Client(transport=httpx.MockTransport(huge)), guard=False
    )
    with pytest.raises(ClientKeysUnavailable):
        resolver.keys(client_id="c1", jwks=None, jwks_uri=URI, kid=None)


@pytest.mark.parametrize(
    ("key", "problem"),
    [
        ({"kty": "RSA", "n": "AQAB" * 10, "e": "AQAB"}, "2048"),
        ({"kty": "EC", "crv": "P-192"}, "curve"),
        ({"kty": "OKP", "crv": "Ed25519"}, "RSA and EC"),
        ({"kty": "oct", "k": "c2VjcmV0"}, "RSA and EC"),
        ({"kty": "EC", "crv": "P-256", "use": "enc"}, "signing"),
        ({"kty": "EC", "crv": "P-256", "alg": "HS256"}, "alg"),
        ({"kty": "RSA", "e": "AQAB"}, "modulus"),
    ],
)
def test_keys_that_may_not_sign_assertions(key: dict[str, Any], problem: str) -> None:
    found = key_problem(key)
    assert found is not None and problem in found


def test_strong_keys_may_sign_assertions() -> None:
    assert key_problem({"kty": "EC", "crv": "P-384", "alg": "ES384", "use": "sig"}) is None
    modulus = (1 << 2047).to_bytes(256, "big")
    n = base64.urlsafe_b64encode(modulus).decode().rstrip("=")
    assert key_problem({"kty": "RSA", "n": n, "e": "AQAB", "alg": "RS384"}) is None
