"""The reference decision (``consent/policy.py``) on hand-picked cases.

The property-based test checks the SQL against this evaluator on random Consents; these
cases pin down what the evaluator itself says, so both cannot drift away together.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from tests.factories import consent
from vault.consent.compile import Grant, compile_consent
from vault.consent.policy import Facts, Request, permits

PATIENT = "p-1"
MEE = "Organization/mee"
GGZ = "Organization/ggz"
CONF = "http://terminology.hl7.org/CodeSystem/v3-Confidentiality"
NOW = 1_800_000_000_000_000


def rows(*, patient_id: str = PATIENT, **provision: Any) -> tuple[str, list[Grant]]:
    body = consent(patient_id=patient_id, actors=[MEE])
    body["provision"].update(provision)
    return patient_id, compile_consent(body, patient_id=patient_id)


def goal(
    goal_id: str = "g-1",
    *,
    patient_id: str | None = PATIENT,
    labels: frozenset[tuple[str | None, str]] = frozenset(),
    referenced_by: frozenset[tuple[str, str]] = frozenset(),
) -> Facts:
    return Facts("Goal", goal_id, patient_id, labels=labels, referenced_by=referenced_by)


def request(
    *grantees: str, action: str = "access", purposes: frozenset[str] = frozenset(), now: int = NOW
) -> Request:
    return Request(frozenset(grantees or (MEE,)), action, purposes, now)


def test_a_permit_lets_in_the_actor_it_names_and_nobody_else() -> None:
    consents = {"c": rows()}
    assert permits(consents, goal(), request(MEE))
    assert not permits(consents, goal(), request(GGZ))


def test_nothing_is_permitted_without_a_consent() -> None:
    assert not permits({}, goal(), request())


def test_a_consent_covers_only_its_own_inwoner() -> None:
    consents = {"c": rows(patient_id="p-2")}
    assert not permits(consents, goal(patient_id=PATIENT), request())


def test_the_action_must_be_granted() -> None:
    consents = {"c": rows()}
    assert not permits(consents, goal(), request(action="correct"))


def test_a_practitioner_actor_lets_in_a_request_on_their_behalf() -> None:
    body = consent(patient_id=PATIENT, actors=["Practitioner/devries"])
    consents = {"c": (PATIENT, compile_consent(body, patient_id=PATIENT))}
    assert permits(consents, goal(), request(GGZ, "Practitioner/devries"))
    assert not permits(consents, goal(), request(GGZ))


@pytest.mark.parametrize("resource_type", ["AuditEvent", "Consent"])
def test_all_types_never_covers_the_access_log_or_consents(resource_type: str) -> None:
    facts = Facts(resource_type, "x-1", PATIENT)
    assert not permits({"c": rows()}, facts, request())


def test_a_deny_cuts_out_of_its_own_consent_only() -> None:
    deny = {
        "type": "deny",
        "data": [{"meaning": "instance", "reference": {"reference": "Goal/g-1"}}],
    }
    with_deny = rows(provision=[deny])
    assert not permits({"c": with_deny}, goal("g-1"), request())
    assert permits({"c": with_deny}, goal("g-2"), request())
    assert permits({"c": with_deny, "other": rows()}, goal("g-1"), request())


def test_a_deny_by_label_matches_system_and_code() -> None:
    deny = {"type": "deny", "securityLabel": [{"system": CONF, "code": "R"}]}
    consents = {"c": rows(provision=[deny])}
    assert not permits(consents, goal(labels=frozenset({(CONF, "R")})), request())
    assert permits(consents, goal(labels=frozenset({("https://other.example", "R")})), request())
    assert permits(consents, goal(labels=frozenset({(None, "R")})), request())
    assert permits(consents, goal(labels=frozenset({(CONF, "N")})), request())


def test_a_label_without_system_matches_the_code_in_any_system() -> None:
    consents = {"c": rows(securityLabel=[{"code": "R"}])}
    assert permits(consents, goal(labels=frozenset({("https://other.example", "R")})), request())
    assert not permits(consents, goal(), request())


def test_a_period_includes_its_start_and_excludes_its_end() -> None:
    (_, grants) = rows()
    bounded = [replace(g, valid_from=NOW, valid_until=NOW + 10) for g in grants]
    consents = {"c": (PATIENT, bounded)}
    assert not permits(consents, goal(), request(now=NOW - 1))
    assert permits(consents, goal(), request(now=NOW))
    assert permits(consents, goal(), request(now=NOW + 9))
    assert not permits(consents, goal(), request(now=NOW + 10))


def test_a_purpose_must_be_one_the_request_has() -> None:
    consents = {"c": rows(purpose=[{"code": "TREAT"}])}
    assert permits(consents, goal(), request(purposes=frozenset({"TREAT", "HPAYMT"})))
    assert not permits(consents, goal(), request(purposes=frozenset({"HPAYMT"})))
    assert not permits(consents, goal(), request())


def test_related_data_covers_what_the_named_resource_refers_to() -> None:
    related = rows(data=[{"meaning": "related", "reference": {"reference": "CarePlan/cp"}}])
    instance = rows(data=[{"meaning": "instance", "reference": {"reference": "CarePlan/cp"}}])
    in_plan = goal(referenced_by=frozenset({("CarePlan", "cp")}))
    assert permits({"c": related}, in_plan, request())
    assert not permits({"c": related}, goal(), request())
    assert not permits({"c": instance}, in_plan, request())
    plan = Facts("CarePlan", "cp", PATIENT)
    assert permits({"c": related}, plan, request())
    assert permits({"c": instance}, plan, request())


def test_related_reads_the_references_of_when_the_consent_was_written_and_of_now() -> None:
    related = rows(data=[{"meaning": "related", "reference": {"reference": "CarePlan/cp"}}])
    plan = frozenset({("CarePlan", "cp")})
    added_since = replace(goal(referenced_by=plan), referenced_by_then={"c": frozenset()})
    removed_since = replace(goal(), referenced_by_then={"c": plan})
    always = replace(goal(referenced_by=plan), referenced_by_then={"c": plan})
    # A reference added after the Consent was written (by a partner's write, say) grants
    # nothing; one removed since ends at once.
    assert not permits({"c": related}, added_since, request())
    assert not permits({"c": related}, removed_since, request())
    assert permits({"c": related}, always, request())
    # A related deny holds for either: a later write never narrows it.
    all_goals = rows(
        provision=[
            {
                "type": "deny",
                "data": [{"meaning": "related", "reference": {"reference": "CarePlan/cp"}}],
            }
        ]
    )
    assert not permits({"c": all_goals}, added_since, request())
    assert not permits({"c": all_goals}, removed_since, request())
    assert permits({"c": all_goals}, goal(), request())


def test_the_shared_directory_is_open_and_unowned_records_are_not() -> None:
    assert permits({}, Facts("Organization", "o-1", None), request())
    assert not permits({"c": rows()}, Facts("AuditEvent", "a-1", None), request())


def test_the_operator_sees_every_row() -> None:
    operator = Request(frozenset(), "access", frozenset(), NOW, kind="full")
    assert permits({}, goal(), operator)
    assert permits({}, Facts("AuditEvent", "a-1", None), operator)


def test_the_inwoner_sees_her_own_compartment_and_the_shared_directory_only() -> None:
    her = Request(frozenset(), "access", frozenset(), NOW, kind="patient", patient_id=PATIENT)
    assert permits({}, goal(), her)
    assert not permits({}, goal(patient_id="p-2"), her)
    assert permits({}, Facts("Organization", "o-1", None), her)
    assert not permits({}, Facts("AuditEvent", "a-1", None), her)
    # A grant to someone else changes nothing for her, and she needs none.
    assert permits({"c": rows(type="deny")}, goal(), her)


def test_a_party_sees_a_consent_that_names_it_until_the_vault_is_erased() -> None:
    own = Facts("Consent", "c-1", PATIENT, actors=frozenset({MEE}))
    assert permits({}, own, request())
    assert not permits({}, own, request(GGZ))
    assert not permits({}, own, request(action="correct"))
    assert not permits({}, replace(own, erased=True), request())
