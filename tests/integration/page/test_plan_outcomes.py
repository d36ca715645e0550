"""Mijn plan on a phone, the questions for outcome reports, and the report page itself.

Issue 14: at 320 px the inwoner reads her own words first and changes them one tap away
(also without JavaScript); she says yes or no to being counted, sets her plan's step and
gives the way of working a mark. The policy officer's page from ``vault report`` opens in
the same browser, axe-core clean.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from playwright.sync_api import Browser, Page, expect

from tests.integration.page.conftest import Vault, check_page, log_in
from tests.support import run_vault, vault_env
from vault.app.reports import load_demo_cohort
from vault.consent.access import AccessContext
from vault.fhir.repository import Repository
from vault.reports.codes import PLAN_AGREED, PLAN_PHASE


def _compartment(vault: Vault, resource_type: str, patient: str) -> list[dict[str, Any]]:
    repo = Repository(vault.runtime, AccessContext.full())
    with vault.runtime.db.read() as conn:
        query = repo.parse(resource_type, [("patient", f"Patient/{patient}")], lenient=False)
        return [json.loads(s.body or b"{}") for s in repo.search(conn, query).matches]


def test_on_a_phone_her_words_come_first_and_change_is_one_tap_away(
    browser: Browser, vault: Vault
) -> None:
    context = browser.new_context(viewport={"width": 320, "height": 800}, locale="nl-NL")
    try:
        page = context.new_page()
        log_in(page, vault, "daan")
        page.goto(vault.url + "/plan")
        words = page.locator("#doelen .own-words").first
        expect(words).to_be_visible()
        text = words.inner_text()
        assert text.strip()
        # The whole text shows: nothing is cut off in a box.
        assert words.evaluate("e => e.scrollWidth <= e.clientWidth + 1")
        expect(page.locator("#doelen textarea").first).to_be_hidden()
        # "Nieuw doel" looks like something to press: a marker before its words.
        marker = page.locator("details.add > summary").evaluate(
            "e => getComputedStyle(e, '::before').content"
        )
        assert marker not in ("none", "normal", "")
        check_page(page, "mijn-plan-telefoon")
        page.get_by_text("Verander doel 1").click()
        expect(page.get_by_label("Doel 1", exact=True)).to_be_visible()
        check_page(page, "mijn-plan-telefoon-verander")
    finally:
        context.close()


def test_changing_a_goal_works_without_javascript(browser: Browser, vault: Vault) -> None:
    context = browser.new_context(
        viewport={"width": 320, "height": 800}, locale="nl-NL", java_script_enabled=False
    )
    try:
        page = context.new_page()
        log_in(page, vault, "daan")
        page.goto(vault.url + "/plan")
        page.get_by_text("Verander doel 1").click()
        page.get_by_label("Doel 1", exact=True).fill(
            "Ik wil mijn diploma halen, ook zonder script."
        )
        page.get_by_role("button", name="Doel 1 opslaan").click()
        expect(page.locator("#doelen .own-words").first).to_have_text(
            "Ik wil mijn diploma halen, ook zonder script."
        )
    finally:
        context.close()


def test_counting_the_step_and_the_mark_are_the_inwoners_to_set(page: Page, vault: Vault) -> None:
    log_in(page, vault, "sanne")
    page.goto(vault.url + "/plan")
    # Off until she says yes.
    expect(page.get_by_label("Nee, tel mij niet mee")).to_be_checked()
    page.get_by_label("Ja, tel mij mee").check()
    page.get_by_role("button", name="Keuze opslaan").click()
    expect(page.get_by_role("status")).to_contain_text("Opgeslagen")
    expect(page.get_by_label("Ja, tel mij mee")).to_be_checked()
    consents = [
        c
        for c in _compartment(vault, "Consent", "demo-inwoner-sanne")
        if any(p.get("code") == "HRESCH" for p in c["provision"].get("purpose", []))
    ]
    assert [c["status"] for c in consents] == ["active"]

    page.get_by_label("Samen op weg").check()
    page.get_by_role("button", name="Stap opslaan").click()
    expect(page.get_by_label("Samen op weg")).to_be_checked()
    (plan,) = [
        p for p in _compartment(vault, "CarePlan", "demo-inwoner-sanne") if p["status"] == "active"
    ]
    urls = {e["url"]: e for e in plan.get("extension", [])}
    assert urls[PLAN_PHASE]["valueCoding"]["code"] == "samen-op-weg"
    assert PLAN_AGREED in urls

    page.get_by_label("Welk cijfer geef je de manier van werken? (1 tot 10)").fill("8")
    page.get_by_role("button", name="Cijfer voor de werkwijze opslaan").click()
    expect(page.locator("#werkwijze + p")).to_contain_text("8")
    check_page(page, "mijn-plan-meetellen-fase-cijfer")

    # Revocable like every grant.
    page.get_by_label("Nee, tel mij niet mee").check()
    page.get_by_role("button", name="Keuze opslaan").click()
    expect(page.get_by_label("Nee, tel mij niet mee")).to_be_checked()
    statuses = [
        c["status"]
        for c in _compartment(vault, "Consent", "demo-inwoner-sanne")
        if any(p.get("code") == "HRESCH" for p in c["provision"].get("purpose", []))
    ]
    assert statuses == ["inactive"]


def test_the_report_page_reads_well_and_hides_small_figures(
    page: Page, vault: Vault, tmp_path: Path
) -> None:
    load_demo_cohort(vault.runtime)  # what `vault demo --cohort` adds
    env = vault_env(vault.runtime.settings.database_url)
    data_dir = str(vault.runtime.settings.data_dir)
    done = run_vault(
        "report", "--data-dir", data_dir, "--period", "2025", "--out", str(tmp_path), env=env
    )
    assert done.returncode == 0, done.stderr
    html = tmp_path / "regiekluis-cijfers-2025.html"
    csv = (tmp_path / "regiekluis-cijfers-2025.csv").read_text(encoding="utf-8")
    assert "2025,alle,inwoners," in csv
    # Nothing from outside: no script, no address to fetch.
    source = html.read_text(encoding="utf-8")
    assert "<script" not in source and "http" not in source.replace("http-equiv", "")
    assert "Fictief" not in source and "Fictief" not in csv
    page.goto(html.as_uri())
    expect(page.get_by_role("heading", level=1)).to_contain_text("2025")
    expect(page.locator("svg[role=img]").first).to_be_visible()
    cells = page.locator("td").all_inner_texts()
    assert any(c == "\u2013" for c in cells), "no figure was hidden"
    assert any(c.isdigit() and int(c) >= 10 for c in cells), "no figure was shown"
    check_page(page, "rapport-2025")
