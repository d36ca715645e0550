"""A reader's browser for the doc-runner tests: ``BROWSER`` for Python's ``webbrowser``.

``vault-adapter import-plan`` opens the vault's approval page with ``webbrowser.open``; with
``BROWSER="python -m tests.support.chromium_login %s"`` this opens it in Debian's Chromium
(Playwright), logs in as the account in the JSON file ``$DOC_LOGIN_FILE`` and says
"Ja, dat mag". Exits 0 once the app's own page says it worked.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from playwright.sync_api import expect, sync_playwright

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run"]


def main(url: str) -> int:
    login = json.loads(Path(os.environ["DOC_LOGIN_FILE"]).read_text(encoding="utf-8"))
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        try:
            page = browser.new_context(locale="nl-NL").new_page()
            page.goto(url)
            page.get_by_label("Je gebruikersnaam").fill(login["username"])
            page.get_by_label("Je wachtwoord").fill(login["password"])
            page.get_by_role("button", name="Ja, dat mag").click()
            expect(page.locator("p")).to_have_text("Gelukt. Je kunt dit venster sluiten.")
        finally:
            browser.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
