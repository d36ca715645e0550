"""The demo family in the real browser: who decides about each child's plan, by age, and
what both sides read about it (issue 17, docs/family.md).

`vault demo` loads Mila (8), Daan (13) and Lotte (17) with their parents Sanne and Erik, who
both have gezag; each parent has an account per child. Each page is checked with axe-core.
"""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect

from tests.integration.page.conftest import Vault, check_page, log_in

pytestmark = pytest.mark.slow


def test_daan_13_reads_when_he_decides_alone_and_his_mother_proposes(
    page: Page, vault: Vault
) -> None:
    log_in(page, vault, "daan")
    notice = page.locator("#leeftijd")
    expect(notice).to_contain_text("Jij en je ouder met gezag beslissen samen")
    expect(page.locator("#vanaf-16")).to_contain_text(
        "Vanaf je 16e verjaardag beslis jij alleen wie je plan mag zien. Dat is op 21 maart 2029."
    )
    check_page(page, "gezin-daan-13")
    page.context.clear_cookies()

    log_in(page, vault, "sanne-daan")
    expect(page.locator("#leeftijd")).to_contain_text("Daan en jij beslissen samen")
    expect(page.locator("#vanaf-16")).to_contain_text(
        "Vanaf de 16e verjaardag van Daan beslist Daan alleen. Dat is op 21 maart 2029."
    )
    check_page(page, "gezin-ouder-van-daan")
    # Sharing with the woningcorporatie is a proposal: it waits for Daan's "ja".
    page.goto(vault.url + "/delen/Organization/demo-org-woningcorporatie")
    page.locator("#part-doelen").check()
    page.get_by_role("button", name="Verder").click()
    expect(page.locator("#nog-een-ja")).to_contain_text("Het geldt pas als de ander ook ja zegt.")
    page.get_by_role("button", name="Ja, opslaan").click()
    expect(page.get_by_role("status")).to_contain_text("Het geldt pas als de ander ook ja zegt.")
    expect(page.locator("#voorstellen")).to_have_text("Wacht op een ja")
    check_page(page, "gezin-voorstel-wacht")
    page.context.clear_cookies()

    # Daan says no: nothing is shared with the woningcorporatie.
    log_in(page, vault, "daan")
    card = page.locator("li.card", has_text="stelt dit voor")
    expect(card).to_have_count(1)
    card.get_by_role("button", name="Nee, liever niet").click()
    expect(page.get_by_role("status")).to_contain_text("Het voorstel geldt niet.")
    expect(page.locator("li.card", has_text="stelt dit voor")).to_have_count(0)


def test_lotte_17_decides_alone_and_her_father_sees_only_what_she_shares(
    page: Page, vault: Vault
) -> None:
    log_in(page, vault, "lotte")
    expect(page.locator("#vanaf-16")).to_contain_text(
        "Vanaf je 16e verjaardag beslis jij alleen wie je plan mag zien."
    )
    check_page(page, "gezin-lotte-17")
    page.context.clear_cookies()

    # Erik has gezag, but Lotte is 17: he is someone of her network, and she shares
    # nothing with him (she shares her plan with her mother only).
    log_in(page, vault, "erik-lotte")
    expect(page.get_by_role("heading", level=1)).to_have_text("Wat je mag zien")
    expect(page.locator("#vanaf-16")).to_contain_text(
        "Je kind is 16 of ouder en beslist nu alleen wie het plan mag zien."
    )
    expect(page.locator("#niets")).to_be_visible()
    check_page(page, "gezin-vader-van-lotte")
    page.goto(vault.url + "/plan")
    expect(page.locator("main")).not_to_contain_text("Ik wil mijn diploma halen.")
    page.context.clear_cookies()

    log_in(page, vault, "sanne-lotte")
    expect(page.locator("main")).to_contain_text("Ik wil mijn diploma halen.")


def test_mila_8_is_shared_by_a_parent_until_her_12th_birthday(page: Page, vault: Vault) -> None:
    log_in(page, vault, "erik-mila")
    expect(page.locator("#leeftijd")).to_contain_text("Mila is nog geen 12.")
    expect(page.locator("#leeftijd")).to_contain_text(
        "Vanaf de 12e verjaardag van Mila beslist Mila mee. Dat is op 15 april 2030."
    )
    check_page(page, "gezin-ouder-van-mila")
    # Under 12 one parent with gezag decides: Erik shares Mila's goals at once.
    page.goto(vault.url + "/delen/Organization/demo-org-woningcorporatie")
    page.locator("#part-doelen").check()
    page.get_by_role("button", name="Verder").click()
    page.get_by_role("button", name="Ja, opslaan").click()
    expect(page.get_by_role("status")).to_be_visible()
    page.context.clear_cookies()
    log_in(page, vault, "mila")
    expect(page.locator("#leeftijd")).to_contain_text(
        "Je bent nog geen 12. Je ouders met gezag beslissen wie je plan mag zien."
    )
    # Her log names her father as she would, with the words in Dutch order (issue 17 item 3).
    page.goto(vault.url + "/log")
    expect(page.locator("ol.log")).to_contain_text(
        "Papa (Erik Visser) heeft namens jou veranderd wie wat mag zien"
    )
    check_page(page, "gezin-mila-logboek")
