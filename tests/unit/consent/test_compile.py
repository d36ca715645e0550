"""Consent -> grant rows: every provision element the vault supports, and every refusal.

A refusal is its own test: each names the element it objects to, because an inwoner's
Consent that the vault silently half-understood would grant more, or less, than they said.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.factories import consent
from vault.consent.compile import Grant, compile_consent
from vault.kernel.errors import Unprocessable
from vault.kernel.fhirdata import parse_date_range

PATIENT = "p-1"
CONF = "http://terminology.hl7.org/CodeSystem/v3-Confidentiality"
ACT_REASON = "http://terminology.hl7.org/CodeSystem/v3-ActReason"


def actor(ref: str) -> dict[str, Any]:
    return {"role": {"coding": [{"code": "IRCP"}]}, "reference": {"reference": ref}}


def action(*codes: str) -> list[dict[str, Any]]:
    system = "http://terminology.hl7.org/CodeSystem/consentaction"
    return [{"coding": [{"system": system, "code": code}]} for code in codes]


def classes(*types: str) -> list[dict[str, str]]:
    return [{"system": "http://hl7.org/fhir/resource-types", "code": t} for t in types]


def data(ref: str, meaning: str = "instance") -> dict[str, Any]:
    return {"meaning": meaning, "reference": {"reference": ref}}


def label(code: str, system: str | None = CONF) -> list[dict[str, str]]:
    return [{"system": system, "code": code}] if system else [{"code": code}]


def with_provision(provision: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {**consent(patient_id=PATIENT), "provision": provision, **extra}


def permit(*refs: str, **elements: Any) -> dict[str, Any]:
    return {
        "type": "permit",
        "actor": [actor(r) for r in refs or ("Organization/mee",)],
        "action": action("access"),
        **elements,
    }


def compiled(provision: dict[str, Any], **extra: Any) -> list[Grant]:
    return compile_consent(with_provision(provision, **extra), patient_id=PATIENT)


def refusal(provision: dict[str, Any], **extra: Any) -> Unprocessable:
    with pytest.raises(Unprocessable) as caught:
        compiled(provision, **extra)
    assert caught.value.code == "not-supported"
    return caught.value


# -- what compiles -------------------------------------------------------------------------


def test_a_minimal_permit_is_one_row_for_every_type() -> None:
    assert compiled(permit()) == [
        Grant(effect="permit", grantee="Organization/mee", action="access", resource_type="*")
    ]


def test_a_root_provision_without_type_is_a_permit() -> None:
    provision = permit()
    del provision["type"]
    assert [g.effect for g in compiled(provision)] == ["permit"]


@pytest.mark.parametrize(
    "ref",
    ["Organization/mee", "Practitioner/devries", "RelatedPerson/ans"],
)
def test_each_kind_of_actor_becomes_the_grantee(ref: str) -> None:
    assert [g.grantee for g in compiled(permit(ref))] == [ref]


def test_an_absolute_actor_reference_is_read_as_a_local_one() -> None:
    rows = compiled(permit("https://vault.example/fhir/Organization/mee"))
    assert [g.grantee for g in rows] == ["Organization/mee"]


def test_two_actors_get_a_row_each() -> None:
    rows = compiled(permit("Organization/mee", "Practitioner/devries"))
    assert sorted(g.grantee or "" for g in rows) == ["Organization/mee", "Practitioner/devries"]


def test_access_and_correct_are_separate_rows() -> None:
    rows = compiled({**permit(), "action": action("access", "correct")})
    assert sorted(g.action or "" for g in rows) == ["access", "correct"]


def test_an_action_may_be_a_bare_coding() -> None:
    rows = compiled({**permit(), "action": [{"coding": [{"code": "correct"}]}]})
    assert [g.action for g in rows] == ["correct"]


def test_class_limits_the_rows_to_those_resource_types() -> None:
    rows = compiled(permit(**{"class": classes("Goal", "CarePlan")}))
    assert sorted(g.resource_type for g in rows) == ["CarePlan", "Goal"]


@pytest.mark.parametrize("meaning", ["instance", "related"])
def test_data_names_one_resource_with_its_meaning(meaning: str) -> None:
    rows = compiled(permit(data=[data("Goal/g-1", meaning)]))
    assert [(g.data_type, g.data_id, g.data_meaning, g.resource_type) for g in rows] == [
        ("Goal", "g-1", meaning, "*")
    ]


def test_a_security_label_is_carried_with_its_system() -> None:
    rows = compiled(permit(securityLabel=label("R")))
    assert [(g.label_system, g.label_code) for g in rows] == [(CONF, "R")]


def test_a_security_label_without_system_matches_on_code_alone() -> None:
    rows = compiled(permit(securityLabel=label("R", system=None)))
    assert [(g.label_system, g.label_code) for g in rows] == [(None, "R")]


def test_a_period_runs_from_its_start_to_the_end_of_its_last_day() -> None:
    rows = compiled(permit(period={"start": "2026-01-01", "end": "2026-06-30"}))
    assert [(g.valid_from, g.valid_until) for g in rows] == [
        (parse_date_range("2026-01-01")[0], parse_date_range("2026-07-01")[0])
    ]


def test_an_open_ended_period_has_one_bound() -> None:
    (row,) = compiled(permit(period={"end": "2026-06-30T12:00:00Z"}))
    assert row.valid_from is None
    assert row.valid_until == parse_date_range("2026-06-30T12:00:01Z")[0]


def test_each_purpose_is_a_row() -> None:
    purposes = [{"system": ACT_REASON, "code": "TREAT"}, {"system": ACT_REASON, "code": "HRESCH"}]
    rows = compiled(permit(purpose=purposes))
    assert sorted(g.purpose or "" for g in rows) == ["HRESCH", "TREAT"]


def test_rows_are_every_combination_of_the_lists() -> None:
    rows = compiled(
        permit(
            "Organization/a",
            "Organization/b",
            action=action("access", "correct"),
            data=[data("Goal/g-1"), data("CarePlan/c-1", "related")],
            purpose=[{"code": "TREAT"}, {"code": "ETREAT"}],
            **{"class": classes("Goal", "CarePlan", "CareTeam")},
        )
    )
    assert len(rows) == 2 * 2 * 3 * 2 * 2
    assert len(set(rows)) == len(rows)


def test_a_nested_deny_inherits_and_narrows_its_parent() -> None:
    root = permit(
        "Organization/a",
        "Organization/b",
        action=action("access", "correct"),
        period={"start": "2026-01-01", "end": "2026-12-31"},
        **{"class": classes("Goal", "CarePlan")},
    )
    root["provision"] = [
        {
            "type": "deny",
            "actor": [actor("Organization/b")],
            "action": action("correct"),
            "class": classes("Goal"),
            "securityLabel": label("R"),
            "period": {"start": "2026-03-01", "end": "2027-12-31"},
        }
    ]
    denies = [g for g in compiled(root) if g.effect == "deny"]
    assert denies == [
        Grant(
            effect="deny",
            grantee="Organization/b",
            action="correct",
            resource_type="Goal",
            label_system=CONF,
            label_code="R",
            valid_from=parse_date_range("2026-03-01")[0],
            valid_until=parse_date_range("2027-01-01")[0],
        )
    ]


def test_a_nested_deny_without_own_constraints_covers_everything_its_parent_grants() -> None:
    root = permit("Organization/a", **{"class": classes("Goal")})
    root["provision"] = [{"type": "deny", "data": [data("Goal/secret")]}]
    rows = compiled(root)
    assert {(g.effect, g.grantee, g.action, g.resource_type, g.data_id) for g in rows} == {
        ("permit", "Organization/a", "access", "Goal", None),
        ("deny", "Organization/a", "access", "Goal", "secret"),
    }


def test_a_nested_permit_under_a_root_permit_adds_narrower_rows() -> None:
    root = permit("Organization/a", "Organization/b")
    root["provision"] = [
        {"type": "permit", "actor": [actor("Organization/b")], "action": action("access")}
    ]
    rows = compiled(root)
    assert sorted((g.effect, g.grantee) for g in rows) == [
        ("permit", "Organization/a"),
        ("permit", "Organization/b"),
        ("permit", "Organization/b"),
    ]


def test_a_permit_under_a_root_deny_is_the_only_grant() -> None:
    root = {
        "type": "deny",
        "actor": [actor("Organization/a")],
        "provision": [
            {"type": "permit", "action": action("access"), "class": classes("Goal")},
        ],
    }
    assert compiled(root) == [
        Grant(effect="permit", grantee="Organization/a", action="access", resource_type="Goal")
    ]


def test_a_deny_inside_a_root_deny_adds_nothing() -> None:
    root = {"type": "deny", "provision": [{"type": "deny", "class": classes("Goal")}]}
    assert compiled(root) == []


@pytest.mark.parametrize(
    "status", ["inactive", "draft", "proposed", "rejected", "entered-in-error"]
)
def test_a_consent_that_is_not_active_grants_nothing(status: str) -> None:
    assert compiled(permit(), status=status) == []


def test_a_consent_that_is_not_active_is_still_checked() -> None:
    refusal({**permit(), "code": [{"text": "x"}]}, status="inactive")


# -- what is refused -----------------------------------------------------------------------


def test_a_permit_without_actor_is_refused() -> None:
    provision = permit()
    del provision["actor"]
    assert refusal(provision).expression == ["Consent.provision.actor"]


def test_a_permit_without_action_is_refused() -> None:
    provision = permit()
    del provision["action"]
    assert refusal(provision).expression == ["Consent.provision.action"]


def test_a_careteam_as_actor_is_refused() -> None:
    error = refusal(permit("CareTeam/team-1"))
    assert error.expression == ["Consent.provision.actor[0].reference"]
    assert "one by one" in error.diagnostics


def test_an_actor_without_reference_is_refused() -> None:
    refusal({**permit(), "actor": [{"role": {"text": "x"}}]})


def test_an_unknown_action_is_refused() -> None:
    error = refusal({**permit(), "action": action("disclose")})
    assert error.expression == ["Consent.provision.action"]
    assert "disclose" in error.diagnostics


def test_class_auditevent_is_refused() -> None:
    error = refusal(permit(**{"class": classes("AuditEvent")}))
    assert error.expression == ["Consent.provision.class"]


def test_class_consent_is_refused() -> None:
    # A partner sees the Consents that name it, never another partner's grant.
    error = refusal(permit(**{"class": classes("Consent")}))
    assert error.expression == ["Consent.provision.class"]


def test_a_class_from_another_system_is_refused() -> None:
    refusal(permit(**{"class": [{"system": "http://loinc.org", "code": "Goal"}]}))


def test_an_unknown_class_is_refused() -> None:
    refusal(permit(**{"class": classes("MedicationRequest")}))


def test_two_security_labels_are_refused() -> None:
    error = refusal(permit(securityLabel=[*label("R"), *label("N")]))
    assert error.expression == ["Consent.provision.securityLabel"]


def test_a_security_label_without_code_is_refused() -> None:
    refusal(permit(securityLabel=[{"system": CONF}]))


def test_provision_code_is_refused() -> None:
    error = refusal(permit(code=[{"coding": [{"system": "http://loinc.org", "code": "1"}]}]))
    assert error.expression == ["Consent.provision.code"]


def test_provision_data_period_is_refused() -> None:
    error = refusal(permit(dataPeriod={"start": "2026-01-01"}))
    assert error.expression == ["Consent.provision.dataPeriod"]


def test_nesting_two_levels_deep_is_refused() -> None:
    root = permit()
    root["provision"] = [
        {
            "type": "deny",
            "class": classes("Goal"),
            "provision": [{"type": "permit", "securityLabel": label("N")}],
        }
    ]
    assert refusal(root).expression == ["Consent.provision.provision[0].provision"]


def test_a_nested_provision_without_type_is_refused() -> None:
    root = permit()
    root["provision"] = [{"class": classes("Goal")}]
    assert refusal(root).expression == ["Consent.provision.provision[0].type"]


def test_a_nested_provision_outside_its_parent_is_refused() -> None:
    root = permit(**{"class": classes("Goal")})
    root["provision"] = [{"type": "deny", "class": classes("CarePlan")}]
    assert refusal(root).expression == ["Consent.provision.provision[0].class"]


def test_a_nested_actor_outside_its_parent_is_refused() -> None:
    root = permit("Organization/a")
    root["provision"] = [{"type": "deny", "actor": [actor("Organization/b")]}]
    refusal(root)


def test_a_label_on_both_a_provision_and_its_parent_is_refused() -> None:
    root = permit(securityLabel=label("N"))
    root["provision"] = [{"type": "deny", "securityLabel": label("R")}]
    refusal(root)


def test_data_on_both_a_provision_and_its_parent_is_refused() -> None:
    root = permit(data=[data("CarePlan/c-1", "related")])
    root["provision"] = [{"type": "deny", "data": [data("Goal/g-1")]}]
    refusal(root)


@pytest.mark.parametrize("meaning", ["dependents", "authoredby", None])
def test_a_data_meaning_other_than_instance_or_related_is_refused(meaning: str | None) -> None:
    error = refusal(permit(data=[{"meaning": meaning, "reference": {"reference": "Goal/g"}}]))
    assert error.expression == ["Consent.provision.data[0].meaning"]


def test_data_pointing_at_an_audit_event_is_refused() -> None:
    refusal(permit(data=[data("AuditEvent/a-1")]))


def test_a_period_that_ends_before_it_starts_is_refused() -> None:
    error = refusal(permit(period={"start": "2026-06-01", "end": "2026-01-01"}))
    assert error.expression == ["Consent.provision.period"]


def test_a_period_with_an_invalid_date_is_refused() -> None:
    refusal(permit(period={"end": "2026-02-30"}))


def test_a_modifier_extension_is_refused() -> None:
    refusal(permit(modifierExtension=[{"url": "https://example.org/x", "valueBoolean": True}]))


def test_a_consent_without_patient_privacy_scope_is_refused() -> None:
    scope = {"coding": [{"code": "research"}]}
    assert refusal(permit(), scope=scope).expression == ["Consent.scope"]


def test_a_consent_about_another_patient_is_refused() -> None:
    other = {"reference": "Patient/someone-else"}
    assert refusal(permit(), patient=other).expression == ["Consent.patient"]


def test_a_consent_without_provision_is_refused() -> None:
    body = with_provision(permit())
    del body["provision"]
    with pytest.raises(Unprocessable):
        compile_consent(body, patient_id=PATIENT)


# -- every refusal says what is wrong and where ---------------------------------------------


def nested(parent: dict[str, Any], *children: Any) -> dict[str, Any]:
    return {**parent, "provision": list(children)}


SYSTEM = "http://hl7.org/fhir/resource-types"
CHILD = "Consent.provision.provision[0]"

# (provision, Consent elements besides it, diagnostics, expression): the OperationOutcome an
# app that POSTs or PUTs the Consent gets back, so the inwoner can be told what to change.
REFUSALS: dict[str, tuple[Any, dict[str, Any], str, str]] = {
    "scope": (
        permit(),
        {"scope": {"coding": [{"code": "research"}]}},
        "Only Consents with scope patient-privacy are supported",
        "Consent.scope",
    ),
    "patient": (
        permit(),
        {"patient": {"reference": "Patient/someone-else"}},
        "Consent.patient must be the inwoner the Consent belongs to",
        "Consent.patient",
    ),
    "no provision": (
        None,
        {},
        "A Consent needs a provision that says who may see what",
        "Consent.provision",
    ),
    "unknown element": (
        permit(code=[{"text": "x"}]),
        {},
        "Consent.provision.code is not supported by this vault",
        "Consent.provision.code",
    ),
    "modifierExtension": (
        permit(modifierExtension=[{"url": "https://example.org/x", "valueBoolean": True}]),
        {},
        "modifierExtension on a provision is not supported",
        "Consent.provision.modifierExtension",
    ),
    "nested without type": (
        nested(permit(), {"class": classes("Goal")}),
        {},
        f"{CHILD}.type must be permit or deny",
        f"{CHILD}.type",
    ),
    "nested twice": (
        nested(permit(), {"type": "deny", "provision": [{"type": "permit"}]}),
        {},
        "Provisions nested more than one level deep are not supported",
        f"{CHILD}.provision",
    ),
    "nested not an object": (
        nested(permit(), "deny"),
        {},
        "A provision must be an object",
        CHILD,
    ),
    "actor not a grantee": (
        permit("CareTeam/team-1"),
        {},
        "An actor must be an Organization, Practitioner or RelatedPerson "
        "(name the members of a team one by one)",
        "Consent.provision.actor[0].reference",
    ),
    "actor outside the parent": (
        nested(permit("Organization/a"), {"type": "deny", "actor": [actor("Organization/b")]}),
        {},
        f"{CHILD}.actor names nothing its parent provision covers",
        f"{CHILD}.actor",
    ),
    "action without code": (
        {**permit(), "action": [{"coding": [{"system": "x"}]}]},
        {},
        "Consent.provision.action needs a code",
        "Consent.provision.action",
    ),
    "unknown action": (
        {**permit(), "action": action("disclose")},
        {},
        "Action 'disclose' is not supported; use access or correct",
        "Consent.provision.action",
    ),
    "action outside the parent": (
        nested(permit(), {"type": "permit", "action": action("correct")}),
        {},
        f"{CHILD}.action names nothing its parent provision covers",
        f"{CHILD}.action",
    ),
    "class from another system": (
        permit(**{"class": [{"system": "http://loinc.org", "code": "Goal"}]}),
        {},
        f"Consent.provision.class: system must be {SYSTEM}",
        "Consent.provision.class",
    ),
    "class never shared": (
        permit(**{"class": classes("AuditEvent")}),
        {},
        "'AuditEvent' cannot be shared through a Consent",
        "Consent.provision.class",
    ),
    "class outside the parent": (
        nested(
            permit(**{"class": classes("Goal")}), {"type": "deny", "class": classes("CarePlan")}
        ),
        {},
        f"{CHILD}.class names nothing its parent provision covers",
        f"{CHILD}.class",
    ),
    "data meaning": (
        permit(data=[{"meaning": "dependents", "reference": {"reference": "Goal/g"}}]),
        {},
        "data.meaning must be instance or related",
        "Consent.provision.data[0].meaning",
    ),
    "data reference": (
        permit(data=[data("AuditEvent/a-1")]),
        {},
        "data.reference must point at a resource of the inwoner's plan",
        "Consent.provision.data[0].reference",
    ),
    "data twice": (
        nested(permit(data=[data("CarePlan/c-1")]), {"type": "deny", "data": [data("Goal/g")]}),
        {},
        "data on both a provision and its parent is not supported",
        f"{CHILD}.data",
    ),
    "two labels": (
        permit(securityLabel=[*label("R"), *label("N")]),
        {},
        "A provision may name exactly one security label",
        "Consent.provision.securityLabel",
    ),
    "label twice": (
        nested(permit(securityLabel=label("N")), {"type": "deny", "securityLabel": label("R")}),
        {},
        "securityLabel on both a provision and its parent is not supported",
        f"{CHILD}.securityLabel",
    ),
    "purpose without code": (
        permit(purpose=[{"system": ACT_REASON, "code": ""}]),
        {},
        "Consent.provision.purpose needs a code",
        "Consent.provision.purpose",
    ),
    "purpose outside the parent": (
        nested(
            permit(purpose=[{"code": "TREAT"}]), {"type": "deny", "purpose": [{"code": "ETREAT"}]}
        ),
        {},
        f"{CHILD}.purpose names nothing its parent provision covers",
        f"{CHILD}.purpose",
    ),
    "invalid date": (
        permit(period={"start": "2026-02-30"}),
        {},
        "period has a date that is not valid",
        "Consent.provision.period",
    ),
    "ends before it starts": (
        permit(period={"start": "2026-06-01", "end": "2026-01-01"}),
        {},
        "period ends before it starts",
        "Consent.provision.period",
    ),
    "permit without actor": (
        {"type": "permit", "action": action("access")},
        {},
        "A permit must say who it is for (provision.actor)",
        "Consent.provision.actor",
    ),
    "permit without action": (
        {"type": "permit", "actor": [actor("Organization/mee")]},
        {},
        "A permit must say what they may do (provision.action: access or correct)",
        "Consent.provision.action",
    ),
}


@pytest.mark.parametrize(("case"), REFUSALS)
def test_each_refusal_says_what_is_wrong_and_where(case: str) -> None:
    provision, extra, diagnostics, expression = REFUSALS[case]
    body = {**with_provision(provision), **extra}
    if provision is None:
        del body["provision"]
    with pytest.raises(Unprocessable) as caught:
        compile_consent(body, patient_id=PATIENT)
    assert (caught.value.diagnostics, caught.value.expression) == (diagnostics, [expression])
    assert caught.value.code == "not-supported"


# -- edges of each rule --------------------------------------------------------------------


def test_a_permit_after_a_deny_inside_a_root_deny_still_compiles() -> None:
    root = {
        "type": "deny",
        "actor": [actor("Organization/a")],
        "provision": [
            {"type": "deny", "class": classes("CarePlan")},
            {"type": "permit", "action": action("access"), "class": classes("Goal")},
        ],
    }
    assert compiled(root) == [
        Grant(effect="permit", grantee="Organization/a", action="access", resource_type="Goal")
    ]


def test_a_period_with_only_a_start_has_no_end() -> None:
    (row,) = compiled(permit(period={"start": "2026-03-01"}))
    assert (row.valid_from, row.valid_until) == (parse_date_range("2026-03-01")[0], None)


def test_a_nested_period_without_bounds_keeps_its_parents() -> None:
    root = nested(
        permit(period={"start": "2026-01-01", "end": "2026-12-31"}),
        {"type": "deny", "class": classes("Goal"), "period": {}},
    )
    deny = next(g for g in compiled(root) if g.effect == "deny")
    assert (deny.valid_from, deny.valid_until) == (
        parse_date_range("2026-01-01")[0],
        parse_date_range("2027-01-01")[0],
    )


def test_a_period_of_one_day_is_that_day() -> None:
    (row,) = compiled(permit(period={"start": "2026-03-01", "end": "2026-03-01"}))
    assert (row.valid_from, row.valid_until) == parse_date_range("2026-03-01")


def test_a_period_that_ends_the_second_before_it_starts_is_refused() -> None:
    # [00:00:01, end of second 00:00:00) is empty: no instant at which the grant holds.
    error = refusal(permit(period={"start": "2026-03-01T00:00:01Z", "end": "2026-03-01T00:00:00Z"}))
    assert error.diagnostics == "period ends before it starts"


def test_a_nested_provision_narrows_actions_and_purposes_to_its_own() -> None:
    root = nested(
        permit(action=action("access", "correct"), purpose=[{"code": "TREAT"}, {"code": "ETREAT"}]),
        {"type": "deny", "action": action("correct"), "purpose": [{"code": "ETREAT"}]},
    )
    denies = [(g.action, g.purpose) for g in compiled(root) if g.effect == "deny"]
    assert denies == [("correct", "ETREAT")]
