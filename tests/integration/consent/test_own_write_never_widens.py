"""A partner's own write never widens what it may see (design section 3; issue 11.2).

A Consent grants a partner ``access`` and ``correct`` on one CarePlan with meaning
``related`` (FHIR consent-data-meaning: the plan and what it refers to). The partner adds a
goal it may not see to the plan; whether the vault refuses the write or accepts it, that
goal must stay hidden from the partner (it became readable before the fix of issue 11.2).
"""

from __future__ import annotations

from tests.factories import careplan, consent, goal, patient
from tests.support.harness import FHIR_JSON, Harness
from vault.kernel.config import Settings
from vault.kernel.runtime import Runtime


def test_a_partner_cannot_widen_a_related_grant_by_adding_a_reference(
    settings: Settings, runtime: Runtime
) -> None:
    harness = Harness(runtime, settings)
    try:
        pid = harness.create(patient(), patient_id=None).resource_id
        shared = harness.create(goal(patient_id=pid), patient_id=pid)
        hidden = harness.create(goal(patient_id=pid, text="Alleen voor mij"), patient_id=pid)
        plan = harness.create(careplan(patient_id=pid, goals=[shared.resource_id]), patient_id=pid)
        partner = harness.partner("partner", scopes=("system/Goal.rs", "system/CarePlan.rus"))
        (org,) = partner.caller.grantees
        body = consent(patient_id=pid, actors=[org], actions=("access", "correct"))
        body["provision"]["data"] = [{"meaning": "related", "reference": {"reference": plan.ref}}]
        harness.create(body, patient_id=pid)
        assert harness.fhir(partner, "get", f"/{shared.ref}").status_code == 200
        assert harness.fhir(partner, "get", f"/{hidden.ref}").status_code == 404
        widened = {k: v for k, v in (plan.current or {}).items() if k != "meta"}
        widened["goal"] = [*widened.get("goal", []), {"reference": hidden.ref}]
        harness.fhir(partner, "put", f"/{plan.ref}", json=widened, headers=FHIR_JSON)
        assert harness.fhir(partner, "get", f"/{hidden.ref}").status_code == 404
    finally:
        harness.close()
