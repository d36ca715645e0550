"""A partner corrects only what the inwoner let it correct, and always says so.

``correct`` in a Consent plus an update scope lets a partner update a granted resource;
each such write leaves a Provenance (agent = the partner's organisation) that the inwoner
can read. Without ``correct`` the answer is 403 where the partner can see the resource and
404 where it cannot. Partners never create, delete or touch a Consent, and a change that
would take the resource outside the grant is refused and changes nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest

from tests.conftest import FHIR_JSON
from tests.factories import DOMAIN_SYSTEM, goal
from tests.integration.consent.conftest import (
    RESTRICTED,
    Operator,
    Partner,
    PartnerFactory,
    grant,
    ids,
)
from vault.kernel.errors import Gone

InwonerApp = Callable[[str], httpx.Client]


@pytest.fixture
def target(operator: Operator, inwoner: str) -> dict[str, Any]:
    """A Goal of the inwoner, as stored."""
    return operator.read("Goal", operator.create(goal(patient_id=inwoner)))


def diagnostics(response: httpx.Response) -> str:
    (issue,) = response.json()["issue"]
    text: str = issue["diagnostics"]
    return text


def _correcting(inwoner: str, partner: Partner, **options: Any) -> dict[str, Any]:
    return grant(inwoner, partner.organization, actions=("access", "correct"), **options)


def test_a_partner_with_correct_updates_a_granted_goal_and_leaves_provenance(
    operator: Operator,
    inwoner: str,
    partner: Partner,
    target: dict[str, Any],
    make_inwoner_app: InwonerApp,
) -> None:
    operator.create(_correcting(inwoner, partner, classes=("Goal",)))

    response = partner.put({**target, "lifecycleStatus": "completed"})

    assert response.status_code == 200, response.text
    assert response.json()["meta"]["versionId"] == "2"
    assert operator.read("Goal", target["id"])["lifecycleStatus"] == "completed"
    app = make_inwoner_app(inwoner)
    found = app.get("/Provenance", params={"target": f"Goal/{target['id']}"})
    (provenance,) = [e["resource"] for e in found.json()["entry"]]
    assert provenance["target"] == [{"reference": f"Goal/{target['id']}/_history/2"}]
    assert [a["who"] for a in provenance["agent"]] == [{"reference": partner.organization}]


def test_without_correct_a_visible_goal_answers_403_and_is_unchanged(
    operator: Operator, inwoner: str, partner: Partner, target: dict[str, Any]
) -> None:
    operator.create(grant(inwoner, partner.organization, classes=("Goal",)))

    response = partner.put({**target, "lifecycleStatus": "completed"})

    assert response.status_code == 403
    assert diagnostics(response) == (
        f"The inwoner did not allow this client to change Goal/{target['id']}"
    )
    assert operator.read("Goal", target["id"])["meta"]["versionId"] == "1"


def test_without_a_grant_a_goal_answers_404_like_one_that_does_not_exist(
    operator: Operator, inwoner: str, partner: Partner, target: dict[str, Any]
) -> None:
    other = operator.create({"resourceType": "Patient"})
    operator.create(_correcting(other, partner))  # a grant, but for someone else

    hidden = partner.put({**target, "lifecycleStatus": "completed"})
    missing = partner.put({**target, "id": "does-not-exist", "lifecycleStatus": "completed"})

    assert hidden.status_code == missing.status_code == 404
    assert hidden.content.replace(target["id"].encode(), b"<id>") == missing.content.replace(
        b"does-not-exist", b"<id>"
    )
    (issue,) = hidden.json()["issue"]
    assert issue["diagnostics"] == f"Goal/{target['id']} is not known"
    assert operator.read("Goal", target["id"])["meta"]["versionId"] == "1"


def test_correct_on_one_goal_does_not_reach_another(
    operator: Operator, inwoner: str, partner: Partner, target: dict[str, Any]
) -> None:
    other = operator.read("Goal", operator.create(goal(patient_id=inwoner, text="ander doel")))
    operator.create(grant(inwoner, partner.organization, classes=("Goal",)))
    operator.create(_correcting(inwoner, partner, data=[(f"Goal/{target['id']}", "instance")]))

    assert partner.put({**target, "lifecycleStatus": "completed"}).status_code == 200
    assert partner.put({**other, "lifecycleStatus": "completed"}).status_code == 403


def test_a_partner_can_never_create_a_goal(
    inwoner: str, operator: Operator, partner: Partner
) -> None:
    operator.create(_correcting(inwoner, partner))
    response = partner.fhir.post("/Goal", json=goal(patient_id=inwoner), headers=FHIR_JSON)
    assert response.status_code == 403
    assert partner.get("/Goal", patient=inwoner).json()["total"] == 0


def test_a_partner_can_never_create_with_put(
    inwoner: str, operator: Operator, partner: Partner
) -> None:
    operator.create(_correcting(inwoner, partner))
    response = partner.put({**goal(patient_id=inwoner), "id": "made-up-by-partner"})
    assert response.status_code == 404
    assert partner.get("/Goal", patient=inwoner).json()["total"] == 0


def test_a_partner_can_never_delete_a_goal(
    operator: Operator, inwoner: str, make_partner: PartnerFactory, target: dict[str, Any]
) -> None:
    partner = make_partner(scopes=("system/Goal.cruds",))
    operator.create(_correcting(inwoner, partner))
    assert partner.fhir.delete(f"/Goal/{target['id']}").status_code == 403
    assert partner.get(f"/Goal/{target['id']}").status_code == 200


def test_a_partner_can_never_change_a_consent(
    operator: Operator, inwoner: str, make_partner: PartnerFactory
) -> None:
    partner = make_partner(scopes=("system/Consent.cruds", "system/Goal.cruds"))
    body = _correcting(inwoner, partner)
    consent_id = operator.create(body)
    own = partner.get(f"/Consent/{consent_id}").json()
    widened = {**own, "provision": {**own["provision"], "actor": own["provision"]["actor"] * 2}}

    assert partner.put(widened).status_code == 403
    assert partner.fhir.delete(f"/Consent/{consent_id}").status_code == 403
    created = partner.fhir.post("/Consent", json=body, headers=FHIR_JSON)
    assert created.status_code == 403
    assert operator.read("Consent", consent_id)["meta"]["versionId"] == "1"
    assert ids(partner.get("/Consent")) == {f"Consent/{consent_id}"}


def test_a_partner_cannot_change_a_consent_it_cannot_see(
    operator: Operator, inwoner: str, make_partner: PartnerFactory
) -> None:
    partner, other = make_partner(), make_partner()
    operator.create(_correcting(inwoner, partner))
    theirs = operator.read("Consent", operator.create(grant(inwoner, other.organization)))

    assert partner.put({**theirs, "status": "inactive"}).status_code == 404
    assert operator.read("Consent", theirs["id"])["status"] == "active"


def test_a_change_that_would_leave_the_grant_is_refused_and_changes_nothing(
    operator: Operator, inwoner: str, partner: Partner, target: dict[str, Any]
) -> None:
    operator.create(_correcting(inwoner, partner, denies=[{"securityLabel": [RESTRICTED]}]))

    response = partner.put({**target, "meta": {"security": [RESTRICTED]}})

    assert response.status_code == 403
    assert diagnostics(response) == (
        "A partner cannot change meta.security; send the labels the resource has"
    )
    stored = operator.read("Goal", target["id"])
    assert stored["meta"]["versionId"] == "1"
    assert "security" not in stored["meta"]
    assert partner.get("/Provenance", target=f"Goal/{target['id']}").json()["total"] == 0
    assert partner.get(f"/Goal/{target['id']}").status_code == 200


def test_a_change_that_would_move_the_goal_to_another_inwoner_is_refused(
    operator: Operator, inwoner: str, partner: Partner, target: dict[str, Any]
) -> None:
    other = operator.create({"resourceType": "Patient"})
    operator.create(_correcting(inwoner, partner))
    moved = {**target, "subject": {"reference": f"Patient/{other}"}}

    response = partner.put(moved)
    assert response.status_code == 422
    assert diagnostics(response) == "A resource cannot move to another inwoner's compartment"
    assert operator.read("Goal", target["id"])["subject"] == {"reference": f"Patient/{inwoner}"}


def test_a_stale_if_match_is_refused(
    operator: Operator, inwoner: str, partner: Partner, target: dict[str, Any]
) -> None:
    operator.create(_correcting(inwoner, partner))
    operator.update({**target, "lifecycleStatus": "on-hold"})
    response = partner.fhir.put(
        f"/Goal/{target['id']}",
        json={**target, "lifecycleStatus": "completed"},
        headers={**FHIR_JSON, "if-match": 'W/"1"'},
    )
    assert response.status_code == 412
    assert diagnostics(response) == f"Version conflict: Goal/{target['id']} is at version 2, not 1"
    assert operator.read("Goal", target["id"])["lifecycleStatus"] == "on-hold"


def test_a_deleted_goal_answers_404_and_stays_deleted(
    operator: Operator, inwoner: str, partner: Partner, target: dict[str, Any]
) -> None:
    # The row of a deleted resource is still there (PUT may revive it for the operator);
    # a partner's grant covers only what is not deleted.
    operator.create(_correcting(inwoner, partner, classes=("Goal",)))
    operator.delete("Goal", target["id"])

    assert partner.put({**target, "lifecycleStatus": "completed"}).status_code == 404
    with pytest.raises(Gone):
        operator.read("Goal", target["id"])


def test_a_granular_scope_limits_what_a_partner_may_correct(
    operator: Operator, inwoner: str, make_partner: PartnerFactory
) -> None:
    partner = make_partner(scopes=(f"system/Goal.rus?category={DOMAIN_SYSTEM}|financien",))
    inside = operator.read("Goal", operator.create(goal(patient_id=inwoner)))
    outside = operator.read("Goal", operator.create(goal(patient_id=inwoner, domain="wonen")))
    operator.create(_correcting(inwoner, partner, classes=("Goal",)))

    assert partner.put({**inside, "lifecycleStatus": "completed"}).status_code == 200
    assert partner.put({**outside, "lifecycleStatus": "completed"}).status_code == 404
    assert operator.read("Goal", outside["id"])["meta"]["versionId"] == "1"


def test_a_change_that_would_leave_a_granular_scope_is_refused_and_changes_nothing(
    operator: Operator, inwoner: str, make_partner: PartnerFactory, target: dict[str, Any]
) -> None:
    # The goal is in "financien"; moving it to "wonen" takes it outside what the token may
    # see, so the write is checked again after the change (not only before it).
    partner = make_partner(scopes=(f"system/Goal.rus?category={DOMAIN_SYSTEM}|financien",))
    operator.create(_correcting(inwoner, partner, classes=("Goal",)))
    moved = {**target, "category": [{"coding": [{"system": DOMAIN_SYSTEM, "code": "wonen"}]}]}

    response = partner.put(moved)

    assert response.status_code == 403
    assert diagnostics(response) == "This change would take the resource outside your grant"
    stored = operator.read("Goal", target["id"])
    assert (stored["meta"]["versionId"], stored["category"]) == ("1", target["category"])
