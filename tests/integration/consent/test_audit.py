"""The access log (NEN 7513): every decision is an AuditEvent the inwoner can read.

A partner's or an app's read, search and write, permitted or refused, leaves one record in
the inwoner's chain saying who (client, organisation), which inwoner, what, the outcome
and the purpose of use. The inwoner reads their log with ``AuditEvent?patient=`` and a
patient token; no API changes or removes a record; and ``vault audit verify`` (the real
command, on a vault of its own) finds a record that was changed, removed or relinked.
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from sqlalchemy import delete, select, update

from tests.conftest import FHIR_JSON, initialise, make_settings
from tests.factories import DOMAIN_SYSTEM, goal, patient
from tests.integration.consent.conftest import (
    RESTRICTED,
    Operator,
    Partner,
    PartnerFactory,
    grant,
)
from tests.support import fresh_database, run_vault, vault_env
from vault.audit import log as log_module
from vault.audit.models import AuditChain
from vault.audit.runtime import open_runtime
from vault.consent.access import AccessContext, Permissions
from vault.fhir.repository import Repository
from vault.kernel.crypto import seal_body
from vault.kernel.runtime import Runtime
from vault.oauth.models import OAuthClient, Token
from vault.oauth.server import hash_token
from vault.store.models import DataKey, ResourceRow, VersionRow

InwonerApp = Callable[[str], httpx.Client]


@pytest.fixture
def app(inwoner: str, make_inwoner_app: InwonerApp) -> httpx.Client:
    return make_inwoner_app(inwoner)


def access_log(app: httpx.Client, inwoner: str) -> list[dict[str, Any]]:
    response = app.get("/AuditEvent", params={"patient": inwoner, "_count": "500"})
    assert response.status_code == 200, response.text
    return [entry["resource"] for entry in response.json().get("entry", [])]


def events_about(
    app: httpx.Client, inwoner: str, reference: str, interaction: str
) -> list[dict[str, Any]]:
    return [
        event
        for event in access_log(app, inwoner)
        if event["subtype"][0]["code"] == interaction
        and reference in {e.get("what", {}).get("reference") for e in event.get("entity", [])}
    ]


def the_one(events: list[dict[str, Any]]) -> dict[str, Any]:
    assert len(events) == 1, events
    return events[0]


def requestor(event: dict[str, Any]) -> dict[str, Any]:
    agent: dict[str, Any] = event["agent"][0]
    assert agent["requestor"] is True
    return agent


def test_a_permitted_partner_read_is_logged_with_who_what_and_why(
    operator: Operator, inwoner: str, make_partner: PartnerFactory, app: httpx.Client
) -> None:
    partner = make_partner(purposes=("TREAT",))
    target = operator.create(goal(patient_id=inwoner))
    operator.create(grant(inwoner, partner.organization, classes=("Goal",)))
    assert partner.get(f"/Goal/{target}").status_code == 200

    event = the_one(events_about(app, inwoner, f"Goal/{target}", "read"))
    assert event["outcome"] == "0"
    assert event["action"] == "R"
    assert requestor(event)["who"] == {"reference": partner.organization}
    assert requestor(event)["altId"] == partner.backend.client_id
    whats = [e["what"]["reference"] for e in event["entity"] if "what" in e]
    assert whats == [f"Patient/{inwoner}", f"Goal/{target}"]
    assert [p["coding"][0]["code"] for p in event["purposeOfEvent"]] == ["TREAT"]


def test_a_refused_partner_read_is_logged_in_the_inwoners_chain(
    operator: Operator, inwoner: str, partner: Partner, app: httpx.Client
) -> None:
    target = operator.create(goal(patient_id=inwoner))
    assert partner.get(f"/Goal/{target}").status_code == 404

    event = the_one(events_about(app, inwoner, f"Goal/{target}", "read"))
    assert event["outcome"] == "4"
    assert requestor(event)["who"] == {"reference": partner.organization}


def test_a_partner_search_is_logged_with_the_search_and_what_it_returned(
    operator: Operator, inwoner: str, partner: Partner, app: httpx.Client
) -> None:
    shown = operator.create(goal(patient_id=inwoner))
    hidden = operator.create(goal(patient_id=inwoner, meta={"security": [RESTRICTED]}))
    operator.create(
        grant(
            inwoner,
            partner.organization,
            classes=("Goal",),
            denies=[{"securityLabel": [RESTRICTED]}],
        )
    )
    assert partner.get("/Goal", patient=inwoner).json()["total"] == 1

    event = the_one(events_about(app, inwoner, f"Goal/{shown}", "search-type"))
    assert event["outcome"] == "0"
    assert requestor(event)["who"] == {"reference": partner.organization}
    queries = [base64.b64decode(e["query"]).decode() for e in event["entity"] if "query" in e]
    assert queries == [f"patient={inwoner}"]
    assert events_about(app, inwoner, f"Goal/{hidden}", "search-type") == []


def test_a_search_that_finds_nothing_is_still_logged_for_the_inwoner_it_names(
    inwoner: str, partner: Partner, app: httpx.Client
) -> None:
    assert partner.get("/Goal", patient=inwoner).json()["total"] == 0
    searches = [
        e
        for e in access_log(app, inwoner)
        if e["subtype"][0]["code"] == "search-type"
        and requestor(e).get("altId") == partner.backend.client_id
    ]
    assert len(searches) == 1


def test_a_partner_write_is_logged_permitted_and_refused(
    operator: Operator, inwoner: str, make_partner: PartnerFactory, app: httpx.Client
) -> None:
    corrector, reader = make_partner(), make_partner()
    target = operator.create(goal(patient_id=inwoner))
    operator.create(grant(inwoner, corrector.organization, actions=("access", "correct")))
    operator.create(grant(inwoner, reader.organization))
    body = operator.read("Goal", target)

    assert reader.put({**body, "lifecycleStatus": "on-hold"}).status_code == 403
    assert corrector.put({**body, "lifecycleStatus": "completed"}).status_code == 200

    updates = events_about(app, inwoner, f"Goal/{target}", "update")
    outcomes = {requestor(e)["altId"]: e["outcome"] for e in updates}
    assert outcomes == {reader.backend.client_id: "4", corrector.backend.client_id: "0"}
    assert {e["action"] for e in updates} == {"U"}


def test_a_write_to_a_goal_the_partner_cannot_see_is_logged_as_a_refused_update(
    operator: Operator, inwoner: str, partner: Partner, app: httpx.Client
) -> None:
    target = operator.create(goal(patient_id=inwoner))
    body = operator.read("Goal", target)
    assert partner.put({**body, "lifecycleStatus": "completed"}).status_code == 404

    event = the_one(events_about(app, inwoner, f"Goal/{target}", "update"))
    assert event["outcome"] == "4"
    assert requestor(event)["altId"] == partner.backend.client_id


def test_a_write_that_would_leave_the_grant_is_logged_as_refused(
    operator: Operator, inwoner: str, partner: Partner, app: httpx.Client
) -> None:
    target = operator.create(goal(patient_id=inwoner))
    operator.create(
        grant(
            inwoner,
            partner.organization,
            actions=("access", "correct"),
            denies=[{"securityLabel": [RESTRICTED]}],
        )
    )
    labelled = {**operator.read("Goal", target), "meta": {"security": [RESTRICTED]}}
    assert partner.put(labelled).status_code == 403

    event = the_one(events_about(app, inwoner, f"Goal/{target}", "update"))
    assert event["outcome"] == "4"


def test_a_write_that_would_leave_a_granular_scope_is_logged_as_refused(
    operator: Operator, inwoner: str, make_partner: PartnerFactory, app: httpx.Client
) -> None:
    partner = make_partner(scopes=(f"system/Goal.rus?category={DOMAIN_SYSTEM}|financien",))
    target = operator.create(goal(patient_id=inwoner))
    operator.create(grant(inwoner, partner.organization, actions=("access", "correct")))
    wonen = [{"coding": [{"system": DOMAIN_SYSTEM, "code": "wonen"}]}]
    assert partner.put({**operator.read("Goal", target), "category": wonen}).status_code == 403

    event = the_one(events_about(app, inwoner, f"Goal/{target}", "update"))
    assert event["outcome"] == "4"
    assert requestor(event)["altId"] == partner.backend.client_id


def test_the_inwoners_own_app_is_logged_too(
    runtime: Runtime, operator: Operator, inwoner: str, app: httpx.Client
) -> None:
    target = operator.create(goal(patient_id=inwoner))
    assert app.get(f"/Goal/{target}").status_code == 200
    created = app.post("/Goal", json=goal(patient_id=inwoner), headers=FHIR_JSON)
    assert created.status_code == 201, created.text
    token = str(app.headers["authorization"]).split(" ", 1)[1]
    with runtime.db.read() as conn:
        client_id, organization_id = conn.execute(
            select(Token.client_id, OAuthClient.organization_id)
            .join(OAuthClient, OAuthClient.client_id == Token.client_id)
            .where(Token.token_hash == hash_token(token))
        ).one()

    read = the_one(events_about(app, inwoner, f"Goal/{target}", "read"))
    assert read["outcome"] == "0"
    assert requestor(read)["name"].startswith("account ")  # the inwoner who logged in
    # Which app: the bearer check's context, as it logs.
    assert requestor(read)["altId"] == client_id
    # She acts through it: the app's maker is not who looked (``repository/base._records``).
    assert requestor(read)["who"] == {"reference": f"Patient/{inwoner}"}
    assert organization_id is not None  # the maker is known, and still not named
    create = the_one(events_about(app, inwoner, f"Goal/{created.json()['id']}", "create"))
    assert create["outcome"] == "0"
    assert create["action"] == "C"


def test_an_apps_refused_read_is_logged_for_the_inwoner_it_tried(
    runtime: Runtime, operator: Operator, inwoner: str, app: httpx.Client
) -> None:
    other = operator.create(patient())
    theirs = operator.create(goal(patient_id=other))
    assert app.get(f"/Goal/{theirs}").status_code == 404

    runtime.audit.settle_all()  # a store-level search: the log's waiting records first
    with runtime.db.read() as conn:
        repo = Repository(runtime, AccessContext.full())
        query = repo.parse("AuditEvent", [("entity", f"Goal/{theirs}")], lenient=False)
        events = [orjson.loads(s.body or b"{}") for s in repo.search(conn, query).matches]
    (event,) = events
    assert event["outcome"] == "4"
    assert event["subtype"][0]["code"] == "read"
    assert {"reference": f"Patient/{other}"} in [e.get("what") for e in event["entity"]]
    assert requestor(event)["name"].startswith("account ")


def test_the_inwoner_reads_only_their_own_log(
    runtime: Runtime, operator: Operator, inwoner: str, partner: Partner, app: httpx.Client
) -> None:
    other = operator.create(patient())
    theirs = operator.create(goal(patient_id=other))
    operator.create(grant(other, partner.organization))
    assert partner.get(f"/Goal/{theirs}").status_code == 200
    assert app.get(f"/Patient/{inwoner}").status_code == 200

    assert app.get("/AuditEvent", params={"patient": other}).json()["total"] == 0
    assert app.get(f"/AuditEvent/{_some_event_id(runtime, other)}").status_code == 404
    all_mine = access_log(app, inwoner)
    assert all_mine
    assert all(
        f"Patient/{inwoner}" in {e.get("what", {}).get("reference") for e in event["entity"]}
        for event in all_mine
    )
    assert not any(
        f"Goal/{theirs}" in {e.get("what", {}).get("reference") for e in event["entity"]}
        for event in access_log(app, inwoner)
    )


def _some_event_id(runtime: Runtime, chain: str) -> str:
    runtime.audit.settle_all()
    with runtime.db.read() as conn:
        return str(
            conn.scalars(
                select(ResourceRow.resource_id)
                .join(AuditChain, AuditChain.resource_pk == ResourceRow.pk)
                .where(AuditChain.chain == chain)
            ).first()
        )


def test_no_api_updates_or_deletes_an_audit_event(
    runtime: Runtime, operator: Operator, inwoner: str, partner: Partner, app: httpx.Client
) -> None:
    assert app.get(f"/Patient/{inwoner}").status_code == 200
    event_id = _some_event_id(runtime, inwoner)
    event = app.get(f"/AuditEvent/{event_id}").json()
    assert event["resourceType"] == "AuditEvent"
    changed = {**event, "outcome": "4"}

    for client in (app, partner.fhir):
        assert (
            client.put(f"/AuditEvent/{event_id}", json=changed, headers=FHIR_JSON).status_code
            == 405
        )
        assert client.delete(f"/AuditEvent/{event_id}").status_code == 405
        assert client.post("/AuditEvent", json=changed, headers=FHIR_JSON).status_code == 405
    assert operator.read("AuditEvent", event_id) == event


# -- vault audit verify, on a vault of its own ----------------------------------------------


@dataclass
class AuditedVault:
    data_dir: Path
    env: dict[str, str]
    runtime: Runtime
    chain: str  # the inwoner whose chain holds the records
    links: list[tuple[int, int, str]]  # (seq, resource pk, AuditEvent id), in order

    def verify(self) -> tuple[int, str]:
        result = run_vault("audit", "verify", "--data-dir", str(self.data_dir), env=self.env)
        return result.returncode, result.stdout + result.stderr


@pytest.fixture
def audited(tmp_path: Path) -> Iterator[AuditedVault]:
    data_dir = tmp_path / "vault"
    with fresh_database(tmp_path) as url:
        settings = make_settings(data_dir, url)
        initialise(settings)
        runtime = open_runtime(settings)
        try:
            with runtime.db.write() as conn:
                stored, _ = Repository(runtime, AccessContext.full()).create(
                    conn, "Patient", patient()
                )
            inwoner = stored.resource_id
            own = AccessContext(
                subject="app",
                kind="patient",
                patient_id=inwoner,
                client_id="app",
                organization=None,
                account_id=None,
                permissions=Permissions.everything(),
                purposes=frozenset(),
                practitioner=None,
                representative=None,
            )
            for n in range(4):
                with runtime.db.write() as conn:
                    Repository(runtime, own).create(
                        conn, "Goal", goal(patient_id=inwoner, text=f"doel {n}")
                    )
            runtime.audit.settle_all()  # the tests below change settled AuditEvents
            with runtime.db.read() as conn:
                links = [
                    (row.seq, row.resource_pk, row.resource_id)
                    for row in conn.execute(
                        select(AuditChain.seq, AuditChain.resource_pk, ResourceRow.resource_id)
                        .join(ResourceRow, ResourceRow.pk == AuditChain.resource_pk)
                        .where(AuditChain.chain == inwoner)
                        .order_by(AuditChain.seq)
                    )
                ]
            assert [seq for seq, _, _ in links] == [1, 2, 3, 4]
            yield AuditedVault(data_dir, vault_env(url), runtime, inwoner, links)
        finally:
            runtime.close()


def test_audit_verify_reports_an_intact_log(audited: AuditedVault) -> None:
    code, output = audited.verify()
    assert code == 0, output
    assert "intact" in output


def test_audit_verify_finds_a_changed_byte_in_a_record(audited: AuditedVault) -> None:
    seq, pk, event_id = audited.links[1]
    with audited.runtime.db.write() as conn:
        body = conn.scalar(select(VersionRow.body).where(VersionRow.resource_pk == pk))
        assert body is not None
        flipped = body[:-1] + bytes([body[-1] ^ 0x01])
        conn.execute(update(VersionRow).where(VersionRow.resource_pk == pk).values(body=flipped))

    code, output = audited.verify()
    assert code != 0
    assert f"chain {audited.chain}, record {seq} (AuditEvent/{event_id})" in output


def test_audit_verify_finds_a_record_rewritten_by_someone_with_the_keys(
    audited: AuditedVault,
) -> None:
    seq, pk, event_id = audited.links[2]
    runtime = audited.runtime
    with runtime.db.write() as conn:
        repo = Repository(runtime, AccessContext.full())
        event = orjson.loads(repo.vread(conn, "AuditEvent", event_id, "1").body or b"{}")
        event["outcome"] = "4"
        key = conn.execute(
            select(DataKey.wrapped, DataKey.master_key_id).where(DataKey.owner == audited.chain)
        ).one()
        aead = runtime.keys.aead(owner=audited.chain, key_id=key.master_key_id, wrapped=key.wrapped)
        sealed = seal_body(
            aead,
            resource_type="AuditEvent",
            resource_id=event_id,
            version=1,
            plaintext=orjson.dumps(event),
        )
        conn.execute(update(VersionRow).where(VersionRow.resource_pk == pk).values(body=sealed))

    code, output = audited.verify()
    assert code != 0
    assert f"record {seq} (AuditEvent/{event_id}): the record was changed" in output


def test_audit_verify_finds_a_removed_link(audited: AuditedVault) -> None:
    removed = audited.links[1][0]
    next_seq, _, next_id = audited.links[2]
    with audited.runtime.db.write() as conn:
        conn.execute(
            delete(AuditChain).where(AuditChain.chain == audited.chain, AuditChain.seq == removed)
        )

    code, output = audited.verify()
    assert code != 0
    assert f"record {next_seq} (AuditEvent/{next_id}): record {removed} is missing" in output


def test_audit_verify_finds_a_changed_previous_hash(audited: AuditedVault) -> None:
    seq, _, event_id = audited.links[3]
    with audited.runtime.db.write() as conn:
        conn.execute(
            update(AuditChain)
            .where(AuditChain.chain == audited.chain, AuditChain.seq == seq)
            .values(prev_hash="f" * 64)
        )

    code, output = audited.verify()
    assert code != 0
    assert f"record {seq} (AuditEvent/{event_id}): does not follow the record before it" in output


@pytest.mark.parametrize("named", ["AuditEvent", "%41uditEvent"])
def test_the_inwoners_app_finds_a_read_the_writer_has_not_stored_in_full(
    runtime: Runtime,
    operator: Operator,
    inwoner: str,
    partner: Partner,
    app: httpx.Client,
    monkeypatch: pytest.MonkeyPatch,
    named: str,
) -> None:
    """A partner's read waits in its chain link (``audit/log.py``); the inwoner's app that
    asks for it, however it spells the type, gets it settled first (``fhir/deps.settle_log``),
    with the writer never idle long enough to have done it."""
    monkeypatch.setattr(log_module, "_IDLE_SECONDS", 3600.0)
    target = operator.create(goal(patient_id=inwoner))
    operator.create(grant(inwoner, partner.organization, classes=("Goal",)))
    assert partner.get(f"/Goal/{target}").status_code == 200
    with runtime.db.read() as conn:
        newest = conn.execute(
            select(AuditChain.resource_pk)
            .where(AuditChain.chain == inwoner)
            .order_by(AuditChain.seq.desc())
            .limit(1)
        ).scalar_one()
    assert newest is None  # the partner's read: one sealed row, not yet an AuditEvent

    answer = app.get(f"/Goal?_id={target}&_revinclude={named}:entity")

    assert answer.status_code == 200, answer.text
    included = [
        e["resource"] for e in answer.json().get("entry", []) if e["search"]["mode"] == "include"
    ]
    reads = [
        event
        for event in included
        if event["subtype"][0]["code"] == "read"
        and requestor(event).get("who", {}).get("reference") == partner.organization
    ]
    assert len(reads) == 1, included
