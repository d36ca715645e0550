"""Ons gezinsplan in the real browser (issue 17 item 3, docs/family.md section 6).

The demo family (Sanne, Erik, Daan 13, Lotte 17, Mila 8) has one family plan: a Group of
the five, shared goals, the agreements of the samenwerkoverleg and a regisseur. Each member
(and a parent acting for a child) sees the family plan and, of the members' own goals it
points at, only their own: never another member's. Each page is checked with axe-core.
"""

from __future__ import annotations

import json

import pytest
from playwright.sync_api import Page, expect

from tests.integration.page.conftest import Vault, check_page, log_in
from vault.consent.access import AccessContext
from vault.fhir.repository import Repository

pytestmark = pytest.mark.slow

SHARED = (
    "We willen minder ruzie en meer rust in huis.",
    "We willen samen grip op ons geld.",
    "We willen een huis waar iedereen een eigen plek heeft.",
)
OWN_FIRST_WISH = {
    "sanne": "Ik wil mijn schulden op een rij hebben.",
    "erik": "Ik wil weer werk, het liefst buiten.",
    "daan": "Ik wil weer elke dag naar school.",
    "lotte": "Ik wil mijn diploma halen.",
    "mila": "Ik wil leren zwemmen.",
}


def _open_family_plan(page: Page, vault: Vault, username: str) -> None:
    log_in(page, vault, username)
    page.goto(vault.url + "/plan")
    page.get_by_role("link", name="Bekijk het plan van je gezin").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Ons gezinsplan")


def _sees_only_own_goal(page: Page, mine: str) -> None:
    main = page.locator("main")
    own = page.locator("ul.own-goals")
    expect(own).to_contain_text(OWN_FIRST_WISH[mine])
    for other, text in OWN_FIRST_WISH.items():
        if other != mine:
            expect(main).not_to_contain_text(text)


def test_a_parent_sees_the_family_plan_and_only_her_own_goal_in_it(
    page: Page, vault: Vault
) -> None:
    _open_family_plan(page, vault, "sanne")
    expect(page.get_by_role("heading", level=2)).to_have_text("Gezin Bakker-Visser")
    expect(page.locator("main")).to_contain_text("Jij en 4 andere gezinsleden horen erbij.")
    for text in SHARED:
        expect(page.locator("ul.shared-goals")).to_contain_text(text)
    expect(page.locator(".regisseur")).to_contain_text("Anouk")
    expect(page.locator(".regisseur")).to_contain_text("is jullie regisseur.")
    sunday = page.locator("ul.agreements li", has_text="Op zondag eten we samen")
    expect(sunday).to_contain_text("Wie: Jij")
    _sees_only_own_goal(page, "sanne")
    check_page(page, "gezinsplan-sanne")
    # The plan is a page like the others: keyboard only, back to Mijn plan.
    page.get_by_role("link", name="Terug naar mijn plan").focus()
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", level=1)).to_have_text("Mijn plan")


def test_a_child_sees_the_family_plan_and_her_own_goal_but_not_her_parents(
    page: Page, vault: Vault
) -> None:
    _open_family_plan(page, vault, "lotte")
    for text in SHARED:
        expect(page.locator("ul.shared-goals")).to_contain_text(text)
    _sees_only_own_goal(page, "lotte")
    check_page(page, "gezinsplan-lotte")


def test_a_parent_acting_for_a_young_child_sees_the_childs_part(page: Page, vault: Vault) -> None:
    _open_family_plan(page, vault, "erik-mila")
    for text in SHARED:
        expect(page.locator("ul.shared-goals")).to_contain_text(text)
    _sees_only_own_goal(page, "mila")
    check_page(page, "gezinsplan-namens-mila")


def _consent_status(vault: Vault, consent_id: str) -> str:
    repo = Repository(vault.runtime, AccessContext.full())
    with vault.runtime.db.read() as conn:
        return str(json.loads(repo.read(conn, "Consent", consent_id).body or b"{}")["status"])


def test_changing_what_a_party_sees_of_her_plan_leaves_her_family_plan_grant(
    page: Page, vault: Vault
) -> None:
    # Sanne lets the sociaal team see the family plan (its own Consent). Changing what the
    # team sees of her own plan on "Wie mag wat zien" must not take that away.
    family_rule = "demo-gezinsplan-sanne-sociaal-team"
    assert _consent_status(vault, family_rule) == "active"
    log_in(page, vault, "sanne")
    page.goto(vault.url + "/delen/Organization/demo-org-sociaal-team")
    page.locator("#part-doelen").check()
    page.get_by_role("button", name="Verder").click()
    page.get_by_role("button", name="Ja, opslaan").click()
    expect(page.get_by_role("status")).to_be_visible()
    assert _consent_status(vault, family_rule) == "active"
    # "Wie mag wat zien" tells the family plan apart from the parts of her own plan.
    page.goto(vault.url + "/")
    team = "Sociaal Team Voorbeeldstad"
    card = page.locator("li.card", has=page.get_by_role("heading", name=team, exact=True))
    expect(card.locator(".family-plan")).to_contain_text("mag ook het plan van jullie gezin zien.")
    # Stopping the party ends the family plan rule too: stop means stop.
    card.get_by_role("button", name=f"Stop met delen met {team}").click()
    page.get_by_role("button", name=f"Ja, stop met delen met {team}").click()
    expect(page.get_by_role("status")).to_contain_text("opgeslagen")
    assert _consent_status(vault, family_rule) == "inactive"
