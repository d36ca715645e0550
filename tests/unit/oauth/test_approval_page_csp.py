"""The approval page's CSP ``form-action``: 'self' plus the origin of the grant's redirect
URI, and never anything wider (CSP Level 3, sections 2.3.1 and 6.3.1)."""

from __future__ import annotations

import pytest
from starlette.responses import Response

from vault.oauth.router import _security_headers


def form_action(redirect_uri: str | None) -> str:
    response = Response()
    _security_headers(response, redirect_uri=redirect_uri)
    policy = response.headers["content-security-policy"]
    return next(p.strip() for p in policy.split(";") if p.strip().startswith("form-action"))


@pytest.mark.parametrize(
    ("redirect_uri", "expected"),
    [
        ("http://127.0.0.1:8976/callback", "form-action 'self' http://127.0.0.1:8976"),
        ("https://app.example/cb?from=vault", "form-action 'self' https://app.example"),
        ("http://[::1]:9000/cb", "form-action 'self' http://[::1]:9000"),
        ("nl.example.app:/callback", "form-action 'self' nl.example.app:"),
        (None, "form-action 'self'"),
    ],
)
def test_the_redirect_origin_is_allowed_as_a_form_target(
    redirect_uri: str | None, expected: str
) -> None:
    assert form_action(redirect_uri) == expected


@pytest.mark.parametrize(
    "redirect_uri",
    [
        "javascript:alert(1)",
        "data:text/html,x",
        "https://app.example;script-src */cb",
        "https://app example/cb",
        "https://app.example:99999/cb",
        "https://*.example/cb",
        "",
    ],
)
def test_what_is_not_a_plain_origin_never_widens_the_policy(redirect_uri: str) -> None:
    assert form_action(redirect_uri) == "form-action 'self'"
