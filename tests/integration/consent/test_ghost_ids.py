"""An inwoner id that has no data key: answered like any hidden one, logged, and harmless.

Issue 12 B4: ``Goal?patient=ghost-1`` gave 500 because its access-log record could not be
sealed for an id without a data key, and the log writer commits many requests together, so
other partners' reads failed with it. Now such a record goes to the vault's own chain, a
record that cannot be written fails only its own request, and "exists but hidden" answers
exactly like "does not exist". Everything over HTTP with real partner tokens.
"""

from __future__ import annotations

import threading
import uuid
from typing import Any

import httpx
import orjson
import pytest
from sqlalchemy import select

from tests.factories import goal, patient
from tests.integration.consent.conftest import Operator, Partner, PartnerFactory, grant
from vault.audit.log import VAULT_CHAIN
from vault.audit.models import AuditChain
from vault.consent.access import AccessContext
from vault.fhir.repository import Repository
from vault.kernel.runtime import Runtime
from vault.store.models import ResourceRow

SEARCHES = (
    ("Goal", {}),
    ("Goal", {"_summary": "count"}),
    ("AuditEvent", {}),
    ("AuditEvent", {"_summary": "count"}),
)
# Headers that differ between any two responses, whatever they are about.
VARYING = frozenset({"date", "content-length", "x-request-id"})


def _same_answer(a: httpx.Response, a_id: str, b: httpx.Response, b_id: str) -> None:
    assert a.status_code == b.status_code
    a_headers = {k: v for k, v in a.headers.items() if k not in VARYING}
    b_headers = {k: v for k, v in b.headers.items() if k not in VARYING}
    assert a_headers == b_headers

    def normal(response: httpx.Response, patient_id: str) -> Any:
        body = orjson.loads(response.content.replace(patient_id.encode(), b"<id>"))
        body.pop("id", None)
        body.pop("meta", None)
        return body

    assert normal(a, a_id) == normal(b, b_id)


@pytest.mark.parametrize(("resource_type", "extra"), SEARCHES)
def test_a_search_for_an_inwoner_id_that_does_not_exist_answers_like_a_hidden_one(
    operator: Operator, partner: Partner, resource_type: str, extra: dict[str, str]
) -> None:
    hidden = operator.create(patient())
    operator.create(goal(patient_id=hidden))
    ghost = str(uuid.uuid4())  # the same length as a real id: even Content-Length agrees

    of_hidden = partner.get(f"/{resource_type}", patient=hidden, **extra)
    of_ghost = partner.get(f"/{resource_type}", patient=ghost, **extra)
    of_short_ghost = partner.get(f"/{resource_type}", patient="ghost-1", **extra)

    assert of_hidden.status_code == 200, of_hidden.text
    _same_answer(of_hidden, hidden, of_ghost, ghost)
    _same_answer(of_hidden, hidden, of_short_ghost, "ghost-1")


def _vault_chain_events(runtime: Runtime, *, last: int) -> list[dict[str, Any]]:
    repo = Repository(runtime, AccessContext.full("test"))
    runtime.audit.settle_all()
    with runtime.db.read() as conn:
        ids = conn.scalars(
            select(ResourceRow.resource_id)
            .join(AuditChain, AuditChain.resource_pk == ResourceRow.pk)
            .where(AuditChain.chain == VAULT_CHAIN)
            .order_by(AuditChain.seq.desc())
            .limit(last)
        ).all()
        return [orjson.loads(repo.vread(conn, "AuditEvent", i, "1").body or b"{}") for i in ids]


def test_a_decision_about_an_id_without_a_data_key_is_logged_in_the_vault_chain(
    runtime: Runtime, partner: Partner
) -> None:
    ghost = f"ghost-{uuid.uuid4().hex[:12]}"

    assert partner.get("/Goal", patient=ghost).status_code == 200

    events = _vault_chain_events(runtime, last=200)
    about = [
        e
        for e in events
        if any(
            x.get("what", {}).get("reference") == f"Patient/{ghost}" for x in e.get("entity", [])
        )
    ]
    assert len(about) == 1
    assert about[0]["agent"][0]["who"]["reference"] == partner.organization


def test_callers_asking_for_ghost_ids_never_fail_another_partners_read(
    operator: Operator, inwoner: str, make_partner: PartnerFactory
) -> None:
    reader, prober = make_partner(), make_partner()
    mine = operator.create(goal(patient_id=inwoner))
    operator.create(grant(inwoner, reader.organization, classes=("Goal",)))
    rounds = 25
    statuses: dict[str, list[int]] = {"reader": [], "prober": []}
    start = threading.Barrier(3)

    def read_own() -> None:
        start.wait()
        for _ in range(rounds):
            statuses["reader"].append(reader.get(f"/Goal/{mine}").status_code)

    def probe(label: str) -> None:
        start.wait()
        for n in range(rounds):
            asked = prober.get("/Goal", patient=f"ghost-{label}-{n}", _summary="count")
            statuses["prober"].append(asked.status_code)

    threads = [
        threading.Thread(target=read_own),
        threading.Thread(target=probe, args=("a",)),
        threading.Thread(target=probe, args=("b",)),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert statuses["reader"] == [200] * rounds
    assert statuses["prober"] == [200] * (2 * rounds)
