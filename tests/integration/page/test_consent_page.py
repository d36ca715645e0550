"""The consent page end to end: a real browser against `vault serve`, and partner systems
reading over the FHIR API with tokens from the vault's own token endpoint."""

from __future__ import annotations

import json
import re
from typing import Any
from urllib.parse import unquote

import httpx
import orjson
import pytest
from playwright.sync_api import Browser, Page, expect
from sqlalchemy import select

from tests.integration.page.conftest import Vault, check_page, log_in
from tests.support.smart import register_backend
from vault.audit.log import verify_chains
from vault.consent.access import AccessContext
from vault.fhir.repository import Repository
from vault.kernel.errors import Gone, KeyUnavailable
from vault.oauth.models import Account
from vault.page.data import GOAL_RANK, LEGAL_BASIS
from vault.page.words import preview_actor
from vault.store.models import ResourceRow
from vault.store.reads import open_version

MEE = "MEE Voorbeeldregio"  # the demo's Organization/demo-org-mee

pytestmark = pytest.mark.slow


def goals_of(partner: httpx.Client, patient: str) -> list[str]:
    response = partner.get("/Goal", params={"patient": f"Patient/{patient}"})
    assert response.status_code == 200, response.text
    return [e["resource"]["id"] for e in response.json().get("entry", [])]


def test_every_page_logs_in_passes_axe_and_is_screenshotted(page: Page, vault: Vault) -> None:
    log_in(page, vault, "sanne")
    expect(page.get_by_role("heading", level=1)).to_have_text("Wie mag wat zien")
    check_page(page, "wie-mag-wat-zien")
    page.get_by_role("link", name="Kies wat Woonstichting Voorbeeldstad mag zien").click()
    check_page(page, "kies-wat-iemand-ziet")
    page.get_by_role("button", name="Verder").click()
    expect(page.locator("#voorstel")).to_contain_text("Woonstichting Voorbeeldstad mag")
    check_page(page, "klopt-dit")
    page.goto(vault.url + "/bekijk/Organization/demo-org-sociaal-team")
    check_page(page, "bekijk-wat-iemand-ziet")
    for path, name in (
        ("/plan", "mijn-plan"),
        ("/netwerk", "mijn-netwerk"),
        ("/log", "wie-heeft-er-gekeken"),
        ("/gegevens", "mijn-gegevens"),
    ):
        page.goto(vault.url + path)
        check_page(page, name)
    page.get_by_role("button", name="Mijn kluis wissen").click()
    check_page(page, "weet-je-het-zeker")
    page.goto(vault.url + "/")
    page.get_by_role("button", name="Stop met alles delen").click()
    check_page(page, "stop-met-alles-delen")
    page.get_by_role("button", name="Uitloggen").click()
    expect(page).to_have_url(re.compile(r"/inloggen$"))
    check_page(page, "inloggen")
    page.goto(vault.url + "/uitnodiging/niet-geldig")
    check_page(page, "uitnodiging-verlopen")


def test_plan_goals_and_scores_are_edited_in_own_words(page: Page, vault: Vault) -> None:
    log_in(page, vault, "erik")
    page.goto(vault.url + "/plan")
    page.get_by_text("Verander doel 1").click()  # her words first; the edit box one tap away
    first = page.get_by_label("Doel 1", exact=True)
    first.fill("Ik wil werk bij een hovenier.")
    page.get_by_role("button", name="Doel 1 opslaan").click()
    expect(page.locator("#doelen")).to_contain_text("Ik wil werk bij een hovenier.")
    points = page.locator("svg.chart circle").count()
    page.get_by_label("Onderwerp", exact=True).select_option("gezondheid")
    page.get_by_label("Welk cijfer geef je het nu? (1 tot 10)").fill("8")
    page.get_by_role("button", name="Cijfer opslaan").click()
    expect(page.locator("svg.chart circle")).to_have_count(points + 1)
    check_page(page, "mijn-plan-na-wijziging")
    with vault.runtime.db.read() as conn:
        goals = Repository(vault.runtime, AccessContext.full()).search(
            conn,
            Repository(vault.runtime, AccessContext.full()).parse(
                "Goal", [("patient", "Patient/demo-inwoner-erik")], lenient=False
            ),
        )
    texts = [json.loads(s.body or b"{}")["description"]["text"] for s in goals.matches]
    assert "Ik wil werk bij een hovenier." in texts


def audit_events(vault: Vault, patient: str) -> list[dict[str, Any]]:
    repo = Repository(vault.runtime, AccessContext.full())
    vault.runtime.audit.settle_all()  # a store-level search: the log's waiting records first
    with vault.runtime.db.read() as conn:
        query = repo.parse(
            "AuditEvent", [("patient", f"Patient/{patient}"), ("_count", "500")], lenient=False
        )
        return [json.loads(s.body or b"{}") for s in repo.search(conn, query).matches]


def _goal_texts(page: Page) -> list[str]:
    return [t.input_value() for t in page.locator("#doelen textarea").all()]


def test_goals_are_put_in_the_inwoners_own_order_with_up_and_down(page: Page, vault: Vault) -> None:
    log_in(page, vault, "sanne")
    page.goto(vault.url + "/plan")
    before = _goal_texts(page)
    assert len(before) == 4
    expect(page.get_by_role("button", name="Doel 1 omhoog")).to_have_count(0)
    expect(page.get_by_role("button", name="Doel 4 omlaag")).to_have_count(0)
    page.get_by_role("button", name="Doel 4 omhoog").click()
    expect(page.get_by_role("status")).to_contain_text("Dit doel staat nu op plek 3.")
    assert _goal_texts(page) == [before[0], before[1], before[3], before[2]]
    # By keyboard, too.
    page.get_by_role("button", name="Doel 1 omlaag").focus()
    page.keyboard.press("Enter")
    page.wait_for_load_state()
    expected = [before[1], before[0], before[3], before[2]]
    expect(page.locator("#doelen textarea").first).to_have_value(expected[0])
    assert _goal_texts(page) == expected
    check_page(page, "mijn-plan-eigen-volgorde")
    # The order is part of the Goals, as partners read them over FHIR.
    repo = Repository(vault.runtime, AccessContext.full())
    with vault.runtime.db.read() as conn:
        found = repo.search(
            conn, repo.parse("Goal", [("patient", "Patient/demo-inwoner-sanne")], lenient=False)
        )
    ranks = {}
    for stored in found.matches:
        goal = json.loads(stored.body or b"{}")
        rank = [e["valueInteger"] for e in goal.get("extension", []) if e["url"] == GOAL_RANK]
        ranks[goal["description"]["text"]] = rank[0]
    assert [text for text, _ in sorted(ranks.items(), key=lambda item: item[1])] == expected
    # Another visit shows the same order.
    page.goto(vault.url + "/plan")
    assert _goal_texts(page) == expected


def test_grant_reaches_the_partner_and_revoking_stops_its_next_read(
    page: Page, vault: Vault
) -> None:
    partner = register_backend(vault.runtime, vault.url, organization=MEE)
    with httpx.Client(timeout=30) as http, partner.fhir(http) as fhir:
        assert goals_of(fhir, "demo-inwoner-erik") == []
        log_in(page, vault, "erik")
        page.get_by_label("Organisatie").select_option(label=MEE)
        page.get_by_role("button", name="Verder").click()
        page.get_by_label("Je doelen").first.check()
        page.get_by_label("Tot en met welke dag?").fill("2030-03-01")
        page.get_by_role("button", name="Verder").click()
        expect(page.locator("#voorstel")).to_have_text(
            f"{MEE} mag je doelen zien. Dit mag tot en met 1 maart 2030. {MEE} mag niet "
            "zien: je naam en adres, je plan, je netwerk en je cijfers."
        )
        page.get_by_role("button", name="Ja, opslaan").click()
        expect(page.get_by_role("status")).to_contain_text("opgeslagen")
        granted = goals_of(fhir, "demo-inwoner-erik")
        assert len(granted) == 3
        assert fhir.get("/CarePlan/demo-plan-erik").status_code == 404

        page.get_by_role("link", name=f"Bekijk wat {MEE} ziet").click()
        expect(page.locator('ul[data-type="Goal"] > li')).to_have_count(3)
        expect(page.locator('ul[data-type="CarePlan"]')).to_have_count(0)

        page.goto(vault.url + "/log?wie=Organization/demo-org-mee")
        expect(page.locator("ol.log")).to_contain_text(f"{MEE} heeft je doelen bekeken")
        # The preview was the inwoner looking, not a read by MEE.
        expect(page.locator("ol.log")).not_to_contain_text("Jij")
        mee_reads = page.locator("ol.log > li").count()
        check_page(page, "wie-heeft-er-gekeken-mee")
        page.goto(vault.url + "/log?wie=iedereen")
        expect(page.locator("ol.log")).to_contain_text(f"Jij hebt bekeken wat {MEE} ziet")
        page.get_by_role("link", name="Wie mag wat zien").click()
        page.get_by_role("link", name=f"Bekijk wat {MEE} ziet").click()
        page.goto(vault.url + "/log?wie=Organization/demo-org-mee")
        expect(page.locator("ol.log > li")).to_have_count(mee_reads)
        events = audit_events(vault, "demo-inwoner-erik")
        previews = [e for e in events if preview_actor(e) == "Organization/demo-org-mee"]
        assert len(previews) == 2
        for event in previews:
            assert event["agent"][0]["who"] == {"reference": "Patient/demo-inwoner-erik"}
            assert "Organization/demo-org-mee" not in json.dumps(event["agent"])

        page.goto(vault.url + "/")
        page.get_by_role("button", name=f"Stop met delen met {MEE}").click()
        expect(page.locator("#voorstel")).to_have_text(f"{MEE} mag niets zien van je plan.")
        page.get_by_role("button", name=f"Ja, stop met delen met {MEE}").click()
        expect(page.get_by_role("status")).to_contain_text("opgeslagen")
        # The very next read, with the same token.
        assert goals_of(fhir, "demo-inwoner-erik") == []
        assert fhir.get(f"/Goal/{granted[0]}").status_code == 404


def test_stop_sharing_everything_ends_every_consent(page: Page, vault: Vault) -> None:
    partner = register_backend(vault.runtime, vault.url, organization="GGZ Voorbeeldstad")
    with httpx.Client(timeout=30) as http, partner.fhir(http) as fhir:
        log_in(page, vault, "erik")
        page.goto(vault.url + "/")
        page.get_by_role("button", name="Stop met alles delen").click()
        page.get_by_role("button", name="Ja, stop met alles delen").click()
        expect(page.get_by_role("status")).to_contain_text("Je deelt nu niets meer")
        assert goals_of(fhir, "demo-inwoner-erik") == []
        expect(page.locator(".sentence")).not_to_contain_text([" zien."])


def test_invited_neighbour_logs_in_and_sees_only_what_was_granted(
    browser: Browser, page: Page, vault: Vault
) -> None:
    log_in(page, vault, "sanne")
    page.goto(vault.url + "/netwerk")
    page.get_by_label("Naam").fill("Henk de Buur")
    page.get_by_label("Wie is het voor jou?").fill("buurman")
    page.get_by_role("button", name="Maak een uitnodiging").click()
    link = page.get_by_label("Uitnodiging").input_value()
    assert "/uitnodiging/" in link
    # The link can go out by e-mail or a message, not only by copying it.
    mail = page.get_by_role("link", name="Stuur de link per e-mail").get_attribute("href")
    assert mail is not None and mail.startswith("mailto:") and link in unquote(mail)
    sms = page.get_by_role("link", name="Stuur de link in een bericht").get_attribute("href")
    assert sms is not None and sms.startswith("sms:")

    neighbour_context = browser.new_context(viewport={"width": 1280, "height": 900})
    try:
        neighbour = neighbour_context.new_page()
        neighbour.goto(link)
        check_page(neighbour, "uitnodiging")
        # Who invites is named, and the name Sanne typed is filled in (issue 14).
        expect(neighbour.get_by_role("heading", level=1)).to_have_text("Sanne Bakker nodigt je uit")
        expect(neighbour.get_by_label("Je naam")).to_have_value("Henk de Buur")
        neighbour.get_by_label("Je naam").fill("Henk")
        neighbour.get_by_label("Kies een gebruikersnaam").fill("henk-buur")
        neighbour.get_by_label("Kies een wachtwoord").fill("buurman-wachtwoord")
        neighbour.get_by_label("Typ het wachtwoord nog een keer").fill("buurman-wachtwoord")
        neighbour.get_by_role("button", name="Account maken").click()
        expect(neighbour.get_by_role("heading", level=1)).to_have_text("Wat je mag zien")
        expect(neighbour.locator("#niets")).to_be_visible()

        page.goto(vault.url + "/")
        page.get_by_role("link", name="Kies wat Henk de Buur mag zien").click()
        page.get_by_label("Je doelen").first.check()
        page.get_by_role("button", name="Verder").click()
        page.get_by_role("button", name="Ja, opslaan").click()

        neighbour.get_by_role("button", name="Uitloggen").click()
        log_in(neighbour, vault, "henk-buur", "buurman-wachtwoord")
        expect(neighbour.locator('ul[data-type="Goal"] > li')).to_have_count(4)
        expect(neighbour.locator('ul[data-type="CarePlan"]')).to_have_count(0)
        expect(neighbour.locator('ul[data-type="Observation"]')).to_have_count(0)
        check_page(neighbour, "wat-je-mag-zien")
        # The neighbour cannot open the inwoner's own pages.
        neighbour.goto(vault.url + "/plan")
        expect(neighbour.get_by_role("heading", level=1)).to_have_text("Dat mag niet")

        # The link worked once.
        other = neighbour_context.new_page()
        other.goto(link)
        expect(other.get_by_role("heading", level=1)).to_have_text("Deze link werkt niet meer")
    finally:
        neighbour_context.close()

    page.goto(vault.url + "/log?wie=iedereen")
    expect(page.locator("ol.log")).to_contain_text("Henk de Buur heeft je doelen bekeken")


def test_a_representative_changes_a_grant_and_the_log_says_on_whose_behalf(
    browser: Browser, page: Page, vault: Vault
) -> None:
    log_in(page, vault, "sanne")
    page.goto(vault.url + "/netwerk")
    page.get_by_label("Naam").fill("Kees Janssen")
    page.get_by_label("Wie is het voor jou?").fill("broer")
    page.get_by_role("button", name="Maak een uitnodiging").click()
    link = page.get_by_label("Uitnodiging").input_value()

    brother_context = browser.new_context(viewport={"width": 1280, "height": 900})
    try:
        brother = brother_context.new_page()
        brother.goto(link)
        brother.get_by_label("Je naam").fill("Kees")
        brother.get_by_label("Kies een gebruikersnaam").fill("kees-broer")
        brother.get_by_label("Kies een wachtwoord").fill("broer-wachtwoord")
        brother.get_by_label("Typ het wachtwoord nog een keer").fill("broer-wachtwoord")
        brother.get_by_role("button", name="Account maken").click()
        expect(brother.get_by_role("heading", level=1)).to_have_text("Wat je mag zien")

        page.goto(vault.url + "/netwerk")
        card = page.locator("li.card", has_text="Kees Janssen")
        card.get_by_label("Mag Kees Janssen namens jou kiezen wie wat ziet?").select_option(
            label="Ja, als mentor"
        )
        card.get_by_role("button", name="Opslaan").click()
        expect(page.get_by_role("status")).to_contain_text("Opgeslagen")
        expect(page.locator("li.card", has_text="Kees Janssen")).to_contain_text(
            "Mag namens jou kiezen wie wat ziet (mentor)"
        )
        check_page(page, "mijn-netwerk-vertegenwoordiger")

        brother.goto(vault.url + "/")
        expect(brother.get_by_role("heading", level=1)).to_have_text("Wie mag wat zien")
        expect(brother.locator("header")).to_contain_text("namens Sanne Bakker")
        brother.get_by_role("link", name="Kies wat Woonstichting Voorbeeldstad mag zien").click()
        brother.get_by_label("Je doelen").first.check()
        brother.get_by_role("button", name="Verder").click()
        brother.get_by_role("button", name="Ja, opslaan").click()
        expect(brother.get_by_role("status")).to_contain_text("opgeslagen")
        check_page(brother, "vertegenwoordiger-wie-mag-wat-zien")
        # A representative manages grants, not the inwoner's network or vault.
        brother.goto(vault.url + "/netwerk")
        expect(brother.get_by_role("heading", level=1)).to_have_text("Dat mag niet")
    finally:
        brother_context.close()

    page.goto(vault.url + "/log?wie=iedereen")
    expect(page.locator("ol.log")).to_contain_text(
        "Kees Janssen heeft namens jou veranderd wie wat mag zien"
    )
    check_page(page, "wie-heeft-er-gekeken-namens")
    # The legal basis is part of the RelatedPerson, as partners read it over FHIR.
    repo = Repository(vault.runtime, AccessContext.full())
    with vault.runtime.db.read() as conn:
        people = repo.search(
            conn,
            repo.parse("RelatedPerson", [("patient", "Patient/demo-inwoner-sanne")], lenient=False),
        )
    kees = next(
        json.loads(p.body or b"{}") for p in people.matches if b"Kees Janssen" in (p.body or b"")
    )
    codings = [c for r in kees["relationship"] for c in r.get("coding", [])]
    assert {"system": LEGAL_BASIS, "code": "mentor", "display": "mentor"} in codings


def test_the_english_switch_works_without_javascript_and_passes_axe(
    page: Page, vault: Vault
) -> None:
    page.goto(vault.url + "/inloggen")
    expect(page.locator("html")).to_have_attribute("lang", "nl")
    page.get_by_role("link", name="English").click()
    expect(page.locator("html")).to_have_attribute("lang", "en")
    expect(page.get_by_role("heading", level=1)).to_have_text("Log in")
    check_page(page, "en-log-in")
    page.get_by_label("User name").fill("sanne")
    page.get_by_label("Password").fill(vault.passwords["sanne"])
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Who may see what")
    expect(page.locator(".sentence").first).to_contain_text(" may ")
    check_page(page, "en-who-may-see-what")
    page.get_by_role("link", name="Choose what Woonstichting Voorbeeldstad may see").click()
    check_page(page, "en-choose")
    page.get_by_label("Your goals").first.check()
    page.get_by_label("Until which day (inclusive)?").fill("2030-03-01")
    page.get_by_role("button", name="Next").click()
    expect(page.locator("#voorstel")).to_have_text(
        "Woonstichting Voorbeeldstad may see your goals and your plan. This holds until "
        "1 March 2030 (inclusive). Woonstichting Voorbeeldstad may not see your name and "
        "address, your network and your scores."
    )
    check_page(page, "en-is-this-right")
    page.goto(vault.url + "/bekijk/Organization/demo-org-sociaal-team")
    check_page(page, "en-look-at-what")
    for path, heading in (
        ("/plan", "My plan"),
        ("/netwerk", "My network"),
        ("/log?wie=iedereen", "Who has looked"),
        ("/gegevens", "My data"),
    ):
        page.goto(vault.url + path)
        expect(page.locator("html")).to_have_attribute("lang", "en")
        expect(page.get_by_role("heading", level=1)).to_have_text(heading)
        check_page(page, "en-" + heading.lower().replace(" ", "-"))
    expect(page.locator("body")).not_to_contain_text("Mijn")
    page.goto(vault.url + "/log?wie=iedereen")
    expect(page.locator("ol.log")).to_contain_text("You viewed")
    page.goto(vault.url + "/plan")
    page.get_by_role("link", name="Nederlands").click()
    expect(page).to_have_url(re.compile(r"/plan$"))
    expect(page.locator("html")).to_have_attribute("lang", "nl")
    expect(page.get_by_role("heading", level=1)).to_have_text("Mijn plan")


def test_download_is_a_fhir_bundle_of_everything(page: Page, vault: Vault) -> None:
    log_in(page, vault, "sanne")
    page.goto(vault.url + "/gegevens")
    with page.expect_download() as download:
        page.get_by_role("link", name="Download mijn gegevens").click()
    bundle = json.loads(download.value.path().read_text(encoding="utf-8"))
    assert bundle["resourceType"] == "Bundle" and bundle["type"] == "collection"
    kinds = {e["resource"]["resourceType"] for e in bundle["entry"]}
    assert {"Patient", "CarePlan", "Goal", "Observation", "CareTeam", "Consent"} <= kinds
    patients = [
        e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == "Patient"
    ]
    assert [p["id"] for p in patients] == ["demo-inwoner-sanne"]
    assert all(
        e["resource"].get("subject", {}).get("reference", "Patient/demo-inwoner-sanne")
        == "Patient/demo-inwoner-sanne"
        for e in bundle["entry"]
    )


def test_erasing_asks_twice_then_every_partner_loses_access(page: Page, vault: Vault) -> None:
    partner = register_backend(vault.runtime, vault.url, organization=MEE)
    with vault.runtime.db.read() as conn:
        daan = conn.scalar(select(Account.account_id).where(Account.username == "daan"))
    with httpx.Client(timeout=30) as http, partner.fhir(http) as fhir:
        assert len(goals_of(fhir, "demo-inwoner-daan")) == 3  # the demo's Consent for MEE
        log_in(page, vault, "daan")
        page.goto(vault.url + "/gegevens")
        page.get_by_role("button", name="Mijn kluis wissen").click()
        page.get_by_label("Typ WISSEN om je kluis te wissen").fill("nee")
        page.get_by_role("button", name="Ja, wis alles").click()
        expect(page.get_by_role("alert")).to_contain_text("WISSEN")
        assert len(goals_of(fhir, "demo-inwoner-daan")) == 3  # nothing happened yet
        page.get_by_label("Typ WISSEN om je kluis te wissen").fill("WISSEN")
        page.get_by_role("button", name="Ja, wis alles").click()
        expect(page.get_by_role("heading", level=1)).to_have_text("Je kluis is gewist")
        check_page(page, "kluis-gewist")

        assert (
            fhir.get("/Goal", params={"patient": "Patient/demo-inwoner-daan"})
            .json()
            .get("entry", [])
            == []
        )
        read = fhir.get("/Goal/demo-doel-daan-school")
        # Hidden exactly like an id that never existed; the denial is logged in the
        # vault's own chain, since the inwoner's key is gone.
        assert read.status_code == 404
        assert read.json()["resourceType"] == "OperationOutcome"
    # Her rows stay in the database but cannot be opened (the key is gone); the operator's
    # tools find them gone (410), not a KeyUnavailable for the whole request.
    with vault.runtime.db.read() as conn:
        pk = conn.scalar(
            select(ResourceRow.pk).where(
                ResourceRow.resource_type == "Goal",
                ResourceRow.resource_id == "demo-doel-daan-school",
            )
        )
        assert pk is not None
        with pytest.raises(KeyUnavailable):
            open_version(vault.runtime, conn, pk, 1)
        with pytest.raises(Gone):
            Repository(vault.runtime, AccessContext.full()).read(
                conn, "Goal", "demo-doel-daan-school"
            )
    # The erasure itself is on the record: who, when, of whom, in the vault's own chain
    # (her key is gone), and the chains still verify, hers reported as erased.
    vault.runtime.audit.settle_all()  # the operator's search below is store-level
    with vault.runtime.db.read() as conn:
        audit = Repository(vault.runtime, AccessContext.full())
        found = audit.search(
            conn,
            audit.parse(
                "AuditEvent",
                [("entity", "Patient/demo-inwoner-daan"), ("action", "D"), ("_count", "50")],
                lenient=False,
            ),
        )
    erasures = [orjson.loads(e.body or b"{}") for e in found.matches if e.patient_id is None]
    assert len(erasures) == 1
    assert erasures[0]["agent"][0]["name"] == f"account {daan}"
    notes: list[str] = []
    assert verify_chains(vault.runtime, notes=notes) == []
    assert any("chain demo-inwoner-daan: erased at" in note for note in notes)
    page.goto(vault.url + "/")
    expect(page).to_have_url(re.compile(r"/inloggen$"))
    page.get_by_label("Gebruikersnaam").fill("daan")
    page.get_by_label("Wachtwoord").fill(vault.passwords["daan"])
    page.get_by_role("button", name="Inloggen").click()
    expect(page.get_by_role("alert")).to_contain_text("klopt niet")
