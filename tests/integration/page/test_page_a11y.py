"""The consent page for a keyboard user, a screen-reader user and a reader at 200 % text
(issue 18): Debian's Chromium at 320 px with the root font size doubled (text-only zoom,
not page zoom), keys pressed one by one, names read from the accessibility tree.

Few page loads, many checks per load: the whole module starts one vault.
"""

from __future__ import annotations

import re
from collections import Counter

import httpx
import pytest
from playwright.sync_api import Page, expect

from tests.integration.page.conftest import Vault, check_page, log_in

pytestmark = pytest.mark.slow

SMALL = {"width": 320, "height": 640}
# Controls a reader tells apart by name alone (Chromium's role names).
NAMED_ROLES = {
    "button",
    "link",
    "textbox",
    "combobox",
    "checkbox",
    "radio",
    "spinbutton",
    "Date",
    "DisclosureTriangle",
}
# Every word of a heading or button whose letters land on more than one line.
BROKEN_WORDS = """() => {
  const broken = [];
  for (const el of document.querySelectorAll('h1, h2, h3, button, .button, summary')) {
    if (!el.getClientRects().length) continue;
    const walker = document.createTreeWalker(el, NodeFilter.SHOW_TEXT);
    for (let node = walker.nextNode(); node; node = walker.nextNode()) {
      for (const m of node.data.matchAll(/\\S+/g)) {
        const range = document.createRange();
        range.setStart(node, m.index);
        range.setEnd(node, m.index + m[0].length);
        const tops = new Set([...range.getClientRects()].map(r => Math.round(r.top)));
        if (tops.size > 1) broken.push(m[0]);
      }
    }
  }
  return broken;
}"""


# Drop-downs whose longest choice is wider than the box shows (issue 18: "Heel be…").
CUT_CHOICES = """() => {
  const ctx = document.createElement('canvas').getContext('2d');
  const cut = [];
  for (const select of document.querySelectorAll('select')) {
    if (!select.getClientRects().length) continue;
    const style = getComputedStyle(select);
    ctx.font = `${style.fontWeight} ${style.fontSize} ${style.fontFamily}`;
    const room = select.clientWidth - parseFloat(style.paddingLeft)
      - parseFloat(style.paddingRight) - 20;  // the arrow
    for (const option of select.options) {
      if (ctx.measureText(option.text).width > room) cut.push(option.text);
    }
  }
  return cut;
}"""


def big_text(page: Page) -> None:
    """320 px wide, and the root font size doubled, as the browser's text-only zoom does."""
    page.set_viewport_size(SMALL)
    page.evaluate("() => { document.documentElement.style.fontSize = '200%' }")


def fits(page: Page) -> None:
    """No horizontal scroll, no word broken across lines in a heading or button, no
    drop-down choice cut off."""
    width = page.evaluate("() => document.documentElement.scrollWidth")
    assert width <= SMALL["width"], f"{page.url}: {width} px wide at 320 px"
    assert page.evaluate(BROKEN_WORDS) == [], page.url
    assert page.evaluate(CUT_CHOICES) == [], page.url


def duplicate_names(page: Page) -> list[str]:
    """Controls that share one accessible name, read from Chromium's accessibility tree,
    with every fold-out opened as a reader would."""
    page.evaluate("() => document.querySelectorAll('details').forEach(d => { d.open = true })")
    session = page.context.new_cdp_session(page)
    try:
        tree = session.send("Accessibility.getFullAXTree")
    finally:
        session.detach()
    names = Counter(
        (node["role"]["value"], node.get("name", {}).get("value", ""))
        for node in tree["nodes"]
        if not node.get("ignored") and node.get("role", {}).get("value") in NAMED_ROLES
    )
    return sorted(f"{role} {name!r} x{n}" for (role, name), n in names.items() if n > 1)


def focused(page: Page) -> str:
    """The focused element: its id, else its tag and text."""
    return str(
        page.evaluate(
            "() => { const e = document.activeElement;"
            " return e.id || (e.tagName + ' ' + e.textContent.trim()); }"
        )
    )


def tabs_until(page: Page, element_id: str, *, limit: int) -> int:
    """Tab presses from where focus is until the element with this id has focus."""
    for presses in range(1, limit + 1):
        page.keyboard.press("Tab")
        if focused(page) == element_id:
            return presses
    raise AssertionError(f"{element_id} not reached in {limit} Tab presses")


def header_height(page: Page) -> float:
    return float(page.evaluate("() => document.querySelector('h1').getBoundingClientRect().top"))


def test_share_by_keyboard_with_a_dutch_date_and_focus_on_every_answer(
    page: Page, vault: Vault
) -> None:
    log_in(page, vault, "sanne")
    big_text(page)
    # The h1 starts on the first screen, even at 200 % text (it was 970 px down).
    assert header_height(page) < SMALL["height"] / 2
    fits(page)
    assert duplicate_names(page) == []

    page.goto(vault.url + "/delen/Organization/demo-org-woningcorporatie")
    big_text(page)
    fits(page)
    assert duplicate_names(page) == []
    seen = page.locator("input[name=part]:checked").evaluate_all("l => l.map(e => e.value)")
    # A wrong date: the page says so at the field, keeps every tick, and focus goes there.
    page.get_by_label("Je plan veranderen").check()
    date = page.get_by_label("Tot en met welke dag?")
    date.fill("")
    date.press_sequentially("31-13-2026")
    date.press("Enter")
    expect(page).to_have_title(re.compile(r"^Fout: "))
    expect(page.locator("#until-error")).to_be_focused()  # autofocus: after load, so wait
    assert date.get_attribute("aria-invalid") == "true"
    assert "until-error" in (date.get_attribute("aria-describedby") or "").split()
    expect(page.locator("#until-error")).to_contain_text("31-12-2026")
    assert page.locator("input[name=part]:checked").evaluate_all("l => l.map(e => e.value)") == seen
    expect(page.get_by_label("Je plan veranderen")).to_be_checked()
    expect(page.locator("header nav[aria-label=Hoofdmenu]")).to_have_count(2)  # wide, folded
    expect(page.get_by_text("Ingelogd als").first).to_be_attached()
    check_page(page, "datum-klopt-niet")
    # A Dutch date, typed as people type it, is read as the day it says.
    date.fill("")
    date.press_sequentially("31122026")
    date.press("Enter")
    expect(page.locator("#voorstel")).to_contain_text("31 december 2026")
    page.get_by_role("button", name=re.compile("^Ja, ")).press("Enter")
    expect(page).to_have_title(re.compile(r"^Je keuze is opgeslagen"))
    expect(page.locator("#melding")).to_be_focused()

    # An address that does not exist: a Dutch page, with the menu, to a browser.
    page.goto(vault.url + "/bestaat-niet")
    expect(page.get_by_role("heading", level=1)).to_have_text("Deze pagina bestaat niet")
    expect(page.locator("header nav[aria-label=Hoofdmenu]")).to_have_count(2)  # wide, folded
    check_page(page, "bestaat-niet")
    fhir = httpx.get(vault.url + "/bestaat-niet", headers={"accept": "application/fhir+json"})
    assert fhir.status_code == 404
    assert fhir.json()["resourceType"] == "OperationOutcome"
    api = httpx.get(vault.url + "/fhir/Bestaat-niet", headers={"accept": "text/html"})
    assert api.json()["resourceType"] == "OperationOutcome"  # the API never answers in HTML


def test_plan_by_keyboard_keeps_focus_on_the_moved_goal(page: Page, vault: Vault) -> None:
    log_in(page, vault, "sanne")
    page.goto(vault.url + "/plan")
    big_text(page)
    fits(page)
    assert duplicate_names(page) == []
    # The chart's last day has its year and stays inside the picture (was "10-1", cut off).
    last_day = page.locator("svg.chart text.axis").last
    expect(last_day).to_have_text(re.compile(r"^\d{1,2}-\d{1,2}-20\d\d$"))
    box = last_day.evaluate(
        "e => [e.getBBox().x + e.getBBox().width, e.ownerSVGElement.viewBox.baseVal.width]"
    )
    assert box[0] <= box[1], box
    # In-page links: from the top of the page to "wat ga jij zelf doen" in few presses
    # (25 before them, at 320 px; the issue counted 43 to 47 with the menu open).
    page.reload()
    big_text(page)
    page.locator("body").focus()
    presses = first = tabs_until(page, "naar-kan", limit=12)
    page.keyboard.press("Enter")
    assert focused(page) == "kan"
    presses += tabs_until(page, "new-act", limit=30)
    assert presses <= 12, (first, presses)
    # Move goal 4 up twice by keyboard: focus stays on the goal that moved.
    page.get_by_role("button", name="Doel 4 omhoog").focus()
    with page.expect_navigation():
        page.keyboard.press("Enter")
    expect(page).to_have_title(re.compile(r"^Doel staat nu op plek 3"))
    expect(page.get_by_role("button", name="Doel 3 omhoog", exact=True)).to_be_focused()
    with page.expect_navigation():
        page.keyboard.press("Enter")
    expect(page.get_by_role("button", name="Doel 2 omhoog", exact=True)).to_be_focused()

    page.goto(vault.url + "/netwerk")
    big_text(page)
    fits(page)
    assert duplicate_names(page) == []
    page.goto(vault.url + "/log")
    big_text(page)
    fits(page)
    assert duplicate_names(page) == []
