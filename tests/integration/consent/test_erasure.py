"""Erasing one inwoner leaves every partner's view exactly as if she never existed.

Issue 11 item 6: after an inwoner erased her vault, every partner her Consents named got a
persistent 500 (``KeyUnavailable``) on Consent search, read and history,
``Patient/$everything``, ``_revinclude=Consent:actor`` and a ``$export`` of Consent, and
``vault audit verify`` reported her chain as broken. Partner requests go over HTTP with real
tokens; the erasure is the page's own ``erase_vault``; verify runs as the installed command.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import delete, select

from tests.conftest import ServerThread, initialise, make_settings
from tests.factories import goal, patient
from tests.integration.consent.bulk import download, export_manifest, lines
from tests.integration.consent.conftest import (
    PARTNER_SCOPES,
    Operator,
    Partner,
    PartnerFactory,
    grant,
    ids,
)
from tests.support import fresh_database, run_vault, vault_env
from tests.support.audit import own_vault
from vault.app.main import create_app
from vault.audit.log import AuditRecord
from vault.audit.models import AuditChain
from vault.audit.runtime import open_runtime
from vault.consent.access import AccessContext
from vault.fhir.repository import Repository
from vault.kernel.errors import Gone
from vault.kernel.runtime import Runtime, now_micros
from vault.page.mydata import erase_vault
from vault.store.models import ResourceRow


def _erase(runtime: Runtime, patient_id: str) -> None:
    with runtime.db.write() as conn:
        erase_vault(conn, patient_id=patient_id)


def _like_missing(
    response: httpx.Response, resource_id: str, missing: httpx.Response, missing_id: str
) -> None:
    assert response.status_code == missing.status_code == 404
    assert response.content.replace(resource_id.encode(), b"<id>") == missing.content.replace(
        missing_id.encode(), b"<id>"
    )


@pytest.fixture(scope="module")
def runtime(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Runtime]:
    """A vault of its own: an erased inwoner's rows stay in the database (unreadable), and
    the operator's full-access tools of other tests would meet them."""
    with own_vault(tmp_path_factory.mktemp("erasure")) as rt:
        yield rt


@pytest.fixture(scope="module")
def vault(runtime: Runtime) -> Iterator[ServerThread]:
    with ServerThread(create_app(runtime.settings, runtime=runtime)) as running:
        yield running


@pytest.fixture(scope="module")
def operator(runtime: Runtime) -> Operator:
    return Operator(runtime)


@pytest.fixture
def partner(make_partner: PartnerFactory) -> Partner:
    """A partner that may also search the shared directory (for ``_revinclude``)."""
    return make_partner(scopes=(*PARTNER_SCOPES, "system/Organization.rs"))


@pytest.fixture
def erased_and_kept(operator: Operator, runtime: Runtime, partner: Partner) -> tuple[str, str]:
    """Two inwoners who both named ``partner``; the first has erased her vault since.
    Returns the Consent ids (erased, kept)."""
    erased, kept = operator.create(patient()), operator.create(patient())
    for who in (erased, kept):
        operator.create(goal(patient_id=who))
    gone = operator.create(grant(erased, partner.organization, classes=("Goal", "Patient")))
    stays = operator.create(grant(kept, partner.organization, classes=("Goal", "Patient")))
    assert partner.get(f"/Consent/{gone}").status_code == 200
    _erase(runtime, erased)
    return gone, stays


def test_a_partner_reads_consents_as_if_the_erased_inwoner_never_existed(
    operator: Operator, partner: Partner, erased_and_kept: tuple[str, str]
) -> None:
    gone, stays = erased_and_kept
    missing = str(uuid.uuid4())

    assert ids(partner.get("/Consent")) == {f"Consent/{stays}"}
    assert partner.get("/Consent", _summary="count").json()["total"] == 1
    _like_missing(
        partner.get(f"/Consent/{gone}"), gone, partner.get(f"/Consent/{missing}"), missing
    )
    _like_missing(
        partner.get(f"/Consent/{gone}/_history"),
        gone,
        partner.get(f"/Consent/{missing}/_history"),
        missing,
    )
    assert f"Consent/{gone}" not in ids(partner.get("/Consent/_history"))
    assert f"Consent/{stays}" in ids(partner.get("/Consent/_history"))
    organization_id = partner.organization.split("/")[1]
    with_consents = partner.get("/Organization", _id=organization_id, _revinclude="Consent:actor")
    assert ids(with_consents) == {partner.organization, f"Consent/{stays}"}


def test_everything_and_export_work_as_if_the_erased_inwoner_never_existed(
    runtime: Runtime, partner: Partner, erased_and_kept: tuple[str, str]
) -> None:
    gone, stays = erased_and_kept
    missing = str(uuid.uuid4())
    erased_id = _patient_of(runtime, gone)
    kept_id = _patient_of(runtime, stays)

    _like_missing(
        partner.get(f"/Patient/{erased_id}/$everything"),
        erased_id,
        partner.get(f"/Patient/{missing}/$everything"),
        missing,
    )
    assert partner.get(f"/Patient/{kept_id}/$everything").status_code == 200
    manifest = export_manifest(partner, "Consent")
    assert lines(download(partner, manifest)) == {f"Consent/{stays}"}


def _patient_of(runtime: Runtime, consent_id: str) -> str:
    with runtime.db.read() as conn:
        found = conn.scalar(
            select(ResourceRow.patient_id).where(
                ResourceRow.resource_type == "Consent", ResourceRow.resource_id == consent_id
            )
        )
    assert found is not None
    return str(found)


# -- vault audit verify, as the operator runs it -----------------------------------------


def _read_by_partner(patient_id: str) -> AuditRecord:
    return AuditRecord(
        patient_id=patient_id,
        interaction="read",
        permitted=True,
        client_id="partner-client",
        organization="Organization/partner",
        account_id=None,
        entities=["Goal/g-1"],
        recorded=now_micros(),
    )


def test_vault_audit_verify_reports_an_erased_chain_as_erased_and_still_checks_its_links(
    tmp_path: Path,
) -> None:
    with fresh_database(tmp_path) as url:
        settings = make_settings(tmp_path / "vault", url)
        initialise(settings)
        runtime = open_runtime(settings)
        try:
            with runtime.db.write() as conn:
                repo = Repository(runtime, AccessContext.full())
                erased = repo.create(conn, "Patient", patient())[0].resource_id
                kept = repo.create(conn, "Patient", patient())[0].resource_id
            for who in (erased, kept, erased, erased):
                with runtime.db.write() as conn:
                    runtime.audit.append(conn, [_read_by_partner(who)])
            _erase(runtime, erased)
        finally:
            runtime.close()
        env = vault_env(url)
        args = ("audit", "verify", "--data-dir", str(settings.data_dir))

        intact = run_vault(*args, env=env)
        assert intact.returncode == 0, intact.stderr
        assert "BROKEN" not in intact.stderr
        assert f"erased: chain {erased}: erased at " in intact.stdout
        assert "3 records" in intact.stdout
        assert "the access log is intact" in intact.stdout

        runtime = open_runtime(settings)
        try:
            with runtime.db.write() as conn:  # someone removes a record of the erased chain
                conn.execute(
                    delete(AuditChain).where(AuditChain.chain == erased, AuditChain.seq == 2)
                )
        finally:
            runtime.close()
        tampered = run_vault(*args, env=env)
        assert tampered.returncode == 1
        assert f"BROKEN: chain {erased}, record 3" in tampered.stderr
        assert "record 2 is missing" in tampered.stderr
        assert "Traceback" not in tampered.stderr


# -- the operator's full access meets an erased inwoner's rows -----------------------------


def test_the_operator_finds_an_erased_inwoners_rows_gone_and_every_count_agrees(
    runtime: Runtime,
) -> None:
    """The operator's tools (reports, the directory, the CLI) search with full access; an
    erased inwoner's rows stay in the database with their data key shredded. They answer
    as gone: 410 on read and vread, left out of search, counts, history and $everything,
    never a 500 (``KeyUnavailable``) for the whole search."""
    operator = Operator(runtime)
    erased, kept = operator.create(patient()), operator.create(patient())
    goals = {who: operator.create(goal(patient_id=who)) for who in (erased, kept)}
    _erase(runtime, erased)
    repo = Repository(runtime, AccessContext.full("test-operator"))

    with runtime.db.read() as conn:
        for resource_type, resource_id in (("Goal", goals[erased]), ("Patient", erased)):
            with pytest.raises(Gone):
                repo.read(conn, resource_type, resource_id)
            with pytest.raises(Gone):
                repo.vread(conn, resource_type, resource_id, "1")
        assert repo.read(conn, "Goal", goals[kept]).resource_id == goals[kept]

        wanted = [("_id", f"{goals[erased]},{goals[kept]}"), ("_total", "accurate")]
        page = repo.search(conn, repo.parse("Goal", wanted, lenient=False))
        assert [m.resource_id for m in page.matches] == [goals[kept]]
        assert page.total == 1
        counted = repo.search(
            conn, repo.parse("Goal", [*wanted, ("_summary", "count")], lenient=False)
        )
        assert counted.total == 1
        for who, expected in ((erased, set()), (kept, {goals[kept]})):
            found = repo.search(conn, repo.parse("Goal", [("patient", who)], lenient=False))
            assert {m.resource_id for m in found.matches} == expected
        everything = {s.resource_id for s in repo.everything(conn, kept, since=None)}
        assert everything >= {kept, goals[kept]}
        assert not {erased, goals[erased]} & everything
        history = repo.history(conn, "Goal", None, since=None, count=1000, cursor=None)
        assert goals[erased] not in {s.resource_id for s in history.entries}
        assert goals[kept] in {s.resource_id for s in history.entries}
