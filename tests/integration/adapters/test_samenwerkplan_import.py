"""End to end: the inwoner logs in on the vault's real approval page, the samenwerkplan is
imported with the inwoner's own token, and reads back word for word; twice is once."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from adapters.cli import app
from adapters.samenwerkplan import IDENTIFIER_SYSTEM, IMPORT_SCOPES, PlanImporter, read_plan
from adapters.sdk import AppLaunchAuth, AuthenticationFailed, TokenFile, VaultClient
from tests.factories import related_person
from tests.support import REPO_ROOT, free_port
from tests.support.partners import share
from tests.support.smart import inwoner_account
from vault.app.clients import register_client
from vault.testing import RegisteredClient, ThrowawayVault

EXAMPLE = REPO_ROOT / "docs" / "examples" / "samenwerkplan-noor.md"


def approving_browser(
    username: str, password: str, decision: str = "approve"
) -> Callable[[str], None]:
    """What the inwoner does in the browser: log in on the approval page and say yes."""

    def browse(url: str) -> None:
        with httpx.Client(timeout=30) as http:
            page = http.get(url)
            assert page.status_code == 200, page.text
            hidden = dict(re.findall(r'type="hidden" name="([^"]+)" value="([^"]*)"', page.text))
            form = {**hidden, "username": username, "password": password, "decision": decision}
            answer = http.post(url.split("?")[0], data=form)
            assert answer.status_code == 302, answer.text
            # the browser follows the redirect to the import tool's loopback listener
            assert http.get(answer.headers["location"]).status_code == 200

    return browse


@pytest.fixture
def import_tool(throwaway_vault: ThrowawayVault) -> tuple[str, str]:
    """The import tool, registered as a public client with a loopback redirect URI."""
    assert throwaway_vault.runtime is not None
    redirect_uri = f"http://127.0.0.1:{free_port()}/callback"
    client_id = register_client(
        throwaway_vault.runtime,
        name="Samenwerkplan import",
        organization_name="Regiekluis",
        scopes=list(IMPORT_SCOPES),
        redirect_uris=[redirect_uri],
    )
    return client_id, redirect_uri


@pytest.fixture
def login(throwaway_vault: ThrowawayVault, inwoner: str) -> tuple[str, str]:
    assert throwaway_vault.runtime is not None
    return inwoner_account(throwaway_vault.runtime, inwoner)


def test_plan_is_imported_on_the_inwoners_authority_and_reads_back_word_for_word(
    throwaway_vault: ThrowawayVault,
    import_tool: tuple[str, str],
    login: tuple[str, str],
    inwoner: str,
    partner: RegisteredClient,
    tmp_path: Path,
) -> None:
    vault = throwaway_vault
    # Fatima is already in Noor's network: the import must use her, not make a second one.
    fatima = vault.write(related_person(patient_id=inwoner, name="Fatima El Amrani"))
    client_id, redirect_uri = import_tool
    plan = read_plan(EXAMPLE)
    auth = AppLaunchAuth(client_id, redirect_uri, IMPORT_SCOPES, store=TokenFile(tmp_path / "t"))

    with VaultClient(vault.url, client_id, auth=auth) as client:
        assert auth.login(client, approving_browser(*login)) == inwoner
        first = PlanImporter(client, inwoner).run(plan)

        plans = list(
            client.search_json("CarePlan", {"identifier": f"{IDENTIFIER_SYSTEM}|{plan.key}"})
        )
        assert [f"CarePlan/{p['id']}" for p in plans] == [first.plan]
        careplan = plans[0]
        goals = {g["id"]: g for g in client.search_json("Goal", {"patient": inwoner})}
        in_order = [goals[ref["reference"].split("/")[1]] for ref in careplan["goal"]]
        assert [g["description"]["text"] for g in in_order] == [
            "Ik wil dat de brieven van de deurwaarder stoppen.",
            "Ik wil in dit huis blijven wonen, met de kinderen.",
            "Ik wil weer één keer per week iets leuks doen, gewoon voor mezelf.",
        ]
        assert [g["priority"]["text"] for g in in_order] == ["1", "2", "3"]
        assert in_order[0]["category"][0]["coding"][0]["code"] == "financien"
        assert all(g["expressedBy"]["reference"] == f"Patient/{inwoner}" for g in in_order)

        activities = [a["detail"] for a in careplan["activity"]]
        assert [a["description"] for a in activities] == [a.text for a in plan.activities]
        by_text = {a["description"]: a for a in activities}
        mine = by_text["Ik leg alle post in de blauwe map en open die elke vrijdag."]
        assert mine["performer"][0]["reference"] == f"Patient/{inwoner}"
        assert mine["code"]["text"] == "Wat kan ik"
        with_fatima = by_text["Fatima kijkt op vrijdag met mij mee naar de brieven."]
        assert with_fatima["performer"][0]["reference"] == f"RelatedPerson/{fatima['id']}"
        housing = by_text["Een regeling voor de huurachterstand."]
        assert housing["performer"][0]["reference"] == "Organization/demo-org-woningcorporatie"
        assert housing["status"] == "scheduled"
        bram = by_text["Bram haalt de kinderen op dinsdag uit school."]
        assert bram["scheduledPeriod"] == {"start": "2026-11-24", "end": "2026-12-15"}

        team = client.read_json("CareTeam", careplan["careTeam"][0]["reference"].split("/")[1])
        members = {p["member"]["display"]: p for p in team["participant"]}
        assert members["Sociaal Team Voorbeeldstad"]["member"]["reference"] == (
            "Organization/demo-org-sociaal-team"
        )
        assert "reference" not in members["Voedselbank Voorbeeldstad"]["member"]  # unknown
        new_bram = members["Bram Jansen"]["member"]["reference"]
        assert client.read_json(*new_bram.split("/"))["relationship"][0]["text"] == "broer"
        assert members["Anouk Smit"]["onBehalfOf"]["reference"] == (
            "Organization/demo-org-sociaal-team"
        )
        people = list(client.search_json("RelatedPerson", {"patient": inwoner}))
        assert sorted(p["name"][0].get("text", "") for p in people) == [
            "Bram Jansen",
            "Fatima El Amrani",
        ]

        second = PlanImporter(client, inwoner).run(plan)
        assert second.created == [] and second.updated == []
        assert len(list(client.search_json("Goal", {"patient": inwoner}))) == 3
        assert len(list(client.search_json("CarePlan", {"patient": inwoner}))) == 1
        assert len(list(client.search_json("CareTeam", {"patient": inwoner}))) == 1
        assert len(list(client.search_json("RelatedPerson", {"patient": inwoner}))) == 2

    # A partner the inwoner shares goals with sees them, words intact.
    share(vault, inwoner, partner, "Goal")
    with vault.client(partner) as partner_client:
        seen = {
            g["description"]["text"]
            for g in partner_client.search_json("Goal", {"patient": inwoner})
        }
    assert "Ik wil dat de brieven van de deurwaarder stoppen." in seen
    assert len(seen) == 3


def test_a_changed_plan_updates_the_careplan_in_place(
    throwaway_vault: ThrowawayVault,
    import_tool: tuple[str, str],
    login: tuple[str, str],
    inwoner: str,
    tmp_path: Path,
) -> None:
    client_id, redirect_uri = import_tool
    auth = AppLaunchAuth(client_id, redirect_uri, IMPORT_SCOPES)
    changed = tmp_path / "plan.md"
    changed.write_text(EXAMPLE.read_text().replace("status: gepland", "status: klaar"))
    with VaultClient(throwaway_vault.url, client_id, auth=auth) as client:
        auth.login(client, approving_browser(*login))
        first = PlanImporter(client, inwoner).run(read_plan(EXAMPLE))
        again = PlanImporter(client, inwoner).run(read_plan(changed))
        assert again.updated == [first.plan]
        assert again.created == []
        careplan = client.read_json(*first.plan.split("/"))
    assert careplan["meta"]["versionId"] == "2"
    statuses = {a["detail"]["description"]: a["detail"]["status"] for a in careplan["activity"]}
    assert statuses["Een regeling voor de huurachterstand."] == "completed"


def test_the_command_imports_with_the_stored_refresh_token_and_is_idempotent(
    throwaway_vault: ThrowawayVault,
    import_tool: tuple[str, str],
    login: tuple[str, str],
    inwoner: str,
    tmp_path: Path,
) -> None:
    client_id, redirect_uri = import_tool
    token_file = tmp_path / "token.json"
    auth = AppLaunchAuth(client_id, redirect_uri, IMPORT_SCOPES, store=TokenFile(token_file))
    with VaultClient(throwaway_vault.url, client_id, auth=auth) as client:
        auth.login(client, approving_browser(*login))
    assert token_file.stat().st_mode & 0o777 == 0o600
    args = [
        "import-plan",
        str(EXAMPLE),
        "--vault",
        throwaway_vault.url,
        "--client-id",
        client_id,
        "--redirect-uri",
        redirect_uri,
        "--token-file",
        str(token_file),
        "--no-open-browser",
    ]
    first = CliRunner().invoke(app, args)
    assert first.exit_code == 0, first.output
    assert "created 7, updated 0, unchanged 0" in first.output
    second = CliRunner().invoke(app, args)  # the refresh token was rotated and stored again
    assert second.exit_code == 0, second.output
    assert "created 0, updated 0, unchanged 5" in second.output


def test_refusing_on_the_approval_page_gives_no_token(
    throwaway_vault: ThrowawayVault, import_tool: tuple[str, str], login: tuple[str, str]
) -> None:
    client_id, redirect_uri = import_tool
    auth = AppLaunchAuth(client_id, redirect_uri, IMPORT_SCOPES)
    with VaultClient(throwaway_vault.url, client_id, auth=auth) as client:
        with pytest.raises(AuthenticationFailed) as refused:
            auth.login(client, approving_browser(*login, decision="deny"))
        assert refused.value.error == "access_denied"
        with pytest.raises(AuthenticationFailed):
            client.access_token()


def test_a_bad_file_writes_nothing(
    throwaway_vault: ThrowawayVault, import_tool: tuple[str, str], tmp_path: Path
) -> None:
    client_id, redirect_uri = import_tool
    bad = tmp_path / "plan.md"
    bad.write_text(EXAMPLE.read_text().replace("domein: wonen", "domein: geld"))
    result = CliRunner().invoke(
        app,
        [
            "import-plan",
            str(bad),
            "--vault",
            throwaway_vault.url,
            "--client-id",
            client_id,
            "--redirect-uri",
            redirect_uri,
            "--token-file",
            str(tmp_path / "t"),
            "--no-open-browser",
        ],
    )
    assert result.exit_code == 2
    assert "plan.md, line 15: unknown life domain 'geld'" in result.output
    assert not (tmp_path / "t").exists()  # it stopped before any login
