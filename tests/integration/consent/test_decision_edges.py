"""Edges of the access decision that mutation testing found unguarded (docs/testing.md).

Each test is a partner's request with a real token against Consents written through the
store, on a vault where the edge matters; the comment says which condition it pins.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable

import httpx

from tests.factories import (
    careplan,
    careteam,
    goal,
    organization,
    practitioner,
    related_person,
)
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


def test_a_related_deny_holds_for_what_the_resource_referred_to_then_and_refers_to_now(
    operator: Operator, inwoner: str, partner: Partner
) -> None:
    then, now = (operator.create(goal(patient_id=inwoner)) for _ in range(2))
    plan = careplan(patient_id=inwoner, goals=[then])
    plan["id"] = operator.create(plan)
    operator.create(
        grant(inwoner, partner.organization, denies=[{"data": [related(f"CarePlan/{plan['id']}")]}])
    )
    operator.update({**plan, "goal": [{"reference": f"Goal/{now}"}]})

    assert partner.get(f"/Goal/{then}").status_code == 404
    assert partner.get(f"/Goal/{now}").status_code == 404


def test_a_related_grant_follows_a_reference_by_type_and_id(
    operator: Operator, inwoner: str, make_partner: PartnerFactory
) -> None:
    # A Goal and a CareTeam share an id; the plan referred to the Goal when both Consents
    # were written, and refers to the CareTeam as well since. The deny held for the
    # CareTeam only from then on, the permit never.
    reader, denied = make_partner(), make_partner()
    shared = f"same-{uuid.uuid4().hex[:8]}"
    operator.update({**goal(patient_id=inwoner), "id": shared})
    operator.update({**careteam(patient_id=inwoner), "id": shared})
    plan = careplan(patient_id=inwoner, goals=[shared])
    plan["id"] = operator.create(plan)
    named = f"CarePlan/{plan['id']}"
    operator.create(grant(inwoner, reader.organization, data=[(named, "related")]))
    operator.create(grant(inwoner, denied.organization, denies=[{"data": [related(named)]}]))
    assert denied.get(f"/CareTeam/{shared}").status_code == 200
    operator.update({**plan, "careTeam": [{"reference": f"CareTeam/{shared}"}]})

    assert reader.get(f"/Goal/{shared}").status_code == 200
    assert reader.get(f"/CareTeam/{shared}").status_code == 404
    assert denied.get(f"/Goal/{shared}").status_code == 404
    assert denied.get(f"/CareTeam/{shared}").status_code == 404


def test_a_related_permit_on_two_plans_keeps_what_each_referred_to_apart(
    operator: Operator, inwoner: str, partner: Partner
) -> None:
    # Plan A referred to g1 and plan B to g2 when the Consent was written; now A refers to
    # both and B to none. g2 is neither what A referred to then nor what B refers to now.
    g1, g2 = (operator.create(goal(patient_id=inwoner)) for _ in range(2))
    a, b = careplan(patient_id=inwoner, goals=[g1]), careplan(patient_id=inwoner, goals=[g2])
    a["id"], b["id"] = operator.create(a), operator.create(b)
    data = [(f"CarePlan/{a['id']}", "related"), (f"CarePlan/{b['id']}", "related")]
    operator.create(grant(inwoner, partner.organization, data=data))
    operator.update({**a, "goal": [{"reference": f"Goal/{g}"} for g in (g1, g2)]})
    operator.update({**b, "goal": []})

    assert partner.get(f"/Goal/{g1}").status_code == 200
    assert partner.get(f"/Goal/{g2}").status_code == 404


def test_a_related_permit_keeps_two_named_resources_with_one_id_apart(
    operator: Operator, inwoner: str, make_partner: PartnerFactory
) -> None:
    # One Consent names CareTeam/S and CarePlan/S. When it was written the team had Ans as
    # a member and the plan no performer; now the team has none and the plan has Ans.
    # Ans is neither what the plan referred to then nor what the team refers to now.
    partner = make_partner(scopes=("system/RelatedPerson.rs", "system/CarePlan.rs"))
    shared = f"same-{uuid.uuid4().hex[:8]}"
    ans = operator.create(related_person(patient_id=inwoner))
    team = {**careteam(patient_id=inwoner, members=[f"RelatedPerson/{ans}"]), "id": shared}
    plan = {**careplan(patient_id=inwoner), "id": shared}
    operator.update(team)
    operator.update(plan)
    data = [(f"CareTeam/{shared}", "related"), (f"CarePlan/{shared}", "related")]
    operator.create(grant(inwoner, partner.organization, data=data))
    assert partner.get(f"/RelatedPerson/{ans}").status_code == 200
    operator.update({**team, "participant": []})
    performer = {"reference": f"RelatedPerson/{ans}"}
    operator.update(
        {**plan, "activity": [{"detail": {"status": "scheduled", "performer": [performer]}}]}
    )

    assert partner.get(f"/RelatedPerson/{ans}").status_code == 404


def test_a_nested_deny_for_one_actor_leaves_the_other_actors_grant(
    operator: Operator, inwoner: str, make_partner: PartnerFactory
) -> None:
    # One Consent for two partners; the deny inside it names one of them.
    kept, denied = make_partner(), make_partner()
    target = operator.create(goal(patient_id=inwoner))
    operator.create(
        grant(
            inwoner,
            kept.organization,
            denied.organization,
            denies=[{"actor": [{"role": ROLE, "reference": {"reference": denied.organization}}]}],
        )
    )

    assert kept.get(f"/Goal/{target}").status_code == 200
    assert denied.get(f"/Goal/{target}").status_code == 404


def test_the_inwoners_app_sees_the_shared_directory_besides_her_own_compartment(
    operator: Operator, inwoner: str, make_inwoner_app: Callable[[str], httpx.Client]
) -> None:
    # decision.visible for a patient-kind caller: her rows or the shared directory's.
    org = operator.create(organization(name=f"Wijkteam {uuid.uuid4().hex[:6]}"))
    person = operator.create(practitioner())
    own = operator.create(goal(patient_id=inwoner))
    other = operator.create(goal(patient_id=operator.create({"resourceType": "Patient"})))
    try:
        app = make_inwoner_app(inwoner)
        assert app.get(f"/Organization/{org}").status_code == 200
        assert app.get(f"/Practitioner/{person}").status_code == 200
        assert app.get(f"/Goal/{own}").status_code == 200
        assert app.get(f"/Goal/{other}").status_code == 404
    finally:
        operator.delete("Organization", org)
        operator.delete("Practitioner", person)


ROLE = {"coding": [{"code": "IRCP"}]}


def test_an_instance_deny_hides_the_named_resource_and_not_what_it_refers_to(
    operator: Operator, inwoner: str, partner: Partner
) -> None:
    # meaning "instance" names one resource only: the deny must not follow the plan's
    # references as a "related" one does (the data_meaning condition of ``_match``).
    kept = operator.create(goal(patient_id=inwoner))
    named = operator.create(careplan(patient_id=inwoner, goals=[kept]))
    operator.create(
        grant(inwoner, partner.organization, denies=[{"data": [instance(f"CarePlan/{named}")]}])
    )

    assert partner.get(f"/CarePlan/{named}").status_code == 404
    assert partner.get(f"/Goal/{kept}").status_code == 200


def test_a_label_grant_asks_for_the_security_label_not_a_code_alike(
    operator: Operator, inwoner: str, partner: Partner
) -> None:
    # A label grant matches ``meta.security`` only: a Goal whose category has the same
    # code (blind-indexed as a token like the label) is not labelled (``_security`` param).
    labelled = operator.create({**goal(patient_id=inwoner), "meta": {"security": [{"code": "R"}]}})
    alike = operator.create(
        {
            **goal(patient_id=inwoner),
            "category": [{"coding": [{"system": "https://example.org/soort", "code": "R"}]}],
        }
    )
    # Another label is not this label: the grant names one code.
    other = operator.create({**goal(patient_id=inwoner), "meta": {"security": [{"code": "V"}]}})
    operator.create(grant(inwoner, partner.organization, label={"code": "R"}))

    assert partner.get(f"/Goal/{labelled}").status_code == 200
    assert partner.get(f"/Goal/{alike}").status_code == 404
    assert partner.get(f"/Goal/{other}").status_code == 404


def instance(reference: str) -> dict[str, object]:
    return {"meaning": "instance", "reference": {"reference": reference}}


def related(reference: str) -> dict[str, object]:
    return {"meaning": "related", "reference": {"reference": reference}}
