"""fhirclient and fhirpy, the FHIR clients integrators use most, against the real vault over
HTTP with real Backend Services tokens.

The scripts are the ones docs/connect-your-system.md shows, taken from the guide itself, so
the guide cannot drift from what works: fhirclient needs ``wants_patient = False``; fhirpy's
``.elements(...)`` sends ``_elements`` and gets SUBSETTED resources back.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from fhirpy import SyncFHIRClient
from fhirpy.base.exceptions import OperationOutcome

from tests.factories import careplan, goal
from tests.support import REPO_ROOT
from tests.support.docs import DOCS, file_block
from tests.support.partners import share
from vault.testing import RegisteredClient, ThrowawayVault

GUIDE = DOCS / "connect-your-system.md"


@pytest.fixture
def shared_goals(throwaway_vault: ThrowawayVault, partner: RegisteredClient, inwoner: str) -> str:
    """Two Goals and a CarePlan of a new inwoner, shared with ``partner``."""
    first = throwaway_vault.write(goal(patient_id=inwoner, text="Ik wil weer werken"))
    throwaway_vault.write(goal(patient_id=inwoner, text="Ik wil een eigen huis"))
    throwaway_vault.write(careplan(patient_id=inwoner, goals=[str(first["id"])]))
    share(throwaway_vault, inwoner, partner, "Goal", "CarePlan")
    return inwoner


def run_guide_script(
    name: str, *, vault: ThrowawayVault, partner: RegisteredClient, inwoner: str, folder: Path
) -> str:
    """Save the guide's script ``name`` and run it as the guide says, as ``partner``."""
    script = folder / name
    script.write_text(file_block(GUIDE, name), encoding="utf-8")
    key_file = folder / "partner-private.pem"
    key_file.write_bytes(partner.key.as_pem(private=True))
    env = dict(os.environ)
    env.update(VAULT=vault.url, CLIENT_ID=partner.client_id, KEY_FILE=str(key_file))
    done = subprocess.run(
        [sys.executable, "-W", "error", str(script), inwoner],
        env=env,
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_fhirclient_backend_services_session_reads_the_shared_goals(
    throwaway_vault: ThrowawayVault, partner: RegisteredClient, shared_goals: str, tmp_path: Path
) -> None:
    out = run_guide_script(
        "read_with_fhirclient.py",
        vault=throwaway_vault,
        partner=partner,
        inwoner=shared_goals,
        folder=tmp_path,
    )
    assert sorted(out.splitlines()) == [
        "- Ik wil een eigen huis (active)",
        "- Ik wil weer werken (active)",
    ]


def test_fhirclient_without_wants_patient_false_is_refused_a_token(
    throwaway_vault: ThrowawayVault, partner: RegisteredClient, shared_goals: str, tmp_path: Path
) -> None:
    # What the guide warns about: the default adds launch/patient to a backend's scope.
    script = file_block(GUIDE, "read_with_fhirclient.py").replace(
        "smart.wants_patient = False", "pass"
    )
    (tmp_path / "without.py").write_text(script, encoding="utf-8")
    key_file = tmp_path / "partner-private.pem"
    key_file.write_bytes(partner.key.as_pem(private=True))
    env = dict(os.environ)
    env.update(VAULT=throwaway_vault.url, CLIENT_ID=partner.client_id, KEY_FILE=str(key_file))
    done = subprocess.run(
        [sys.executable, str(tmp_path / "without.py"), shared_goals],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode != 0
    assert "400 Client Error: Bad Request for url: " + throwaway_vault.url + "/oauth/token" in (
        done.stderr
    )


def test_fhirpy_session_with_elements_gets_subsetted_goals_and_the_plan(
    throwaway_vault: ThrowawayVault, partner: RegisteredClient, shared_goals: str, tmp_path: Path
) -> None:
    out = run_guide_script(
        "read_with_fhirpy.py",
        vault=throwaway_vault,
        partner=partner,
        inwoner=shared_goals,
        folder=tmp_path,
    )
    lines = out.splitlines()
    assert sorted(lines[:2]) == [
        "- Ik wil een eigen huis (active, SUBSETTED)",
        "- Ik wil weer werken (active, SUBSETTED)",
    ]
    assert lines[2].endswith(": active, 1 goals")


def test_fhirpy_elements_keep_what_was_named_and_what_is_mandatory(
    throwaway_vault: ThrowawayVault, partner: RegisteredClient, shared_goals: str
) -> None:
    with throwaway_vault.client(partner) as client:
        token = client.access_token()
    fhir = SyncFHIRClient(f"{throwaway_vault.url}/fhir", authorization=f"Bearer {token}")
    goals = fhir.resources("Goal").search(patient=shared_goals).elements("note").fetch_all()
    assert len(goals) == 2
    for found in goals:
        # note was asked for; lifecycleStatus, description and subject are mandatory.
        assert set(found) <= {
            "resourceType",
            "id",
            "meta",
            "note",
            "lifecycleStatus",
            "description",
            "subject",
        }
        assert "category" not in found
        assert {"lifecycleStatus", "description", "subject"} <= set(found)
    read = fhir.reference("Goal", goals[0].id).to_resource()
    assert "category" in read  # a plain read is whole
    with pytest.raises(OperationOutcome):
        fhir.resources("Goal").search(patient=shared_goals).elements("colour").fetch_all()
