"""An app with a granular SMART v2 scope asks for the history of a resource outside it.

SMART App Launch 2, "Finer-grained resource constraints using search parameters": a scope
such as ``patient/Goal.rs?category=…|financien`` lets the app see only the goals in that
category. The instance history of any other goal must answer exactly as for a goal that
does not exist (design section 3: hidden equals missing), not with an empty Bundle that
tells the app the goal is there. Found by the reference property test (issue 16).
"""

from __future__ import annotations

import uuid

from tests.factories import DOMAIN_SYSTEM, goal, patient
from tests.support.harness import Harness
from vault.kernel.config import Settings
from vault.kernel.runtime import Runtime


def test_history_outside_a_granular_scope_answers_like_a_missing_goal(
    settings: Settings, runtime: Runtime
) -> None:
    harness = Harness(runtime, settings)
    try:
        pid = harness.create(patient(), patient_id=None).resource_id
        inside = harness.create(goal(patient_id=pid), patient_id=pid)
        outside = harness.create(goal(patient_id=pid, domain="wonen"), patient_id=pid)
        app = harness.app(
            "granular",
            patient_id=pid,
            scopes=(f"patient/Goal.rs?category={DOMAIN_SYSTEM}|financien",),
        )
        assert harness.fhir(app, "get", f"/Goal/{inside.resource_id}/_history").status_code == 200
        hidden = harness.fhir(app, "get", f"/Goal/{outside.resource_id}/_history")
        ghost = uuid.uuid4().hex
        missing = harness.fhir(app, "get", f"/Goal/{ghost}/_history")
        assert hidden.status_code == missing.status_code == 404
        assert hidden.text.replace(outside.resource_id, "ID") == missing.text.replace(ghost, "ID")
    finally:
        harness.close()


def test_a_granular_scope_naming_an_unknown_parameter_is_refused_never_widened(
    settings: Settings, runtime: Runtime
) -> None:
    """``patient/Goal.rs?colour=blue``: the type has no such search parameter, so the scope
    cannot be read as a restriction. Every read of the type is refused with a 400 that says
    so, rather than the parameter being skipped (``lenient``) and every goal let through.
    Found by mutation testing (``_restriction`` with ``lenient=True``, issue 16)."""
    harness = Harness(runtime, settings)
    try:
        pid = harness.create(patient(), patient_id=None).resource_id
        stored = harness.create(goal(patient_id=pid), patient_id=pid)
        app = harness.app(
            "unknown-parameter", patient_id=pid, scopes=("patient/Goal.rs?colour=blue",)
        )
        read = harness.fhir(app, "get", f"/Goal/{stored.resource_id}")
        listed = harness.fhir(app, "get", "/Goal", params={"patient": pid})
        assert (read.status_code, listed.status_code) == (400, 400)
        for answer in (read, listed):
            outcome = answer.json()
            assert outcome["resourceType"] == "OperationOutcome"
            assert "colour" in outcome["issue"][0]["diagnostics"]
            assert stored.resource_id not in answer.text
    finally:
        harness.close()
