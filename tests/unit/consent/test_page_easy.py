"""Mijn plan, eenvoudig (issue 17 item 4): words easier than B1, and what the view shows
of a plan, item by item."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from jinja2 import Environment, nodes

from tests.unit.consent.test_page_plain_words import plain_problems
from vault.fhir.codesystems import LEVENSDOMEIN, LEVENSDOMEINEN
from vault.page import easy
from vault.page.catalogue import ENGLISH
from vault.page.plan_data import Plan

TEMPLATES = Path(easy.__file__).parent / "templates"
# Easier than B1 (the rest of the page: 15 words): one idea per sentence, short words.
MAX_WORDS = 8
MAX_LETTERS = 13  # "belangrijkste"; compounds like "huurachterstand" are out
_SENTENCE_END = re.compile(r"(?<=[.?!:])\s+")


def easy_problems(phrase: str) -> list[str]:
    """What makes a Dutch phrase harder than the eenvoudig view allows."""
    problems = plain_problems(phrase)
    for sentence in _SENTENCE_END.split(re.sub(r"\{\w+\}", "X", phrase)):
        words = re.findall(r"[^\W\d_]+", sentence)
        if len(words) > MAX_WORDS:
            problems.append(f"{len(words)} words: {sentence}")
        problems += [f"long word {w!r}" for w in words if len(w) > MAX_LETTERS]
    return problems


def template_phrases(name: str) -> set[str]:
    tree = Environment(autoescape=True).parse((TEMPLATES / name).read_text(encoding="utf-8"))
    return {
        call.args[0].value
        for call in tree.find_all(nodes.Call)
        if isinstance(call.node, nodes.Name)
        and call.node.name == "_"
        and call.args
        and isinstance(call.args[0], nodes.Const)
    }


def test_the_check_finds_what_b1_allows_but_the_easy_view_does_not() -> None:
    # A sentence of the normal plan view: fine for B1, too long for the eenvoudig view.
    b1 = "Met de knoppen omhoog en omlaag zet je ze in je eigen volgorde."
    assert not plain_problems(b1)
    assert easy_problems(b1)
    assert easy_problems("Bij je huurachterstand helpt de woningcorporatie.")
    assert not easy_problems("Je cijfer ging van {before} naar {now}.")


def test_every_phrase_of_the_easy_view_is_easier_than_b1_and_has_english() -> None:
    phrases = template_phrases("plan_easy.html") | set(easy.EASY_DOMAINS.values())
    assert len(phrases) > 25
    problems = [p for phrase in sorted(phrases) for p in easy_problems(phrase)]
    assert not problems, "\n".join(problems)
    missing = sorted(p for p in phrases if p not in ENGLISH)
    assert not missing, missing


def test_every_life_domain_has_an_easy_word_and_a_pictogram() -> None:
    assert set(easy.EASY_DOMAINS) == set(LEVENSDOMEINEN)
    pictograms = (TEMPLATES / "_pictograms.html").read_text(encoding="utf-8")
    for domain in LEVENSDOMEINEN:
        assert f"'{domain}':" in pictograms, domain
    assert "style=" not in pictograms and "href" not in pictograms  # CSP, no outside fetch


@pytest.mark.parametrize(
    ("asked", "remembered", "shown"),
    [
        ("eenvoudig", None, "eenvoudig"),
        ("gewoon", "eenvoudig", "gewoon"),
        ("", "eenvoudig", "eenvoudig"),
        ("", None, "gewoon"),
        ("iets anders", "eenvoudig", "eenvoudig"),
        ("", "iets anders", "gewoon"),
    ],
)
def test_the_link_wins_then_the_remembered_view(
    asked: str, remembered: str | None, shown: str
) -> None:
    assert easy.view_of(asked, remembered) == shown


def _goal(gid: str, domain: str, text: str) -> dict[str, Any]:
    return {
        "resourceType": "Goal",
        "id": gid,
        "description": {"text": text},
        "category": [{"coding": [{"system": LEVENSDOMEIN, "code": domain}]}],
    }


def test_items_scores_and_step_of_a_plan() -> None:
    goals = [_goal("g1", "financien", "Geen schulden."), _goal("g2", "wonen", "")]
    mine = {
        "description": "Ik open de post.",
        "performer": [{"reference": "Patient/p1"}],
        "goal": [{"reference": "Goal/g1"}],
    }
    friend = {"description": "Mirjam helpt.", "performer": [{"reference": "RelatedPerson/r1"}]}
    team = {"description": "", "performer": [{"reference": "Organization/o1"}]}
    plan = Plan(
        care_plan=None,
        goals=goals,
        own=[(0, mine, "Ik"), (1, friend, "Mirjam")],
        needed=[(2, team, "Sociaal team")],
        scores={
            "wonen": [("2026-01-01", 4), ("2026-02-01", 4)],
            "financien": [("2026-01-01", 3), ("2026-02-01", 5)],
            "relaties": [("2026-02-01", 7)],
        },
    )
    shown = easy.easy_plan(plan, patient_id="p1", phase="samen-op-weg")
    # A goal without words is left out; a line shows the pictogram of the goal it serves.
    assert shown.goals == [easy.EasyItem("financien", "Geen schulden.")]
    assert shown.mine == [easy.EasyItem("financien", "Ik open de post.", "ik")]
    assert shown.others == [easy.EasyItem("", "Mirjam helpt.", "Mirjam")]
    assert shown.scores == [
        easy.EasyScore("financien", 5, 3),
        easy.EasyScore("wonen", 4, 4),
        easy.EasyScore("relaties", 7, None),
    ]
    assert (shown.step, shown.steps) == (4, 5)
    assert easy.easy_plan(plan, patient_id="p1", phase=None).step is None
