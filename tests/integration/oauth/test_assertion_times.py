"""The times in a client assertion, held to the vault's clock with a small skew.

RFC 7519 section 4.1 (``exp``, ``nbf``, ``iat``); SMART Backend Services caps ``exp`` at five
minutes ahead. The vault allows ``CLOCK_SKEW_SECONDS`` (60) either way, no more. Every
assertion here is signed with the client's own registered key.
"""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest

from tests.conftest import ServerThread
from tests.support.smart import BackendClient, client_assertion, register_backend
from vault.kernel.runtime import Runtime
from vault.oauth.client_assertion import CLOCK_SKEW_SECONDS

# Margins well clear of the edges, so a slow test machine cannot flip an answer.
INSIDE = CLOCK_SKEW_SECONDS // 2
OUTSIDE = CLOCK_SKEW_SECONDS * 3


@pytest.fixture
def partner(runtime: Runtime, vault: ServerThread) -> BackendClient:
    return register_backend(runtime, vault.url, scopes=["system/Organization.rs"])


def answer(partner: BackendClient, http: httpx.Client, **claims: Any) -> httpx.Response:
    assertion = client_assertion(
        client_id=partner.client_id, key=partner.key, token_url=partner.token_url, **claims
    )
    return partner.token_request(http, assertion=assertion)


def refused_with(response: httpx.Response, words: str) -> None:
    assert response.status_code in (400, 401), response.text
    assert response.json()["error"] == "invalid_client"
    assert words in response.json()["error_description"]


REFUSED = {
    "nbf in the future": ({"nbf": OUTSIDE}, "not valid yet"),
    "iat in the future": ({"iat": OUTSIDE}, "'iat' lies in the future"),
    "iat long ago": ({"iat": -(300 + OUTSIDE)}, "'iat' is too long ago"),
    "nbf that is no number": ({"nbf": "soon"}, "'nbf' must be a number"),
    "iat that is no number": ({"iat": True}, "'iat' must be a number"),
}


@pytest.mark.parametrize("case", sorted(REFUSED))
def test_an_assertion_outside_the_clock_skew_is_refused(
    partner: BackendClient, http: httpx.Client, case: str
) -> None:
    offsets, words = REFUSED[case]
    now = int(time.time())
    claims = {
        k: (now + v if isinstance(v, int) and not isinstance(v, bool) else v)
        for k, v in offsets.items()
    }
    refused_with(answer(partner, http, **claims), words)


@pytest.mark.parametrize(
    "offsets",
    [
        {"nbf": INSIDE},
        {"iat": INSIDE},
        {"iat": -INSIDE, "nbf": -INSIDE},
        {"iat": -200},  # made a while ago, still within its lifetime
    ],
)
def test_an_assertion_within_the_clock_skew_is_accepted(
    partner: BackendClient, http: httpx.Client, offsets: dict[str, int]
) -> None:
    now = int(time.time())
    response = answer(partner, http, **{k: now + v for k, v in offsets.items()})
    assert response.status_code == 200, response.text


def test_an_assertion_expired_within_the_skew_is_still_accepted_but_not_beyond(
    partner: BackendClient, http: httpx.Client
) -> None:
    assert answer(partner, http, lifetime=-INSIDE).status_code == 200
    refused_with(answer(partner, http, lifetime=-OUTSIDE), "expired")
