"""A partner sees what the inwoner granted and nothing more, not even that more exists.

One test per path a row could slip out by: read, search, counts, ``_id``, ``_include``,
``_revinclude``, ``_history`` (instance and type), vread, a replayed next-link, the access
log, other partners' Consents, a label-based deny and a ``related`` data grant. Everything
goes over HTTP with real partner tokens.
"""

from __future__ import annotations

import uuid

import httpx
from sqlalchemy import select

from tests.factories import careplan, goal, observation, provenance
from tests.integration.consent.conftest import (
    RESTRICTED,
    Operator,
    Partner,
    PartnerFactory,
    grant,
    ids,
)
from vault.audit.log import VAULT_CHAIN
from vault.audit.models import AuditChain
from vault.kernel.runtime import Runtime
from vault.store.models import ResourceRow


def _goals(operator: Operator, patient_id: str, count: int) -> list[str]:
    return [operator.create(goal(patient_id=patient_id, text=f"doel {n}")) for n in range(count)]


def _labelled_goal(operator: Operator, patient_id: str) -> str:
    return operator.create(
        goal(patient_id=patient_id, text="geheim", meta={"security": [RESTRICTED]})
    )


def _without_id(response: httpx.Response, resource_id: str) -> bytes:
    return response.content.replace(resource_id.encode(), b"<id>")


def test_a_resource_of_another_inwoner_answers_exactly_like_one_that_does_not_exist(
    operator: Operator, inwoner: str, partner: Partner
) -> None:
    other = operator.create({"resourceType": "Patient"})
    theirs = operator.create(goal(patient_id=other))
    (mine,) = _goals(operator, inwoner, 1)
    operator.create(grant(inwoner, partner.organization, classes=("Goal",)))

    assert partner.get(f"/Goal/{mine}").status_code == 200
    hidden = partner.get(f"/Goal/{theirs}")
    missing_id = str(uuid.uuid4())
    missing = partner.get(f"/Goal/{missing_id}")
    assert hidden.status_code == missing.status_code == 404
    assert hidden.headers["content-type"] == missing.headers["content-type"]
    assert _without_id(hidden, theirs) == _without_id(missing, missing_id)
    assert partner.get(f"/Goal/{theirs}/_history/1").status_code == 404
    assert partner.get(f"/Patient/{other}").status_code == 404


def test_include_leaves_out_a_goal_outside_the_grant(
    operator: Operator, inwoner: str, partner: Partner
) -> None:
    shared, private = _goals(operator, inwoner, 2)
    plan = operator.create(careplan(patient_id=inwoner, goals=[shared, private]))
    operator.create(grant(inwoner, partner.organization, classes=("CarePlan",)))
    operator.create(grant(inwoner, partner.organization, data=[(f"Goal/{shared}", "instance")]))

    response = partner.get("/CarePlan", _include="CarePlan:goal")
    assert ids(response, mode="match") == {f"CarePlan/{plan}"}
    assert ids(response, mode="include") == {f"Goal/{shared}"}
    assert response.json()["total"] == 1


def test_revinclude_leaves_out_provenance_outside_the_grant(
    operator: Operator, inwoner: str, partner: Partner
) -> None:
    (target,) = _goals(operator, inwoner, 1)
    granted = operator.create(provenance(targets=[f"Goal/{target}"]))
    hidden = operator.create(provenance(targets=[f"Goal/{target}"]))
    operator.create(grant(inwoner, partner.organization, classes=("Goal",)))

    response = partner.get("/Goal", _revinclude="Provenance:target")
    assert ids(response, mode="match") == {f"Goal/{target}"}
    assert ids(response, mode="include") == set()

    operator.create(
        grant(inwoner, partner.organization, data=[(f"Provenance/{granted}", "instance")])
    )
    response = partner.get("/Goal", _revinclude="Provenance:target")
    assert ids(response, mode="include") == {f"Provenance/{granted}"}
    assert f"Provenance/{hidden}" not in ids(response)


def test_history_of_a_resource_is_gone_once_its_grant_is_revoked(
    operator: Operator, inwoner: str, partner: Partner
) -> None:
    (target,) = _goals(operator, inwoner, 1)
    operator.update({**operator.read("Goal", target), "lifecycleStatus": "completed"})
    consent_id = operator.create(grant(inwoner, partner.organization, classes=("Goal",)))
    assert len(ids(partner.get(f"/Goal/{target}/_history"))) == 1
    assert len(partner.get(f"/Goal/{target}/_history").json()["entry"]) == 2
    assert f"Goal/{target}" in ids(partner.get("/Goal/_history"))

    operator.delete("Consent", consent_id)

    assert partner.get(f"/Goal/{target}/_history").status_code == 404
    assert f"Goal/{target}" not in ids(partner.get("/Goal/_history"))
    assert partner.get(f"/Goal/{target}/_history/1").status_code == 404
    assert partner.get(f"/Goal/{target}").status_code == 404


def test_a_next_link_replayed_after_revocation_returns_nothing_revoked(
    operator: Operator, inwoner: str, partner: Partner
) -> None:
    _goals(operator, inwoner, 3)
    body = grant(inwoner, partner.organization, classes=("Goal",))
    consent_id = operator.create(body)
    first = partner.get("/Goal", patient=inwoner, _count="1").json()
    assert first["total"] == 3
    (next_url,) = [link["url"] for link in first["link"] if link["relation"] == "next"]
    assert len(partner.fhir.get(next_url).json()["entry"]) == 1

    operator.update({**body, "id": consent_id, "status": "inactive"})

    replayed = partner.fhir.get(next_url)
    assert replayed.status_code == 200
    assert replayed.json()["total"] == 0
    assert ids(replayed) == set()


def test_counts_never_count_hidden_rows(operator: Operator, inwoner: str, partner: Partner) -> None:
    _goals(operator, inwoner, 2)
    _labelled_goal(operator, inwoner)
    other = operator.create({"resourceType": "Patient"})
    _goals(operator, other, 4)
    operator.create(
        grant(
            inwoner,
            partner.organization,
            classes=("Goal",),
            denies=[{"securityLabel": [RESTRICTED]}],
        )
    )

    assert partner.get("/Goal", _summary="count").json()["total"] == 2
    assert partner.get("/Goal", patient=inwoner, _summary="count").json()["total"] == 2
    paged = partner.get("/Goal", _count="1", _total="accurate").json()
    assert paged["total"] == 2
    assert len(paged["entry"]) == 1
    assert partner.get("/Goal", patient=other, _summary="count").json()["total"] == 0
    assert partner.get("/Goal", _security=f"{RESTRICTED['system']}|R").json()["total"] == 0


def test_an_id_search_finds_only_granted_ids(
    operator: Operator, inwoner: str, partner: Partner
) -> None:
    (visible,) = _goals(operator, inwoner, 1)
    labelled = _labelled_goal(operator, inwoner)
    other = operator.create({"resourceType": "Patient"})
    (theirs,) = _goals(operator, other, 1)
    operator.create(
        grant(
            inwoner,
            partner.organization,
            classes=("Goal",),
            denies=[{"securityLabel": [RESTRICTED]}],
        )
    )

    wanted = ",".join([visible, labelled, theirs, str(uuid.uuid4())])
    response = partner.get("/Goal", _id=wanted)
    assert ids(response) == {f"Goal/{visible}"}
    assert response.json()["total"] == 1
    assert partner.get("/Goal", _id=theirs).json()["total"] == 0


def test_audit_events_are_never_readable_by_a_partner(
    runtime: Runtime, operator: Operator, inwoner: str, partner: Partner
) -> None:
    (target,) = _goals(operator, inwoner, 1)
    operator.create(grant(inwoner, partner.organization))  # every type the inwoner has
    assert partner.get(f"/Goal/{target}").status_code == 200  # a record in the inwoner's chain
    assert partner.get(f"/Goal/{uuid.uuid4()}").status_code == 404  # one in the vault's chain
    runtime.audit.settle_all()  # stored as AuditEvents: what a partner must still not reach
    with runtime.db.read() as conn:
        events = {
            chain: conn.scalars(
                select(ResourceRow.resource_id)
                .join(AuditChain, AuditChain.resource_pk == ResourceRow.pk)
                .where(AuditChain.chain == chain)
            ).all()
            for chain in (inwoner, VAULT_CHAIN)
        }
    assert events[inwoner] and events[VAULT_CHAIN]

    for event_id in [events[inwoner][0], events[VAULT_CHAIN][-1]]:
        assert partner.get(f"/AuditEvent/{event_id}").status_code == 404
        assert partner.get(f"/AuditEvent/{event_id}/_history").status_code == 404
        assert partner.get(f"/AuditEvent/{event_id}/_history/1").status_code == 404
    assert partner.get("/AuditEvent", _summary="count").json()["total"] == 0
    assert partner.get("/AuditEvent", patient=inwoner).json()["total"] == 0
    assert ids(partner.get("/AuditEvent/_history")) == set()
    assert ids(partner.get("/Goal", _revinclude="AuditEvent:entity"), mode="include") == set()


def test_a_partner_reads_only_the_consents_that_name_it(
    operator: Operator, inwoner: str, make_partner: PartnerFactory
) -> None:
    first, second = make_partner(), make_partner()
    mine = operator.create(grant(inwoner, first.organization))  # no class: everything
    theirs = operator.create(grant(inwoner, second.organization, classes=("Goal",)))

    assert ids(first.get("/Consent")) == {f"Consent/{mine}"}
    assert ids(first.get("/Consent", patient=inwoner)) == {f"Consent/{mine}"}
    assert first.get(f"/Consent/{theirs}").status_code == 404
    assert first.get(f"/Consent/{theirs}/_history").status_code == 404
    assert ids(second.get("/Consent")) == {f"Consent/{theirs}"}
    assert second.get(f"/Consent/{mine}").status_code == 404


def test_a_deny_by_security_label_hides_the_goal_everywhere(
    operator: Operator, inwoner: str, partner: Partner
) -> None:
    (open_goal,) = _goals(operator, inwoner, 1)
    secret = _labelled_goal(operator, inwoner)
    plan = operator.create(careplan(patient_id=inwoner, goals=[open_goal, secret]))
    operator.create(provenance(targets=[f"Goal/{secret}"]))
    operator.create(
        grant(
            inwoner,
            partner.organization,
            classes=("Goal", "CarePlan", "Provenance"),
            denies=[{"securityLabel": [RESTRICTED]}],
        )
    )

    assert partner.get(f"/Goal/{open_goal}").status_code == 200
    assert partner.get(f"/Goal/{secret}").status_code == 404
    assert partner.get(f"/Goal/{secret}/_history/1").status_code == 404
    assert partner.get(f"/Goal/{secret}/_history").status_code == 404
    assert ids(partner.get("/Goal")) == {f"Goal/{open_goal}"}
    assert ids(partner.get("/Goal/_history")) >= {f"Goal/{open_goal}"}
    assert f"Goal/{secret}" not in ids(partner.get("/Goal/_history"))
    included = partner.get("/CarePlan", _include="CarePlan:goal")
    assert ids(included) == {f"CarePlan/{plan}", f"Goal/{open_goal}"}
    assert partner.get("/Provenance", target=f"Goal/{secret}").json()["total"] == 1


def test_a_denied_goal_stays_hidden_after_it_is_deleted(
    operator: Operator, inwoner: str, partner: Partner
) -> None:
    secret = _labelled_goal(operator, inwoner)
    operator.create(
        grant(
            inwoner,
            partner.organization,
            classes=("Goal",),
            denies=[{"securityLabel": [RESTRICTED]}],
        )
    )
    operator.delete("Goal", secret)

    assert partner.get(f"/Goal/{secret}").status_code == 404
    assert partner.get(f"/Goal/{secret}/_history").status_code == 404
    assert partner.get(f"/Goal/{secret}/_history/1").status_code == 404
    assert f"Goal/{secret}" not in ids(partner.get("/Goal/_history"))


def test_a_label_added_later_hides_the_earlier_versions_too(
    operator: Operator, inwoner: str, partner: Partner
) -> None:
    (target,) = _goals(operator, inwoner, 1)
    operator.create(
        grant(
            inwoner,
            partner.organization,
            classes=("Goal",),
            denies=[{"securityLabel": [RESTRICTED]}],
        )
    )
    assert partner.get(f"/Goal/{target}/_history/1").status_code == 200
    operator.update({**operator.read("Goal", target), "meta": {"security": [RESTRICTED]}})

    assert partner.get(f"/Goal/{target}/_history/1").status_code == 404
    assert partner.get(f"/Goal/{target}/_history").status_code == 404
    assert f"Goal/{target}" not in ids(partner.get("/Goal/_history"))


def test_a_related_data_grant_covers_the_resource_and_what_it_refers_to(
    operator: Operator, inwoner: str, partner: Partner
) -> None:
    # FHIR consent-data-meaning "related": the instance and the instances it refers to.
    in_plan, outside = _goals(operator, inwoner, 2)
    plan = operator.create(careplan(patient_id=inwoner, goals=[in_plan]))
    about_plan = operator.create(provenance(targets=[f"CarePlan/{plan}"]))
    operator.create(grant(inwoner, partner.organization, data=[(f"CarePlan/{plan}", "related")]))

    assert partner.get(f"/CarePlan/{plan}").status_code == 200
    assert partner.get(f"/Goal/{in_plan}").status_code == 200
    assert partner.get(f"/Goal/{outside}").status_code == 404
    assert partner.get(f"/Provenance/{about_plan}").status_code == 404
    assert ids(partner.get("/Goal")) == {f"Goal/{in_plan}"}
    included = partner.get("/CarePlan", _include="CarePlan:goal")
    assert ids(included) == {f"CarePlan/{plan}", f"Goal/{in_plan}"}


def test_an_instance_data_grant_covers_only_that_resource(
    operator: Operator, inwoner: str, partner: Partner
) -> None:
    (in_plan,) = _goals(operator, inwoner, 1)
    plan = operator.create(careplan(patient_id=inwoner, goals=[in_plan]))
    operator.create(grant(inwoner, partner.organization, data=[(f"CarePlan/{plan}", "instance")]))

    assert partner.get(f"/CarePlan/{plan}").status_code == 200
    assert partner.get(f"/Goal/{in_plan}").status_code == 404
    assert ids(partner.get("/CarePlan", _include="CarePlan:goal")) == {f"CarePlan/{plan}"}


def test_a_related_grant_follows_every_reference_of_the_named_resource(
    operator: Operator, inwoner: str, partner: Partner
) -> None:
    score = operator.create(observation(patient_id=inwoner))
    target = operator.create(
        goal(patient_id=inwoner, outcomeReference=[{"reference": f"Observation/{score}"}])
    )
    operator.create(grant(inwoner, partner.organization, data=[(f"Goal/{target}", "related")]))

    assert partner.get(f"/Goal/{target}").status_code == 200
    assert partner.get(f"/Observation/{score}").status_code == 200
