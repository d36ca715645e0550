"""Revocation holds from the very next request, whatever the way and whoever asks.

Tokens carry scopes, never grants: a partner's token issued before the inwoner revoked
keeps working only for what is still granted. Revoking is setting the Consent inactive,
deleting it, or letting its period end; each is its own test, and one reads from a second
process, so no cache in this process could be what makes it pass.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from tests.conftest import FHIR_JSON
from tests.factories import goal
from tests.integration.consent.conftest import Operator, Partner, grant

InwonerApp = Callable[[str], httpx.Client]

# A partner's system in its own process: one GET per line on stdin, the status on stdout.
READER = """
import os, sys
import httpx
headers = {"authorization": "Bearer " + os.environ["PARTNER_TOKEN"]}
with httpx.Client(base_url=os.environ["FHIR_BASE"], headers=headers, timeout=30) as http:
    for line in sys.stdin:
        print(http.get(line.strip()).status_code, flush=True)
"""


class Reader:
    def __init__(self, process: subprocess.Popen[str]) -> None:
        self._process = process

    def get(self, path: str) -> int:
        assert self._process.stdin is not None and self._process.stdout is not None
        self._process.stdin.write(path + "\n")
        self._process.stdin.flush()
        return int(self._process.stdout.readline())


@pytest.fixture
def reader(partner: Partner) -> Iterator[Reader]:
    token = partner.fhir.headers["authorization"].removeprefix("Bearer ")
    env = {**os.environ, "PARTNER_TOKEN": token, "FHIR_BASE": str(partner.fhir.base_url)}
    with subprocess.Popen(
        [sys.executable, "-c", READER],
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    ) as process:
        try:
            yield Reader(process)
        finally:
            assert process.stdin is not None
            process.stdin.close()  # the reader's loop ends; the process exits
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()


@pytest.fixture
def app(inwoner: str, make_inwoner_app: InwonerApp) -> httpx.Client:
    return make_inwoner_app(inwoner)


def _grant(app: httpx.Client, body: dict[str, Any]) -> dict[str, Any]:
    response = app.post("/Consent", json=body, headers=FHIR_JSON)
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


def _put(app: httpx.Client, body: dict[str, Any]) -> None:
    response = app.put(f"/Consent/{body['id']}", json=body, headers=FHIR_JSON)
    assert response.status_code == 200, response.text


def _instant(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def test_setting_the_consent_inactive_refuses_the_next_request(
    operator: Operator, inwoner: str, partner: Partner, app: httpx.Client
) -> None:
    target = operator.create(goal(patient_id=inwoner))
    consent = _grant(app, grant(inwoner, partner.organization, classes=("Goal",)))
    assert partner.get(f"/Goal/{target}").status_code == 200

    _put(app, {**consent, "status": "inactive"})

    assert partner.get(f"/Goal/{target}").status_code == 404
    assert partner.get("/Goal", _summary="count").json()["total"] == 0


def test_deleting_the_consent_refuses_the_next_request(
    operator: Operator, inwoner: str, partner: Partner, app: httpx.Client
) -> None:
    target = operator.create(goal(patient_id=inwoner))
    consent = _grant(app, grant(inwoner, partner.organization, classes=("Goal",)))
    assert partner.get(f"/Goal/{target}").status_code == 200

    assert app.delete(f"/Consent/{consent['id']}").status_code == 204

    assert partner.get(f"/Goal/{target}").status_code == 404
    assert partner.get(f"/Consent/{consent['id']}").status_code == 404


def test_a_period_set_to_have_ended_refuses_the_next_request(
    operator: Operator, inwoner: str, partner: Partner, app: httpx.Client
) -> None:
    target = operator.create(goal(patient_id=inwoner))
    consent = _grant(app, grant(inwoner, partner.organization, classes=("Goal",)))
    assert partner.get(f"/Goal/{target}").status_code == 200

    ended = _instant(datetime.now(UTC) - timedelta(seconds=1))
    _put(app, {**consent, "provision": {**consent["provision"], "period": {"end": ended}}})

    assert partner.get(f"/Goal/{target}").status_code == 404


def test_revoking_in_this_process_refuses_the_next_read_from_another_process(
    operator: Operator, inwoner: str, partner: Partner, app: httpx.Client, reader: Reader
) -> None:
    target = operator.create(goal(patient_id=inwoner))
    consent = _grant(app, grant(inwoner, partner.organization, classes=("Goal",)))
    assert reader.get(f"Goal/{target}") == 200

    assert app.delete(f"/Consent/{consent['id']}").status_code == 204

    assert reader.get(f"Goal/{target}") == 404
    assert reader.get(f"Goal?_id={target}") == 200  # a search still answers, empty


def test_a_consent_period_that_ends_while_the_token_is_valid(
    operator: Operator, inwoner: str, partner: Partner
) -> None:
    target = operator.create(goal(patient_id=inwoner))
    end = datetime.now(UTC) + timedelta(seconds=2)
    consent_id = operator.create(
        grant(inwoner, partner.organization, classes=("Goal",), period={"end": _instant(end)})
    )
    assert partner.get(f"/Goal/{target}").status_code == 200

    time.sleep(max(0.0, (end - datetime.now(UTC)).total_seconds()) + 0.05)

    assert partner.get(f"/Goal/{target}").status_code == 404
    assert partner.get("/Goal", _summary="count").json()["total"] == 0
    # The token itself still works: the partner still sees its own (now ended) Consent.
    assert partner.get(f"/Consent/{consent_id}").status_code == 200


def test_a_token_keeps_working_for_what_is_still_granted(
    operator: Operator, inwoner: str, partner: Partner, app: httpx.Client
) -> None:
    kept = operator.create(goal(patient_id=inwoner, text="blijft"))
    revoked = operator.create(goal(patient_id=inwoner, text="weg"))
    _grant(app, grant(inwoner, partner.organization, data=[(f"Goal/{kept}", "instance")]))
    second = _grant(
        app, grant(inwoner, partner.organization, data=[(f"Goal/{revoked}", "instance")])
    )
    assert partner.get("/Goal", _summary="count").json()["total"] == 2

    assert app.delete(f"/Consent/{second['id']}").status_code == 204

    assert partner.get(f"/Goal/{kept}").status_code == 200
    assert partner.get(f"/Goal/{revoked}").status_code == 404
    assert partner.get("/Goal", _summary="count").json()["total"] == 1
