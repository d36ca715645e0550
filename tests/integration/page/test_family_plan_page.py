"""Ons gezinsplan in the real browser (issue 17 item 3, docs/family.md section 6).

The demo family (Sanne, Erik, Daan 13, Lotte 17, Mila 8) has one family plan: a Group of
the five, shared goals, the agreements of the samenwerkoverleg and a regisseur. Each member
(and a parent acting for a child) sees the family plan and, of the members' own goals it
points at, only their own: never another member's. Each page is checked with axe-core.
"""

from __future__ import annotations

import json

import httpx
import pytest
from playwright.sync_api import Page, expect

from tests.integration.page.conftest import Vault, check_page, http_log_in, log_in
from tests.support import organization_context
from vault.app.demo import MILA, SANNE, Inwoner
from vault.consent.access import AccessContext
from vault.fhir.repository import Repository
from vault.kernel.errors import FhirError

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


# -- who may see the family plan, chosen on the page (docs/family.md section 6) ------------

FAMILY_PLAN = "demo-gezinsplan"


def _partner_sees(vault: Vault, organization: str, resource: str, *, logged: bool = False) -> bool:
    """What the one access decision gives the organisation now (in process: the same
    decision its token would get; tests/integration/consent covers the tokens).
    ``logged``: the read goes into the access log, as a partner's read over HTTP does."""
    context = organization_context(f"Organization/{organization}")
    kind, _, ident = resource.partition("/")
    repo = Repository(vault.runtime, context, logged=logged)
    with vault.runtime.db.read() as conn:
        try:
            repo.read(conn, kind, ident)
        except FhirError:
            return False
    return True


def _first_goal(inwoner: Inwoner) -> str:
    return f"Goal/demo-doel-{inwoner.key}-{inwoner.wishes[0].key}"


def test_a_parent_lets_ggz_see_the_family_plan_and_stops_it(page: Page, vault: Vault) -> None:
    ggz = "GGZ Voorbeeldstad"
    assert not _partner_sees(vault, "demo-org-ggz", f"CarePlan/{FAMILY_PLAN}")
    _open_family_plan(page, vault, "sanne")
    shares = page.locator("ul.family-shares")
    expect(page.get_by_role("heading", name="Wie mag ons gezinsplan zien?")).to_be_visible()
    page.get_by_label("Laat het gezinsplan zien aan").select_option(label=ggz)
    page.get_by_role("button", name="Verder").click()
    # Read back before it is saved: the party, until when, and what it will not see.
    expect(page.locator("#voorstel")).to_contain_text(
        f"{ggz} mag het plan van jullie gezin zien tot en met"
    )
    expect(page.locator("main")).to_contain_text(
        f"{ggz} ziet niet de doelen van de anderen in je gezin. Dat kiezen zij zelf."
    )
    expect(page.locator("#nog-een-ja")).to_have_count(0)
    check_page(page, "gezinsplan-delen-klopt-dit")
    page.get_by_role("button", name="Ja, opslaan").click()
    expect(page.get_by_role("status")).to_contain_text("Je keuze is opgeslagen.")
    expect(shares).to_contain_text(f"{ggz} mag het plan van jullie gezin zien.")
    check_page(page, "gezinsplan-gedeeld")
    # GGZ now sees the family plan and Sanne's own goal in it, and nobody else's goal.
    assert _partner_sees(vault, "demo-org-ggz", f"CarePlan/{FAMILY_PLAN}")
    assert _partner_sees(vault, "demo-org-ggz", "Goal/demo-gezinsdoel-rust")
    assert _partner_sees(vault, "demo-org-ggz", _first_goal(SANNE))
    assert not _partner_sees(vault, "demo-org-ggz", _first_goal(MILA))  # she grants GGZ nothing
    # Her own plan's rule for GGZ is untouched: it was not one before and is not one now.
    page.goto(vault.url + "/")
    card = page.locator("li.card", has=page.get_by_role("heading", name=ggz, exact=True))
    expect(card.locator(".family-plan")).to_contain_text("mag ook het plan van jullie gezin zien.")
    # Stop, on the family plan's page: the next read is refused.
    page.goto(vault.url + "/gezin")
    page.get_by_role("button", name=f"Stop het gezinsplan delen met {ggz}").click()
    expect(page.get_by_role("status")).to_contain_text("Gestopt.")
    expect(page.locator("main")).not_to_contain_text(f"{ggz} mag het plan van jullie gezin zien.")
    assert not _partner_sees(vault, "demo-org-ggz", f"CarePlan/{FAMILY_PLAN}")


def test_a_child_of_13_says_no_to_one_family_plan_proposal_and_yes_to_another(
    page: Page, vault: Vault
) -> None:
    mee, corporation = "MEE Voorbeeldregio", "Woonstichting Voorbeeldstad"
    # Mama proposes, for Daan (13), that MEE and the woonstichting see the family plan.
    for name in (mee, corporation):
        _open_family_plan(page, vault, "sanne-daan")
        page.get_by_label("Laat het gezinsplan zien aan").select_option(label=name)
        page.get_by_role("button", name="Verder").click()
        expect(page.locator("#nog-een-ja")).to_contain_text("Het geldt pas als de ander ook ja")
        page.get_by_role("button", name="Ja, opslaan").click()
        expect(page.get_by_role("status")).to_contain_text("Het geldt pas als de ander ook ja")
        page.context.clear_cookies()
    # A proposal gives nothing.
    assert not _partner_sees(vault, "demo-org-woningcorporatie", f"CarePlan/{FAMILY_PLAN}")
    assert not _partner_sees(vault, "demo-org-mee", "Goal/demo-gezinsdoel-rust")

    _open_family_plan(page, vault, "daan")
    expect(page.locator("main")).to_contain_text("Er wacht een voorstel op een ja.")
    page.get_by_role("link", name="Bekijk het voorstel").click()
    waiting = page.locator("li.card", has_text="stelt dit voor")
    expect(waiting).to_have_count(2)
    check_page(page, "gezinsplan-voorstel-daan")
    no = waiting.filter(has_text=f"{corporation} mag het plan van jullie gezin zien.")
    no.get_by_role("button", name="Nee, liever niet").click()
    expect(page.get_by_role("status")).to_contain_text("Het voorstel geldt niet.")
    yes = page.locator("li.card", has_text=f"{mee} mag het plan van jullie gezin zien.")
    yes.get_by_role("button", name="Ja, dat is goed").click()
    expect(page.get_by_role("status")).to_contain_text("Je keuze is opgeslagen.")

    assert not _partner_sees(vault, "demo-org-woningcorporatie", f"CarePlan/{FAMILY_PLAN}")
    assert _partner_sees(vault, "demo-org-mee", f"CarePlan/{FAMILY_PLAN}")
    assert _partner_sees(vault, "demo-org-mee", "Goal/demo-gezinsdoel-rust")
    # His "ja" to the family plan leaves what MEE sees of his own plan as it was.
    mee_card = page.locator("li.card", has=page.get_by_role("heading", name=mee, exact=True))
    expect(mee_card).to_contain_text("mag ook het plan van jullie gezin zien.")
    expect(mee_card.locator(".sentence").first).to_contain_text("je doelen")
    # And his log says who proposed it for him.
    page.goto(vault.url + "/log")
    expect(page.locator("main")).to_contain_text("Mama (Sanne")


def test_every_member_sees_who_looked_at_the_family_plan_in_its_own_log(
    page: Page, vault: Vault, http: httpx.Client
) -> None:
    # The sociaal team reads the family plan (Erik granted it): the record is the family's,
    # in the family's own chain, and every member reads it on the family plan's log.
    team = "Sociaal Team Voorbeeldstad"
    plan = f"CarePlan/{FAMILY_PLAN}"
    assert _partner_sees(vault, "demo-org-sociaal-team", plan, logged=True)
    line = f"{team} heeft het plan van jullie gezin bekeken"
    for member in ("sanne", "lotte"):
        log_in(page, vault, member)
        page.goto(vault.url + "/log")
        expect(page.locator("main")).not_to_contain_text("heeft het plan van jullie gezin")
        page.get_by_role("link", name="Wie keek naar het plan van jullie gezin?").click()
        expect(page.get_by_role("heading", level=1)).to_have_text("Wie keek naar ons gezinsplan")
        expect(page.locator("ol.log")).to_contain_text(line)
        check_page(page, f"gezinsplan-logboek-{member}")
        page.context.clear_cookies()
    # From the family plan's page too; and a family she is not part of is not found.
    _open_family_plan(page, vault, "erik")
    page.get_by_role("link", name="Wie keek naar ons gezinsplan").click()
    expect(page.locator("ol.log")).to_contain_text(line)
    # Sanne and Lotte read this log: named as the family, never by name or as "je".
    expect(page.locator("ol.log")).to_contain_text(
        "Iemand van jullie gezin heeft het logboek van jullie gezin bekeken"
    )
    expect(page.locator("ol.log")).not_to_contain_text("je gegevens")
    http_log_in(http, "erik", vault.passwords["erik"])
    assert http.get("/log", params={"gezin": "een-ander-gezin"}).status_code == 404


def test_after_stop_nobody_can_say_ja_to_an_earlier_proposal(page: Page, vault: Vault) -> None:
    # Mama proposes, for Daan (13), that GGZ sees his goals and the family plan. Daan stops
    # everything: both proposals are rejected, so her later "ja" cannot open them.
    ggz = "GGZ Voorbeeldstad"
    log_in(page, vault, "sanne-daan")
    page.goto(vault.url + "/delen/Organization/demo-org-ggz")
    page.locator("#part-doelen").check()
    page.get_by_role("button", name="Verder").click()
    page.get_by_role("button", name="Ja, opslaan").click()
    expect(page.get_by_role("status")).to_contain_text("Het geldt pas als de ander ook ja")
    page.goto(vault.url + "/gezin")
    page.get_by_label("Laat het gezinsplan zien aan").select_option(label=ggz)
    page.get_by_role("button", name="Verder").click()
    page.get_by_role("button", name="Ja, opslaan").click()
    expect(page.locator("li.card", has_text="Jij hebt dit voorgesteld")).to_have_count(2)
    page.context.clear_cookies()

    log_in(page, vault, "daan")
    expect(page.locator("li.card", has_text="stelt dit voor")).to_have_count(2)
    page.get_by_role("button", name="Stop met alles delen").click()
    page.get_by_role("button", name="Ja, stop met alles delen").click()
    expect(page.locator("#voorstellen")).to_have_count(0)
    page.context.clear_cookies()

    log_in(page, vault, "sanne-daan")
    expect(page.locator("#voorstellen")).to_have_count(0)
    expect(page.locator("main")).not_to_contain_text("Jij hebt dit voorgesteld")
    assert not _partner_sees(vault, "demo-org-ggz", f"CarePlan/{FAMILY_PLAN}")
    assert not _partner_sees(vault, "demo-org-ggz", "Goal/demo-gezinsdoel-rust")
