"""Every phrase of the consent page has English words, so the switch leaves no Dutch behind."""

from __future__ import annotations

import ast
from pathlib import Path

from jinja2 import Environment, nodes

from vault.page import catalogue as page_catalogue
from vault.page.catalogue import ENGLISH, translator
from vault.page.data import DOMAINS, LEGAL_BASIS_WORDS, PRIORITIES

CONSENT = Path(page_catalogue.__file__).parent


def _template_phrases() -> set[str]:
    env = Environment(autoescape=True)
    found = set()
    for template in (CONSENT / "templates").glob("*.html"):
        tree = env.parse(template.read_text(encoding="utf-8"))
        for call in tree.find_all(nodes.Call):
            named = isinstance(call.node, nodes.Name) and call.node.name == "_"
            if named and call.args and isinstance(call.args[0], nodes.Const):
                found.add(call.args[0].value)
    return found


def _refusals() -> set[str]:
    """The constant titles and messages of Refused(...) and error=... in the page's code."""
    found = set()
    for module in ("router.py",):
        tree = ast.parse((CONSENT / module).read_text(encoding="utf-8"))
        for call in ast.walk(tree):
            if not isinstance(call, ast.Call):
                continue
            name = getattr(call.func, "id", "")
            args = call.args[1:] if name == "Refused" else []
            args += [k.value for k in call.keywords if k.arg == "error"]
            found |= {a.value for a in args if isinstance(a, ast.Constant) and a.value}
    return found


def test_every_phrase_of_the_templates_and_refusals_has_english_words() -> None:
    phrases = _template_phrases() | _refusals()
    phrases |= set(DOMAINS.values()) | set(PRIORITIES.values()) | set(LEGAL_BASIS_WORDS.values())
    assert len(phrases) > 100
    missing = sorted(p for p in phrases if isinstance(p, str) and p not in ENGLISH)
    assert not missing, "\n".join(missing)


def test_fields_are_filled_in_after_the_lookup() -> None:
    english = translator("en")
    assert english("Kies wat {name} mag zien", name="MEE") == "Choose what MEE may see"
    assert translator("nl")("Kies wat {name} mag zien", name="MEE") == "Kies wat MEE mag zien"
    assert english("Een zin die er niet in staat") == "Een zin die er niet in staat"
    # A name with braces is data, not a template.
    assert english("Alleen {name}", name="{x}") == "Only {x}"
