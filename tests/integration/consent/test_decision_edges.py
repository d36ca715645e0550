"""Edges of the access decision that mutation testing found unguarded (docs/testing.md).

Each test is a partner's request with a real token against Consents written through the
store, on a vault where the edge matters; the comment says which condition it pins.
"""

from __future__ import annotations

import uuid

from tests.factories import careplan, goal
from tests.integration.consent.conftest import Operator, Partner, PartnerFactory, grant


def test_a_related_deny_follows_the_named_resource_of_that_type_only(
    operator: Operator, inwoner: str, partner: Partner
) -> None:
    # FHIR ids are unique per type: a CarePlan may share its id with the Goal a deny names.
    # The deny covers the Goal and what the Goal refers to, not what the CarePlan refers to.
    shared = f"same-{uuid.uuid4().hex[:8]}"
    operator.update({**goal(patient_id=inwoner), "id": shared})
    other = operator.create(goal(patient_id=inwoner))
    operator.update({**careplan(patient_id=inwoner, goals=[other]), "id": shared})
    operator.create(
        grant(inwoner, partner.organization, denies=[{"data": [related(f"Goal/{shared}")]}])
    )

    assert partner.get(f"/Goal/{shared}").status_code == 404
    assert partner.get(f"/Goal/{other}").status_code == 200
    assert partner.get(f"/CarePlan/{shared}").status_code == 200


def test_a_related_deny_follows_the_named_resource_only(
    operator: Operator, inwoner: str, partner: Partner
) -> None:
    # What another resource of the same type refers to stays granted.
    denied, kept = (operator.create(goal(patient_id=inwoner)) for _ in range(2))
    named = operator.create(careplan(patient_id=inwoner, goals=[denied]))
    operator.create(careplan(patient_id=inwoner, goals=[kept]))
    operator.create(
        grant(inwoner, partner.organization, denies=[{"data": [related(f"CarePlan/{named}")]}])
    )

    assert partner.get(f"/Goal/{denied}").status_code == 404
    assert partner.get(f"/Goal/{kept}").status_code == 200


def test_what_another_consent_recorded_does_not_widen_a_related_permit(
    operator: Operator, inwoner: str, make_partner: PartnerFactory
) -> None:
    # A related permit reaches what the plan referred to when *its* Consent was written.
    # The plan now refers to a second Goal, and a later Consent for another partner
    # recorded that: the first partner still does not see it.
    first, later = make_partner(), make_partner()
    then, added = (operator.create(goal(patient_id=inwoner)) for _ in range(2))
    plan = careplan(patient_id=inwoner, goals=[then])
    plan["id"] = operator.create(plan)
    operator.create(
        grant(inwoner, first.organization, data=[(f"CarePlan/{plan['id']}", "related")])
    )
    operator.update({**plan, "goal": [{"reference": f"Goal/{g}"} for g in (then, added)]})
    operator.create(
        grant(inwoner, later.organization, data=[(f"CarePlan/{plan['id']}", "related")])
    )

    assert later.get(f"/Goal/{added}").status_code == 200
    assert first.get(f"/Goal/{then}").status_code == 200
    assert first.get(f"/Goal/{added}").status_code == 404


def related(reference: str) -> dict[str, object]:
    return {"meaning": "related", "reference": {"reference": reference}}
