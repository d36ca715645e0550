"""Stop means stop (issue 11 items 1, 3, 5) and a log that tells the truth (issue 18).

A real browser drives the inwoner's page against `vault serve`; apps get their tokens
through the real SMART App Launch flow, partners through SMART Backend Services, and
someone of the network keeps a real page session (cookies over HTTP) while the inwoner
ends their role.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from itertools import pairwise

import httpx
import pytest
from playwright.sync_api import Page, expect

from tests.integration.page.conftest import Vault, check_page, http_log_in, log_in, page_csrf
from tests.support.smart import App, make_key, register_app, register_backend
from vault.app.clients import register_client

MEE = "MEE Voorbeeldregio"  # the demo's Organization/demo-org-mee; Daan shares his goals

pytestmark = pytest.mark.slow


@contextmanager
def app_reader(vault: Vault, app: App, username: str) -> Iterator[tuple[httpx.Client, dict]]:
    """An app the inwoner approved: its FHIR client and its token response."""
    with httpx.Client(timeout=30) as http:
        tokens = app.full_flow(http, username=username, password=vault.passwords[username])
        with httpx.Client(
            base_url=f"{vault.url}/fhir",
            timeout=30,
            headers={"authorization": f"Bearer {tokens['access_token']}"},
        ) as fhir:
            yield fhir, tokens


def invite_and_join(page: Page, vault: Vault, name: str, username: str) -> httpx.Client:
    """The inwoner invites someone; they make an account over HTTP and keep that session."""
    page.goto(vault.url + "/netwerk")
    page.get_by_label("Naam").fill(name)
    page.get_by_label("Wie is het voor jou?").fill("familie")
    page.get_by_role("button", name="Maak een uitnodiging").click()
    link = page.get_by_label("Uitnodiging").input_value()
    person = httpx.Client(base_url=vault.url, timeout=30, follow_redirects=False)
    form = person.get(link)
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', form.text)
    assert csrf is not None, form.text
    done = person.post(
        link,
        data={
            "csrf_token": csrf.group(1),
            "name": name,
            "username": username,
            "password": f"{username}-wachtwoord",
            "password_again": f"{username}-wachtwoord",
        },
    )
    assert done.status_code == 303, done.text
    assert person.get("/").status_code == 200
    return person


def name_role(page: Page, vault: Vault, name: str, label: str) -> None:
    page.goto(vault.url + "/netwerk")
    card = page.locator("li.card", has=page.get_by_role("heading", name=name))
    card.get_by_label(f"Mag {name} namens jou kiezen wie wat ziet?").select_option(label=label)
    card.get_by_role("button", name="Opslaan").click()
    expect(page.get_by_role("status")).to_contain_text("Opgeslagen")


def add_goal(session: httpx.Client, text: str) -> httpx.Response:
    csrf = page_csrf(session, "/plan")
    return session.post("/plan/doel", data={"csrf_token": csrf, "text": text})


def test_the_inwoner_sees_her_apps_and_stop_ends_access_and_refresh_at_once(
    page: Page, vault: Vault
) -> None:
    app = register_app(vault.runtime, vault.url)
    with app_reader(vault, app, "daan") as (fhir, tokens), httpx.Client(timeout=30) as http:
        assert fhir.get("/Goal", params={"patient": "Patient/demo-inwoner-daan"}).status_code == 200
        # The app refreshes once: one approval, still one app, and both token pairs must end.
        rotated = app.refresh(http, tokens["refresh_token"])
        assert rotated.status_code == 200, rotated.text
        newer = rotated.json()
        log_in(page, vault, "daan")
        card = page.locator("li.card", has=page.get_by_role("heading", name="Mijn Plan app"))
        expect(card).to_have_count(1)
        # The same plain sentences as the page where Daan said yes.
        expect(card).to_contain_text("je doelen bekijken, toevoegen, veranderen en weghalen")
        expect(card).to_contain_text("al je gegevens bekijken")
        expect(card).to_contain_text("Mag sinds")
        expect(card).to_contain_text("Laatst gebruikt")
        check_page(page, "apps-die-je-gebruikt")
        card.get_by_role("button", name="Stop Mijn Plan app").click()
        expect(page.get_by_role("status")).to_contain_text(
            "Mijn Plan app is gestopt. Deze app kan nu niets meer zien of doen."
        )
        expect(page.get_by_role("heading", name="Mijn Plan app")).to_have_count(0)
        # The very next request with either access token, and the live refresh token.
        assert fhir.get("/Goal", params={"patient": "Patient/demo-inwoner-daan"}).status_code == 401
        with httpx.Client(
            base_url=f"{vault.url}/fhir",
            timeout=30,
            headers={"authorization": f"Bearer {newer['access_token']}"},
        ) as later:
            assert (
                later.get("/Goal", params={"patient": "Patient/demo-inwoner-daan"}).status_code
                == 401
            )
        refreshed = app.refresh(http, newer["refresh_token"])
        assert refreshed.status_code == 400, refreshed.text
        assert refreshed.json()["error"] == "invalid_grant"
    page.goto(vault.url + "/log?wie=jij")
    expect(page.locator("ol.log")).to_contain_text("Jij hebt Mijn Plan app gestopt")


def test_stop_everything_ends_apps_and_a_machtiging_and_names_who_stays(
    page: Page, vault: Vault
) -> None:
    app = register_app(vault.runtime, vault.url)
    log_in(page, vault, "sanne")
    mo = invite_and_join(page, vault, "Mo Machtiging", "mo-machtiging")
    kees = invite_and_join(page, vault, "Kees Mentor", "kees-mentor")
    name_role(page, vault, "Mo Machtiging", "Ja, als machtiging")
    name_role(page, vault, "Kees Mentor", "Ja, als mentor")
    assert mo.get("/plan").status_code == 200
    assert kees.get("/plan").status_code == 200
    with app_reader(vault, app, "sanne") as (fhir, tokens), httpx.Client(timeout=30) as http:
        assert (
            fhir.get("/Goal", params={"patient": "Patient/demo-inwoner-sanne"}).status_code == 200
        )
        page.goto(vault.url + "/")
        page.get_by_role("button", name="Stop met alles delen").click()
        expect(page.locator("main")).to_contain_text("Ook je apps stoppen")
        check_page(page, "stop-met-alles-delen-vraag")
        page.get_by_role("button", name="Ja, stop met alles delen").click()
        notice = page.locator("#na-stoppen")
        expect(notice).to_contain_text("Organisaties en apps kunnen niets meer zien.")
        expect(notice).to_contain_text(
            "Kees Mentor blijft je mentor. Dat heeft de rechter besloten."
        )
        expect(notice).not_to_contain_text("Mo Machtiging")
        expect(notice).not_to_contain_text("Niemand kan je plan nog zien")
        expect(page.locator("main")).to_contain_text("Geen enkele app kan nu je plan zien.")
        check_page(page, "na-stoppen")
        assert (
            fhir.get("/Goal", params={"patient": "Patient/demo-inwoner-sanne"}).status_code == 401
        )
        assert app.refresh(http, tokens["refresh_token"]).status_code == 400
    # Mo's live session lost the machtiging with this very request; Kees keeps his role.
    assert mo.get("/plan").status_code == 403
    assert add_goal(kees, "Kees schrijft dit").status_code == 303
    csrf = page_csrf(mo, "/")
    refused = mo.post("/plan/doel", data={"csrf_token": csrf, "text": "Mo schrijft dit"})
    assert refused.status_code == 403
    # Taking Kees out of the network ends his court role too, live session included.
    page.goto(vault.url + "/netwerk")
    page.get_by_role("button", name="Haal Kees Mentor weg uit je netwerk").click()
    expect(page.get_by_role("status")).to_contain_text("Weggehaald")
    check_page(page, "netwerk-weggehaald")
    for path in ("/plan", "/log", "/"):
        response = kees.get(path)
        assert response.status_code == 303 and response.headers["location"] == "/inloggen"
    with httpx.Client(base_url=vault.url, timeout=30) as again:
        assert http_log_in(again, "kees-mentor", "kees-mentor-wachtwoord").status_code == 400
    # The log still tells who it was, and that he was her mentor when he wrote.
    page.goto(vault.url + "/log")
    expect(page.locator("ol.log")).to_contain_text("Kees Mentor heeft namens jou 1 doel toegevoegd")
    mo.close()
    kees.close()


def test_a_mentor_deleted_through_the_fhir_api_loses_a_live_session_at_once(
    page: Page, vault: Vault
) -> None:
    scopes = ["launch/patient", "openid", "fhirUser", "offline_access", "patient/*.cruds"]
    app = register_app(vault.runtime, vault.url, scopes=scopes)
    log_in(page, vault, "erik")
    rita = invite_and_join(page, vault, "Rita Rechter", "rita-mentor")
    name_role(page, vault, "Rita Rechter", "Ja, als mentor")
    assert rita.get("/plan").status_code == 200
    assert rita.get("/log").status_code == 200
    assert add_goal(rita, "Rita schrijft dit").status_code == 303
    with app_reader(vault, app, "erik") as (fhir, _tokens):
        people = fhir.get("/RelatedPerson", params={"patient": "Patient/demo-inwoner-erik"})
        rita_id = next(
            e["resource"]["id"]
            for e in people.json()["entry"]
            if "Rita Rechter" in str(e["resource"].get("name"))
        )
        assert fhir.delete(f"/RelatedPerson/{rita_id}").status_code in (200, 204)
        goals = fhir.get("/Goal", params={"patient": "Patient/demo-inwoner-erik"}).json()
        before = goals.get("total")
        for path in ("/plan", "/log", "/"):
            response = rita.get(path)
            assert response.status_code == 303 and response.headers["location"] == "/inloggen"
        assert rita.post("/plan/doel", data={"csrf_token": "x", "text": "nog een"}).status_code in (
            303,
            403,
        )
        goals = fhir.get("/Goal", params={"patient": "Patient/demo-inwoner-erik"}).json()
        assert goals.get("total") == before
    rita.close()


def test_the_log_shows_one_line_per_visit_survives_a_flood_and_keeps_the_past(
    page: Page, vault: Vault
) -> None:
    mee = register_backend(vault.runtime, vault.url, organization=MEE)
    flooder = register_backend(vault.runtime, vault.url, organization="Stichting Nieuwsgierig")
    importer_id = register_client(
        vault.runtime,
        name="Samenwerkplan-import",
        organization_name="Import BV",
        scopes=["launch/patient", "offline_access", "patient/Goal.cruds"],
        redirect_uris=["https://import.example/callback"],
    )
    importer = App(
        vault.url,
        importer_id,
        "https://import.example/callback",
        ["launch/patient", "offline_access", "patient/Goal.cruds"],
    )
    log_in(page, vault, "daan")
    noor = invite_and_join(page, vault, "Noor Helpt", "noor-helpt")  # looks, not yet for Daan
    with httpx.Client(timeout=30) as http, mee.fhir(http) as partner:
        goals = partner.get("/Goal", params={"patient": "Patient/demo-inwoner-daan"}).json()
        goal_id = goals["entry"][0]["resource"]["id"]
        for _ in range(2):
            assert partner.get(f"/Goal/{goal_id}").status_code == 200
        with flooder.fhir(http) as flood:
            for _ in range(310):
                assert flood.get(f"/Goal/{goal_id}").status_code == 404
    with app_reader(vault, importer, "daan") as (fhir, _tokens):
        for number in range(7):
            created = fhir.post(
                "/Goal",
                json={
                    "resourceType": "Goal",
                    "lifecycleStatus": "active",
                    "description": {"text": f"Geïmporteerd doel {number}"},
                    "subject": {"reference": "Patient/demo-inwoner-daan"},
                },
            )
            assert created.status_code == 201, created.text
    name_role(page, vault, "Noor Helpt", "Ja, als machtiging")
    assert noor.get("/").status_code == 200  # now acting for Daan
    noor.close()
    for path in ("/netwerk", "/", "/netwerk", "/plan", "/netwerk"):
        page.goto(vault.url + path)

    page.goto(vault.url + "/log?wie=iedereen")
    lines = page.locator("ol.log > li")
    flood = lines.filter(has_text="Stichting Nieuwsgierig")
    expect(flood).to_have_count(1)
    expect(flood).to_contain_text(
        "Stichting Nieuwsgierig probeerde 310 keer iets te zien wat niet mocht"
    )
    expect(flood.locator("summary")).to_have_text("Bekijk alle 310 keren")
    expect(lines.filter(has_text=f"{MEE} heeft je doelen bekeken")).to_have_count(1)
    expect(lines.filter(has_text="Samenwerkplan-import heeft 7 doelen toegevoegd")).to_have_count(1)
    expect(page.locator("ol.log")).not_to_contain_text("Jij hebt 7 doelen")
    # Before she named Noor, Noor only looked; after, Noor acts for her. Both as they were.
    expect(lines.filter(has_text="Noor Helpt heeft namens jou")).to_have_count(1)
    expect(lines.filter(has_text=re.compile(r"^Noor Helpt keek"))).to_have_count(1)
    # Her own page views are grouped the same way: never the same sentence twice in a row.
    texts = [t.split(", ")[0] for t in page.locator("ol.log > li > .visit").all_inner_texts()]
    assert all(a != b for a, b in pairwise(texts)), texts
    check_page(page, "log-een-regel-per-bezoek")

    page.get_by_label(f"Alleen {MEE}").check()
    page.get_by_role("button", name="Laat zien").click()
    expect(page.locator("ol.log > li")).to_have_count(1)
    expect(page.locator("ol.log")).to_contain_text(f"{MEE} heeft je doelen bekeken (3 keer)")
    page.get_by_label("Wat").select_option(label="Mocht niet")
    page.get_by_label("Iedereen, ook jij").check()
    page.get_by_role("button", name="Laat zien").click()
    expect(page.locator("ol.log > li")).to_have_count(1)
    expect(page.locator("ol.log")).to_contain_text("Stichting Nieuwsgierig probeerde 310 keer")


def test_the_log_pages_back_in_time_to_the_oldest_record(page: Page, vault: Vault) -> None:
    key = make_key()
    partners = [
        register_backend(
            vault.runtime, vault.url, organization=f"Stichting Pagina {n:02d}", key=key
        )
        for n in range(55)
    ]
    with httpx.Client(timeout=30) as http:
        for partner in partners:  # the oldest first: Stichting Pagina 00
            with partner.fhir(http) as fhir:
                assert fhir.get("/CarePlan/demo-plan-erik").status_code == 404
    log_in(page, vault, "erik")
    page.goto(vault.url + "/log?wie=iedereen&soort=geweigerd")
    lines = page.locator("ol.log > li")
    expect(lines.filter(has_text="Stichting Pagina 54")).to_have_count(1)
    expect(lines.filter(has_text="Stichting Pagina 00")).to_have_count(0)
    page.get_by_role("link", name="Eerder").click()
    expect(lines.filter(has_text="Stichting Pagina 00")).to_have_count(1)
    expect(lines.filter(has_text="Stichting Pagina 54")).to_have_count(0)
    check_page(page, "log-eerder")
    page.get_by_role("link", name="Naar het nieuwste").click()
    expect(lines.filter(has_text="Stichting Pagina 54")).to_have_count(1)
    # Whatever the address holds, the answer is a page in plain Dutch, never an error 500.
    for query, title in (
        ("voor=gisteren", "Dat klopt niet"),
        ("wie=Organization/..%2F..", "Niet gevonden"),
        ("wie=Organization/" + "x" * 300, "Niet gevonden"),
        ("soort=alles-en-meer&wie=app%20onbekend", "Wie heeft er gekeken"),
    ):
        page.goto(f"{vault.url}/log?{query}")
        expect(page.get_by_role("heading", level=1)).to_have_text(title)
