"""The inwoner's own app exports her plan (Bulk Data, Patient level), and the job is its
own: another app of hers, with a token just as good, cannot poll it or learn it exists.

The export job is kept under the caller's ``AccessContext.subject`` (``fhir/export.py``);
these run in the mutation tests' process (``make mutate``), where the bearer check builds
that subject.
"""

from __future__ import annotations

from collections.abc import Callable

import httpx

from tests.factories import goal
from tests.integration.consent.bulk import ASYNC, wait_for_manifest
from tests.integration.consent.conftest import Operator

InwonerApp = Callable[[str], httpx.Client]


def test_an_apps_export_is_its_own_and_holds_her_plan(
    operator: Operator, inwoner: str, make_inwoner_app: InwonerApp
) -> None:
    mine = operator.create(goal(patient_id=inwoner))
    first, second = make_inwoner_app(inwoner), make_inwoner_app(inwoner)

    kick = first.get("/Patient/$export", params={"_type": "Goal"}, headers=ASYNC)
    assert kick.status_code == 202, kick.text
    status_url = kick.headers["content-location"]

    refused = second.get(status_url)  # her other app: as if the job did not exist
    assert refused.status_code == 404, refused.text
    manifest = wait_for_manifest(first, status_url)
    files = [first.get(item["url"]) for item in manifest["output"]]
    assert all(f.status_code == 200 for f in files)
    assert any(f'"id":"{mine}"' in f.text for f in files)
    assert second.get(status_url).status_code == 404  # done, and still not the other's
