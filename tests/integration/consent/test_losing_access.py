"""Every way a party can lose access, for every kind of party: its very next request fails
(design section 3: "Stop" ends a party's access on its very next request; issue 16).

Each row first proves the party can see the inwoner's goal (so the row cannot pass by
seeing nothing to begin with), then takes access away one way, then asks again at once.
The rows for the findings of issue 11 (an app after stop-all, a deleted RelatedPerson,
erasure) failed before its fixes landed.

    partner         a partner system with a Consent (real client-credentials token)
    app             the inwoner's own app (authorization code + PKCE)
    representative  someone of the network with a legal basis, on the page
    network         someone of the network without one, on the page
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import update

from tests.factories import consent, goal, patient, related_person
from tests.support.harness import (
    Harness,
    PageVisitor,
    Party,
    network_account,
    page_login,
)
from tests.support.reference import Record
from tests.support.smart import inwoner_account
from vault.kernel.runtime import now_micros
from vault.oauth.models import OAuthClient


@dataclass
class Case:
    """One inwoner with one goal, the party under test, and the inwoner's own ways in."""

    harness: Harness
    app: Any
    pid: str
    goal: Record
    text: str
    grant: Record | None = None
    party: Party | None = None
    visitor: PageVisitor | None = None
    inwoner: PageVisitor | None = None
    related: Record | None = None
    closers: list[Callable[[], None]] = field(default_factory=list)

    def inwoner_page(self) -> PageVisitor:
        if self.inwoner is None:
            self.inwoner = page_login(self.app, *inwoner_account(self.harness.runtime, self.pid))
            self.closers.append(self.inwoner.http.close)
        return self.inwoner


def _case(harness: Harness, page_app: Any, who: str) -> Case:
    pid = harness.create(patient(), patient_id=None).resource_id
    text = f"Ik wil weer fietsen {uuid.uuid4().hex[:6]}"
    made = Case(
        harness,
        page_app,
        pid,
        harness.create(goal(patient_id=pid, text=text), patient_id=pid),
        text,
    )
    if who == "partner":
        made.party = harness.partner("partner", scopes=("system/Goal.rs", "system/Consent.rs"))
        (actor,) = made.party.caller.grantees
    elif who == "app":
        made.party = harness.app(
            "app", patient_id=pid, scopes=("patient/*.rs", "patient/RelatedPerson.cruds")
        )
        return made
    else:
        made.related = harness.create(related_person(patient_id=pid), patient_id=pid)
        actor = made.related.ref
        login = network_account(
            harness.runtime,
            patient_id=pid,
            related_person=made.related.resource_id,
            legal_basis="machtiging" if who == "representative" else None,
        )
        made.visitor = page_login(page_app, *login)
        made.closers.append(made.visitor.http.close)
    made.grant = harness.create(
        consent(patient_id=pid, actors=[actor], classes=("Goal",)), patient_id=pid
    )
    return made


def _sees(case: Case, who: str) -> bool:
    """Whether the party's next request still shows the goal."""
    if case.party is not None:
        response = case.harness.fhir(case.party, "get", f"/Goal/{case.goal.resource_id}")
        assert response.status_code in (200, 401, 404), response.text
        return response.status_code == 200
    assert case.visitor is not None
    path = "/plan" if who == "representative" else "/"
    response = case.visitor.http.get(path)
    assert response.status_code in (200, 303, 403), response.text
    return response.status_code == 200 and case.text in response.text


def _stop_all(case: Case) -> None:
    inwoner = case.inwoner_page()
    done = inwoner.http.post("/stoppen/zeker", data={"csrf_token": inwoner.csrf})
    assert done.status_code == 303, done.text


def _erase(case: Case) -> None:
    inwoner = case.inwoner_page()
    done = inwoner.http.post(
        "/gegevens/wissen/zeker", data={"csrf_token": inwoner.csrf, "bevestig": "WISSEN"}
    )
    assert done.status_code == 200, done.text


def _grant_body(case: Case) -> dict[str, Any]:
    assert case.grant is not None
    return {k: v for k, v in (case.grant.current or {}).items() if k != "meta"}


def _inactive(case: Case) -> None:
    case.harness.update(case.grant, {**_grant_body(case), "status": "inactive"})  # type: ignore[arg-type]


def _period_ended(case: Case) -> None:
    body = _grant_body(case)
    ended = (datetime.now(UTC) - timedelta(minutes=5)).strftime("%Y-%m-%dT%H:%M:%SZ")
    body["provision"] = {**body["provision"], "period": {"end": ended}}
    case.harness.update(case.grant, body)  # type: ignore[arg-type]


def _client_removed(case: Case) -> None:
    # The removal itself, without revoking tokens: the bearer check must refuse on its own.
    assert case.party is not None
    with case.harness.runtime.db.write() as conn:
        conn.execute(
            update(OAuthClient)
            .where(OAuthClient.client_id == case.party.client_id)
            .values(removed_at=now_micros())
        )


def _token_revoked(case: Case) -> None:
    assert case.party is not None
    token = case.harness._token(case.party)
    done = case.harness.http.post(
        "/oauth/revoke", data={"token": token, "client_id": case.party.client_id}
    )
    assert done.status_code == 200, done.text


def _related_person_deleted(case: Case) -> None:
    assert case.related is not None
    case.harness.delete(case.related)


WAYS: dict[str, Callable[[Case], None]] = {
    "consent-inactive": _inactive,
    "consent-deleted": lambda case: case.harness.delete(case.grant),  # type: ignore[arg-type]
    "period-ended": _period_ended,
    "stop-all": _stop_all,
    "client-removed": _client_removed,
    "token-revoked": _token_revoked,
    "related-person-deleted": _related_person_deleted,
    "erased": _erase,
}
ROWS = [
    ("partner", "consent-inactive"),
    ("partner", "consent-deleted"),
    ("partner", "period-ended"),
    ("partner", "stop-all"),
    ("partner", "client-removed"),
    ("partner", "erased"),
    ("app", "token-revoked"),
    ("app", "stop-all"),
    ("app", "erased"),
    ("network", "consent-inactive"),
    ("network", "stop-all"),
    ("network", "related-person-deleted"),
    ("network", "erased"),
    ("representative", "related-person-deleted"),
    ("representative", "erased"),
]


@pytest.mark.parametrize(("who", "way"), ROWS)
def test_the_next_request_after_losing_access_fails(
    harness: Harness, page_app: Any, who: str, way: str
) -> None:
    case = _case(harness, page_app, who)
    try:
        assert _sees(case, who), "the party must see the goal before it loses access"
        WAYS[way](case)
        assert not _sees(case, who)
    finally:
        for close in case.closers:
            close()


def test_after_erasure_a_partner_named_in_a_consent_searches_as_if_she_never_existed(
    harness: Harness, page_app: Any
) -> None:
    case = _case(harness, page_app, "partner")
    try:
        _erase(case)
        assert case.party is not None
        found = harness.fhir(case.party, "get", "/Consent", params={"patient": case.pid})
        assert found.status_code == 200 and found.json().get("total") == 0
    finally:
        for close in case.closers:
            close()
