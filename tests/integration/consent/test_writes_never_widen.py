"""A partner's write never makes anything visible that was not visible before.

Issue 11 item 2: with ``access`` + ``correct`` on ``CarePlan/X`` with meaning ``related``, a
partner read the CareTeam the plan refers to, saw RelatedPersons it could not read (404),
PUT the plan with them as ``activity.detail.performer``, and then read them (200). A
``related`` grant now reaches what the named resource referred to when the inwoner wrote
the Consent (and still refers to), and a partner never changes a resource's security
labels. Everything over HTTP with real partner tokens (docs/partner-writes.md).
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.factories import careplan, careteam, goal, related_person
from tests.integration.consent.bulk import download, export_manifest, lines
from tests.integration.consent.conftest import (
    RESTRICTED,
    Operator,
    Partner,
    PartnerFactory,
    grant,
    ids,
)

SCOPES = (
    "system/CarePlan.rus",
    "system/CareTeam.rus",
    "system/Goal.rus",
    "system/RelatedPerson.rs",
    "system/Patient.rs",
    "system/Provenance.rs",
)


@pytest.fixture
def writer(make_partner: PartnerFactory) -> Partner:
    return make_partner(scopes=SCOPES)


@pytest.fixture
def onlooker(make_partner: PartnerFactory) -> Partner:
    """Another partner the inwoner gave ``access`` on the same plan, ``related``."""
    return make_partner(scopes=SCOPES)


def _network(operator: Operator, inwoner: str) -> tuple[str, str, list[str]]:
    """A plan, its team and the team's two RelatedPersons: (plan, team, people)."""
    people = [
        operator.create(related_person(patient_id=inwoner, name=name)) for name in ("Ans", "Kees")
    ]
    team = operator.create(
        careteam(patient_id=inwoner, members=[f"RelatedPerson/{p}" for p in people])
    )
    plan = operator.create(careplan(patient_id=inwoner, careteams=[team]))
    return plan, team, people


def _with_performers(plan: dict[str, Any], people: list[str]) -> dict[str, Any]:
    activity = [
        {"detail": {"status": "scheduled", "performer": [{"reference": f"RelatedPerson/{p}"}]}}
        for p in people
    ]
    return {**plan, "activity": activity}


def test_a_partner_cannot_widen_a_related_grant_by_adding_references_to_the_plan(
    operator: Operator, inwoner: str, writer: Partner, onlooker: Partner
) -> None:
    plan, team, people = _network(operator, inwoner)
    operator.create(
        grant(
            inwoner,
            writer.organization,
            actions=("access", "correct"),
            data=[(f"CarePlan/{plan}", "related")],
        )
    )
    operator.create(grant(inwoner, onlooker.organization, data=[(f"CarePlan/{plan}", "related")]))
    assert writer.get(f"/CareTeam/{team}").status_code == 200
    assert writer.get(f"/RelatedPerson/{people[0]}").status_code == 404

    current = writer.get(f"/CarePlan/{plan}").json()
    written = writer.put(_with_performers(current, people))
    assert written.status_code == 200, written.text

    for partner in (writer, onlooker):
        for person in people:
            assert partner.get(f"/RelatedPerson/{person}").status_code == 404
        assert ids(partner.get("/RelatedPerson")) == set()
        included = partner.get("/CarePlan", _include="CarePlan:performer")
        assert ids(included) == {f"CarePlan/{plan}"}
        assert lines(download(partner, export_manifest(partner, "RelatedPerson"))) == set()


def test_a_partner_cannot_widen_a_related_grant_on_a_team_by_adding_members(
    operator: Operator, inwoner: str, writer: Partner
) -> None:
    _plan, team, people = _network(operator, inwoner)
    outsider = operator.create(related_person(patient_id=inwoner, name="Mirjam"))
    operator.create(
        grant(
            inwoner,
            writer.organization,
            actions=("access", "correct"),
            data=[(f"CareTeam/{team}", "related")],
        )
    )
    assert writer.get(f"/RelatedPerson/{people[0]}").status_code == 200
    assert writer.get(f"/RelatedPerson/{outsider}").status_code == 404

    current = writer.get(f"/CareTeam/{team}").json()
    members = [*current["participant"], {"member": {"reference": f"RelatedPerson/{outsider}"}}]
    assert writer.put({**current, "participant": members}).status_code == 200

    assert writer.get(f"/RelatedPerson/{outsider}").status_code == 404
    assert ids(writer.get("/RelatedPerson")) == {f"RelatedPerson/{p}" for p in people}


def test_what_the_inwoner_takes_out_of_the_plan_ends_at_once_and_her_new_consent_adds(
    operator: Operator, inwoner: str, writer: Partner
) -> None:
    first, later = (operator.create(goal(patient_id=inwoner, text=t)) for t in ("a", "b"))
    plan = operator.create(careplan(patient_id=inwoner, goals=[first]))
    body = grant(inwoner, writer.organization, data=[(f"CarePlan/{plan}", "related")])
    consent_id = operator.create(body)
    assert writer.get(f"/Goal/{first}").status_code == 200

    stored = operator.read("CarePlan", plan)
    operator.update({**stored, "goal": [{"reference": f"Goal/{later}"}]})
    assert writer.get(f"/Goal/{first}").status_code == 404  # taken out: ends at once
    assert writer.get(f"/Goal/{later}").status_code == 404  # added since: not yet shared

    operator.update({**body, "id": consent_id})  # the inwoner confirms her Consent again
    assert writer.get(f"/Goal/{later}").status_code == 200
    assert writer.get(f"/Goal/{first}").status_code == 404


def test_a_partner_cannot_change_security_labels_so_nobody_else_sees_more(
    operator: Operator, inwoner: str, writer: Partner, onlooker: Partner
) -> None:
    secret = operator.create(
        goal(patient_id=inwoner, text="geheim", meta={"security": [RESTRICTED]})
    )
    operator.create(
        grant(inwoner, writer.organization, actions=("access", "correct"), classes=("Goal",))
    )
    operator.create(
        grant(
            inwoner,
            onlooker.organization,
            classes=("Goal",),
            denies=[{"securityLabel": [RESTRICTED]}],
        )
    )
    assert onlooker.get(f"/Goal/{secret}").status_code == 404

    current = writer.get(f"/Goal/{secret}").json()
    unlabelled = writer.put({**current, "meta": {}})

    assert unlabelled.status_code == 403
    assert unlabelled.json()["resourceType"] == "OperationOutcome"
    assert onlooker.get(f"/Goal/{secret}").status_code == 404
    assert operator.read("Goal", secret)["meta"]["versionId"] == "1"
    # Sending the labels the Goal has is a normal correction.
    kept = writer.put({**current, "description": {"text": "anders"}})
    assert kept.status_code == 200, kept.text
    assert onlooker.get(f"/Goal/{secret}").status_code == 404
