"""The bearer-token check (``oauth/protector.py``), in process: which ``Authorization``
headers carry a token, and what a request without a usable one is told.

RFC 6750 section 2.1: ``credentials = "Bearer" 1*SP b64token``, the scheme compared without
regard to case (RFC 9110 section 11.1). Section 3: a request without a token gets the
challenge with the realm only; a token that is not valid gets ``error="invalid_token"``.
The live-server tests (``tests/integration/oauth``) check the same over a socket; these run
in the mutation tests' process (``make mutate``).
"""

from __future__ import annotations

import httpx
import pytest

from tests.factories import patient
from tests.support.harness import Harness, Party

NO_TOKEN = "This request needs a bearer token issued by this vault"
NOT_VALID = "The access token is not valid: unknown, expired or revoked"


@pytest.fixture(scope="module")
def app(harness: Harness) -> Party:
    """An inwoner's app with a live token: what a valid bearer token looks like."""
    inwoner = harness.create(patient(), patient_id=None).resource_id
    return harness.app("Bearer check", patient_id=inwoner, scopes=["patient/*.rs"])


def _get(harness: Harness, authorization: str | None) -> httpx.Response:
    headers = {} if authorization is None else {"authorization": authorization}
    return harness.http.get("/fhir/Goal", headers=headers)


def _refused(response: httpx.Response, challenge: str, diagnostics: str) -> None:
    assert response.status_code == 401, response.text
    assert response.headers["www-authenticate"] == challenge
    outcome = response.json()
    assert outcome["resourceType"] == "OperationOutcome"
    assert [i["diagnostics"] for i in outcome["issue"]] == [diagnostics]


@pytest.mark.parametrize("authorization", [None, "", "Bearer", "Bearer ", "Bearer    "])
def test_a_request_without_a_token_gets_the_challenge_with_the_realm(
    harness: Harness, authorization: str | None
) -> None:
    _refused(_get(harness, authorization), 'Bearer realm="regiekluis"', NO_TOKEN)


def test_a_valid_token_under_another_scheme_is_no_bearer_token(
    harness: Harness, app: Party
) -> None:
    token = harness.token_of(app)
    assert _get(harness, f"Bearer {token}").status_code == 200
    for scheme in ("Basic", "Token", "MAC", "Bearerx"):
        _refused(_get(harness, f"{scheme} {token}"), 'Bearer realm="regiekluis"', NO_TOKEN)


@pytest.mark.parametrize("form", ["bearer {}", "BEARER {}", "Bearer  {}", "Bearer {}  "])
def test_the_scheme_in_any_case_and_more_than_one_space_carry_the_token(
    harness: Harness, app: Party, form: str
) -> None:
    assert _get(harness, form.format(harness.token_of(app))).status_code == 200


@pytest.mark.parametrize("token", ["nope", "a b", "Bearer"])
def test_a_token_the_vault_did_not_issue_is_invalid_token(harness: Harness, token: str) -> None:
    _refused(
        _get(harness, f"Bearer {token}"),
        'Bearer realm="regiekluis", error="invalid_token"',
        NOT_VALID,
    )
