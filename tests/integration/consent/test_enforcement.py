"""Writing Consents through the API, and what a partner then sees.

A Consent the vault cannot enforce is refused on write with an OperationOutcome that says
what, and leaves nothing behind; one it can enforce is in force from the next request,
narrowed by the partner's token scopes and its registered purposes of use.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest

from tests.conftest import FHIR_JSON
from tests.factories import careplan, goal
from tests.integration.consent.conftest import (
    Operator,
    Partner,
    PartnerFactory,
    grant,
    ids,
)

InwonerApp = Callable[[str], httpx.Client]


def _refused(response: httpx.Response) -> dict[str, Any]:
    assert response.status_code == 422, response.text
    issue: dict[str, Any] = response.json()["issue"][0]
    assert issue["code"] == "not-supported"
    return issue


def test_the_inwoner_grants_through_the_api_and_the_partner_sees_it_at_once(
    operator: Operator, inwoner: str, partner: Partner, make_inwoner_app: InwonerApp
) -> None:
    target = operator.create(goal(patient_id=inwoner))
    assert partner.get(f"/Goal/{target}").status_code == 404
    app = make_inwoner_app(inwoner)
    body = grant(inwoner, partner.organization, classes=("Goal",))
    assert app.post("/Consent", json=body, headers=FHIR_JSON).status_code == 201
    assert partner.get(f"/Goal/{target}").status_code == 200


def test_a_consent_naming_data_of_another_inwoner_is_refused(
    operator: Operator, inwoner: str, partner: Partner, make_inwoner_app: InwonerApp
) -> None:
    other = operator.create({"resourceType": "Patient"})
    theirs = operator.create(goal(patient_id=other))
    app = make_inwoner_app(inwoner)
    body = grant(inwoner, partner.organization, data=[(f"Goal/{theirs}", "instance")])

    issue = _refused(app.post("/Consent", json=body, headers=FHIR_JSON))
    assert issue["expression"] == ["Consent.provision.data"]
    assert app.get("/Consent", params={"patient": inwoner}).json()["total"] == 0
    assert partner.get(f"/Goal/{theirs}").status_code == 404


def test_a_consent_naming_data_that_does_not_exist_is_refused(
    inwoner: str, partner: Partner, make_inwoner_app: InwonerApp
) -> None:
    app = make_inwoner_app(inwoner)
    body = grant(inwoner, partner.organization, data=[("Goal/nobody-knows", "related")])
    _refused(app.post("/Consent", json=body, headers=FHIR_JSON))


def test_an_inactive_consent_naming_data_of_another_inwoner_is_refused_too(
    operator: Operator, inwoner: str, partner: Partner, make_inwoner_app: InwonerApp
) -> None:
    # It could become active by an update that changes nothing else.
    other = operator.create({"resourceType": "Patient"})
    theirs = operator.create(goal(patient_id=other))
    app = make_inwoner_app(inwoner)
    body = grant(
        inwoner, partner.organization, data=[(f"Goal/{theirs}", "instance")], status="inactive"
    )
    _refused(app.post("/Consent", json=body, headers=FHIR_JSON))


@pytest.mark.parametrize(
    ("change", "expression"),
    [
        ({"classes": ("AuditEvent",)}, "Consent.provision.class"),
        ({"classes": ("Consent",)}, "Consent.provision.class"),
        ({"actions": ("disclose",)}, "Consent.provision.action"),
        ({"actions": ()}, "Consent.provision.action"),
    ],
)
def test_a_consent_the_vault_cannot_enforce_is_refused_and_says_what(
    inwoner: str,
    partner: Partner,
    make_inwoner_app: InwonerApp,
    change: dict[str, Any],
    expression: str,
) -> None:
    app = make_inwoner_app(inwoner)
    body = grant(inwoner, partner.organization, **change)
    assert _refused(app.post("/Consent", json=body, headers=FHIR_JSON))["expression"] == [
        expression
    ]
    assert app.get("/Consent", params={"patient": inwoner}).json()["total"] == 0


def test_a_careteam_as_actor_is_refused_through_the_api(
    operator: Operator, inwoner: str, make_inwoner_app: InwonerApp
) -> None:
    team = operator.create(
        {"resourceType": "CareTeam", "subject": {"reference": f"Patient/{inwoner}"}}
    )
    app = make_inwoner_app(inwoner)
    issue = _refused(
        app.post("/Consent", json=grant(inwoner, f"CareTeam/{team}"), headers=FHIR_JSON)
    )
    assert issue["expression"] == ["Consent.provision.actor[0].reference"]


def test_a_refused_update_leaves_the_consent_in_force_as_it_was(
    operator: Operator, inwoner: str, partner: Partner, make_inwoner_app: InwonerApp
) -> None:
    target = operator.create(goal(patient_id=inwoner))
    app = make_inwoner_app(inwoner)
    created = app.post(
        "/Consent", json=grant(inwoner, partner.organization, classes=("Goal",)), headers=FHIR_JSON
    ).json()
    broken = {**created, "provision": {**created["provision"], "code": [{"text": "x"}]}}
    _refused(app.put(f"/Consent/{created['id']}", json=broken, headers=FHIR_JSON))
    assert partner.get(f"/Goal/{target}").status_code == 200
    assert app.get(f"/Consent/{created['id']}").json()["meta"]["versionId"] == "1"


def test_an_inwoner_cannot_write_a_consent_for_someone_else(
    operator: Operator, inwoner: str, partner: Partner, make_inwoner_app: InwonerApp
) -> None:
    other = operator.create({"resourceType": "Patient"})
    operator.create(goal(patient_id=other))
    app = make_inwoner_app(inwoner)
    response = app.post("/Consent", json=grant(other, partner.organization), headers=FHIR_JSON)
    assert response.status_code in (404, 422), response.text
    assert partner.get("/Goal", patient=other).json()["total"] == 0


def test_token_scopes_narrow_what_a_consent_grants(
    operator: Operator, inwoner: str, make_partner: PartnerFactory
) -> None:
    partner = make_partner(scopes=("system/Goal.rs",))
    target = operator.create(goal(patient_id=inwoner))
    plan = operator.create(careplan(patient_id=inwoner, goals=[target]))
    operator.create(grant(inwoner, partner.organization))  # every type

    assert partner.get(f"/Goal/{target}").status_code == 200
    assert partner.get(f"/CarePlan/{plan}").status_code == 403
    assert partner.get("/CarePlan").status_code == 403


def test_a_grant_for_a_purpose_lets_in_only_clients_registered_for_it(
    operator: Operator, inwoner: str, make_partner: PartnerFactory
) -> None:
    treating = make_partner(purposes=("TREAT",))
    other = make_partner(purposes=("HPAYMT",))
    target = operator.create(goal(patient_id=inwoner))
    for partner in (treating, other):
        operator.create(
            grant(inwoner, partner.organization, classes=("Goal",), purposes=("TREAT",))
        )

    assert treating.get(f"/Goal/{target}").status_code == 200
    assert other.get(f"/Goal/{target}").status_code == 404
    assert ids(other.get("/Goal")) == set()


def test_one_partners_grant_lets_nobody_else_in(
    operator: Operator, inwoner: str, make_partner: PartnerFactory
) -> None:
    granted, bystander = make_partner(), make_partner()
    target = operator.create(goal(patient_id=inwoner))
    operator.create(grant(inwoner, granted.organization))
    assert granted.get(f"/Goal/{target}").status_code == 200
    assert bystander.get(f"/Goal/{target}").status_code == 404
    assert bystander.get("/Goal", _summary="count").json()["total"] == 0
