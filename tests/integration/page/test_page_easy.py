"""Mijn plan, eenvoudig (issue 17 item 4), in Debian's Chromium: from the login to the
eenvoudig view and back, axe-core at 320 and 1280 px, without JavaScript, "Lees voor", the
page's Content-Security-Policy, and the same access as the normal view.

Chromium headless has no voices: ``speechSynthesis.speak`` would do nothing anyone can
check. So the "Lees voor" test replaces ``window.speechSynthesis`` with a recorder, in the
browser only, through an init script (injected by the DevTools protocol before the page's
own script runs; the page and its script are the real ones, served by the real vault). The
recorder proves what the page asks the browser to say, not how a voice sounds.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, expect

from tests.integration.page.conftest import Vault, check_page, log_in
from tests.integration.page.test_page_a11y import big_text, duplicate_names, fits, focused

pytestmark = pytest.mark.slow

# Records what the page asks the browser to say; also every CSP violation of the page.
RECORDER = """(() => {
  window.__csp = [];
  document.addEventListener('securitypolicyviolation',
    e => window.__csp.push(e.violatedDirective + ' ' + e.blockedURI));
  window.__utterances = [];
  window.__calls = [];
  const synth = {
    speaking: false, paused: false, pending: false, onvoiceschanged: null,
    getVoices() { return []; },
    speak(u) { window.__utterances.push(u); window.__calls.push('speak'); this.speaking = true; },
    pause() { window.__calls.push('pause'); this.paused = true; },
    resume() { window.__calls.push('resume'); this.paused = false; },
    cancel() { window.__calls.push('cancel'); this.speaking = false; },
    addEventListener() {}, removeEventListener() {},
  };
  Object.defineProperty(window, 'speechSynthesis', {value: synth, configurable: true});
})();"""
# Page titles end in an en dash and "Regiekluis".
NORMAL = "Mijn plan \N{EN DASH} Regiekluis"
EASY = "Mijn plan, makkelijk lezen \N{EN DASH} Regiekluis"
EASY_EN = "My plan, easy reading \N{EN DASH} Regiekluis"
SPOKEN = "() => window.__utterances.map(u => ({text: u.text, lang: u.lang}))"
# Sanne's plan in the demo: her own words, shown as she wrote them in both views.
SANNE_DOMAINS = {
    "Ik wil mijn schulden op een rij hebben.": "financien",
    "Ik wil in ons huis kunnen blijven wonen.": "wonen",
    "Ik wil minder ruzie met Daan over school.": "opvoeding",
    "Ik wil beter slapen en wat meer rust.": "gezondheid",
}
SANNE_GOALS = list(SANNE_DOMAINS)


@pytest.fixture
def watched(browser: Browser) -> Iterator[tuple[Page, list[str]]]:
    """A page with the speech recorder, and the console's errors (CSP reports among them)."""
    context = browser.new_context(viewport={"width": 1280, "height": 900}, locale="nl-NL")
    context.add_init_script(RECORDER)
    errors: list[str] = []
    page = context.new_page()
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    try:
        yield page, errors
    finally:
        context.close()


def easy_texts(page: Page, list_id: str) -> list[str]:
    return page.locator(f"#{list_id} .own-words").all_inner_texts()


def test_easy_view_from_login_to_plan_and_back_read_aloud_under_the_csp(
    watched: tuple[Page, list[str]], vault: Vault
) -> None:
    page, errors = watched
    log_in(page, vault, "sanne")
    page.get_by_role("navigation", name="Hoofdmenu").get_by_role("link", name="Mijn plan").click()
    expect(page).to_have_title(NORMAL)
    normal_lines = page.locator("ul.cards > li.card").count()  # wat kan ik, wat heb ik nodig
    normal_goals = page.locator("#doelen .own-words").all_inner_texts()
    assert sorted(normal_goals) == sorted(SANNE_GOALS)
    # The switch is a plain link, reached by keyboard: Tab from the top of the page.
    page.locator("body").focus()
    for _ in range(12):
        page.keyboard.press("Tab")
        if focused(page) == "weergave":
            break
    assert focused(page) == "weergave"
    with page.expect_navigation():
        page.keyboard.press("Enter")
    expect(page).to_have_title(EASY)
    assert page.url.endswith("/plan?weergave=eenvoudig")
    response = page.request.get(vault.url + "/plan")
    csp = response.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp and "default-src 'none'" in csp

    # One item per goal, her own words, with the pictogram and word of its life domain.
    assert easy_texts(page, "doelen") == normal_goals  # the same goals, in her order
    pictograms = page.locator("#doelen svg.picto").evaluate_all(
        "l => l.map(s => [s.dataset.domain, s.getAttribute('aria-hidden')])"
    )
    labels = page.locator("#doelen .easy-label").all_inner_texts()
    words = {"financien": "Geld", "wonen": "Je huis", "opvoeding": "Je kinderen"}
    words["gezondheid"] = "Je gezondheid"
    assert [[SANNE_DOMAINS[g], "true"] for g in normal_goals] == pictograms
    assert [words[SANNE_DOMAINS[g]] for g in normal_goals] == labels
    # What I do and what others do: the same lines as the normal view, none lost or added.
    mine = easy_texts(page, "ik-doe-lijst")
    others = page.locator("#anderen-lijst li").all_inner_texts()
    assert mine == [
        "Ik doe alle post in één map en open die elke vrijdag.",
        "Ik betaal de huur elke maand op de eerste dag.",
    ]
    mirjam = (
        "Mirjam de Groot doet dit:\nMirjam helpt mij elke vrijdag met de post en de rekeningen."
    )
    assert mirjam in [re.sub(r"\n+", "\n", o.strip()) for o in others], others
    assert len(mine) + len(others) == normal_lines == 7
    expect(page.locator("#cijfers p:not(.easy-label)")).to_have_text(
        [
            "Je cijfer ging van 4 naar 5.",
            "Je cijfer ging van 4 naar 6.",
            "Je cijfer bleef een 4.",
            "Je cijfer ging van 5 naar 6.",
        ]
    )

    # "Lees voor": shown because the script runs and the browser (the recorder) can speak.
    start = page.get_by_role("button", name="Lees voor")
    expect(start).to_be_visible()
    start.click()
    spoken: list[dict[str, Any]] = page.evaluate(SPOKEN)
    assert {s["lang"] for s in spoken} == {"nl-NL"}
    text = " ".join(s["text"] for s in spoken)
    assert text.startswith("Mijn plan. Hier staat je plan in korte zinnen.")
    assert f"Geld. {SANNE_GOALS[0]}" in text
    assert all(goal in text for goal in SANNE_GOALS)
    assert "Je gezondheid. Je cijfer bleef een 4." in text
    assert "Lees voor" not in text and "Naar het hele plan" not in text  # the controls
    # Pause, go on, stop: each a button that takes the focus, each a call to the browser.
    assert focused(page) == "lees-pauze"
    page.keyboard.press("Enter")
    assert focused(page) == "lees-verder"
    page.keyboard.press("Enter")
    assert focused(page) == "lees-pauze"
    page.get_by_role("button", name="Stop met voorlezen").click()
    assert page.evaluate("() => window.__calls.filter(c => c !== 'speak')") == [
        "cancel",
        "pause",
        "resume",
        "cancel",
    ]
    expect(start).to_be_visible()
    assert focused(page) == "lees-start"
    # When the voice has said every piece, the buttons go back to "Lees voor".
    start.click()
    expect(page.get_by_role("button", name="Pauze")).to_be_visible()
    page.evaluate("() => window.__utterances.forEach(u => u.onend && u.onend())")
    expect(start).to_be_visible()
    expect(page.get_by_role("button", name="Pauze")).to_be_hidden()

    check_page(page, "plan-eenvoudig")
    page.set_viewport_size({"width": 320, "height": 640})
    check_page(page, "plan-eenvoudig-320")
    expect(page.get_by_role("link", name="Naar het hele plan")).to_be_in_viewport()
    big_text(page)
    fits(page)
    assert duplicate_names(page) == []

    # The choice is remembered: the menu's "Mijn plan" opens the eenvoudig view again, and
    # so does the language switch, in English, with an English voice.
    page.set_viewport_size({"width": 1280, "height": 900})
    page.get_by_role("navigation", name="Hoofdmenu").get_by_role("link", name="Mijn plan").click()
    expect(page).to_have_title(EASY)
    page.get_by_role("link", name="English").click()
    expect(page).to_have_title(EASY_EN)
    expect(page.locator("#cijfers p:not(.easy-label)").first).to_have_text(
        "Your score went from 4 to 5."
    )
    page.get_by_role("button", name="Read aloud").click()
    assert {s["lang"] for s in page.evaluate(SPOKEN)} == {"en-GB"}
    page.get_by_role("link", name="Nederlands").click()

    # And back: the whole plan, with its forms, and it stays the whole plan.
    page.get_by_role("link", name="Naar het hele plan").click()
    expect(page).to_have_title(NORMAL)
    expect(page.get_by_role("link", name="Makkelijk lezen")).to_be_visible()
    page.goto(vault.url + "/plan")
    expect(page).to_have_title(NORMAL)
    assert page.locator("script").count() == 0

    assert page.evaluate("() => window.__csp") == []
    assert not [e for e in errors if "Content Security Policy" in e], errors
    # The listener does hear a violation: an inline script is refused on the eenvoudig view.
    page.goto(vault.url + "/plan?weergave=eenvoudig")
    page.evaluate(
        "() => { const s = document.createElement('script');"
        " s.textContent = 'window.__ran = 1'; document.body.append(s); }"
    )
    expect(page.locator("#lees-start")).to_be_visible()
    assert page.evaluate("() => window.__ran") is None
    assert page.evaluate("() => window.__csp.length") >= 1


def test_easy_view_works_without_javascript_at_320_px(browser: Browser, vault: Vault) -> None:
    context = browser.new_context(
        viewport={"width": 320, "height": 640}, locale="nl-NL", java_script_enabled=False
    )
    try:
        page = context.new_page()
        log_in(page, vault, "sanne")
        page.goto(vault.url + "/plan")
        switch = page.get_by_role("link", name="Makkelijk lezen")
        expect(switch).to_be_in_viewport()  # at 320 px, on the first screen
        switch.click()
        expect(page).to_have_title(EASY)
        # No script ran: no "Lees voor" button, and the plan is all there.
        expect(page.locator("#lees-voor")).to_be_hidden()
        expect(page.get_by_role("button", name="Lees voor")).to_have_count(0)
        expect(page.locator("#doelen .own-words")).to_have_count(4)
        expect(page.locator("#cijfers li")).to_have_count(4)
        # The folded menu (no script either) keeps the choice; the link goes back.
        page.locator("details.menu-fold > summary").click()
        page.locator("details.menu-fold").get_by_role("link", name="Mijn plan").click()
        expect(page).to_have_title(EASY)
        back = page.get_by_role("link", name="Naar het hele plan")
        expect(back).to_be_in_viewport()
        back.click()
        expect(page).to_have_title(NORMAL)
        expect(page.get_by_role("button", name="Cijfer opslaan")).to_be_attached()
    finally:
        context.close()


def invite(page: Page, vault: Vault, name: str, username: str, other: BrowserContext) -> Page:
    """Sanne invites someone of her network, who makes an account: their own page."""
    page.goto(vault.url + "/netwerk")
    page.get_by_label("Naam").fill(name)
    page.get_by_label("Wie is het voor jou?").fill("broer")
    page.get_by_role("button", name="Maak een uitnodiging").click()
    link = page.get_by_label("Uitnodiging").input_value()
    them = other.new_page()
    them.goto(link)
    them.get_by_label("Kies een gebruikersnaam").fill(username)
    them.get_by_label("Kies een wachtwoord").fill(f"{username}-wachtwoord")
    them.get_by_label("Typ het wachtwoord nog een keer").fill(f"{username}-wachtwoord")
    them.get_by_role("button", name="Account maken").click()
    expect(them.get_by_role("heading", level=1)).to_have_text("Wat je mag zien")
    return them


def test_the_easy_view_changes_words_not_access(browser: Browser, page: Page, vault: Vault) -> None:
    """Someone of her network sees her plan in neither view; as her mentor, the same plan in
    both, in the same order as the normal view."""
    log_in(page, vault, "sanne")
    page.goto(vault.url + "/plan")
    goals = page.locator("#doelen .own-words").all_inner_texts()
    lines = page.locator("ul.cards > li.card").count()
    assert len(goals) == 4 and lines == 7

    other = browser.new_context(viewport={"width": 1280, "height": 900}, locale="nl-NL")
    try:
        wim = invite(page, vault, "Wim Jansen", "wim-broer", other)
        for path in ("/plan", "/plan?weergave=eenvoudig"):
            wim.goto(vault.url + path)
            expect(wim.get_by_role("heading", level=1)).to_have_text("Dat mag niet")
            expect(wim.locator("#doelen")).to_have_count(0)
            expect(wim.locator("script")).to_have_count(0)

        page.goto(vault.url + "/netwerk")
        card = page.locator("li.card", has_text="Wim Jansen")
        card.get_by_label("Mag Wim Jansen namens jou kiezen wie wat ziet?").select_option(
            label="Ja, als mentor"
        )
        card.get_by_role("button", name="Opslaan").click()
        expect(page.get_by_role("status")).to_contain_text("Opgeslagen")

        wim.goto(vault.url + "/plan?weergave=eenvoudig")
        expect(wim.locator("header")).to_contain_text("namens Sanne Bakker")
        expect(wim).to_have_title(EASY)
        assert easy_texts(wim, "doelen") == goals
        shown = wim.locator("#ik-doe-lijst li, #anderen-lijst li").count()
        assert shown == lines
        check_page(wim, "plan-eenvoudig-mentor")
        wim.get_by_role("link", name="Naar het hele plan").click()
        assert wim.locator("#doelen .own-words").all_inner_texts() == goals
    finally:
        other.close()
