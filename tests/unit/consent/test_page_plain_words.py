"""Plain Dutch on the consent page (issue 18): short sentences, no words from the back
office, and a date field that reads a day the way people here write it."""

from __future__ import annotations

import re
from datetime import date

import pytest

from vault.consent.compile import Grant
from vault.page.catalogue import ENGLISH
from vault.page.data import DOMAINS, LEGAL_BASIS_WORDS, PRIORITIES, dutch_day, parse_day
from vault.page.words import summarize

MAX_WORDS = 15  # B1: one thing per sentence
# Words of the people who build and run the vault, not of the people who use the page.
FORBIDDEN = ("FHIR", "token", "Consent", "AVG", "OperationOutcome", "JSON", "API", "resource")
_FORBIDDEN = re.compile(r"\b(" + "|".join(FORBIDDEN) + r")\b", re.IGNORECASE)
_SENTENCE_END = re.compile(r"(?<=[.?!:])\s+")


def plain_problems(phrase: str) -> list[str]:
    """What is wrong with one Dutch phrase: sentences that are too long, forbidden words."""
    problems = []
    for sentence in _SENTENCE_END.split(phrase):
        words = sentence.split()
        if len(words) > MAX_WORDS:
            problems.append(f"{len(words)} words: {sentence}")
        found = _FORBIDDEN.search(sentence)
        if found:
            problems.append(f"{found.group(0)!r} in: {sentence}")
    return problems


def test_the_check_finds_a_long_sentence_and_a_forbidden_word() -> None:
    long = "Dit is een zin met veel te veel woorden voor iemand die niet zo goed leest of snel"
    assert plain_problems(long)
    assert plain_problems("Download je gegevens (het is FHIR).")
    assert plain_problems("Je token is verlopen.")
    assert not plain_problems("Je keuze is opgeslagen. Dit mag tot en met 31 december 2026.")


def test_every_dutch_phrase_of_the_page_is_short_and_plain() -> None:
    phrases = set(ENGLISH) | set(DOMAINS.values()) | set(PRIORITIES.values())
    phrases |= set(LEGAL_BASIS_WORDS.values())
    problems = [p for phrase in sorted(phrases) for p in plain_problems(phrase)]
    assert not problems, "\n".join(problems)


def test_the_who_may_see_sentence_is_short_sentences() -> None:
    """Was one sentence of 24 to 27 words; now one thing per sentence."""
    until = 1_798_761_600_000_000  # 2027-01-01T00:00Z: the last day is 31 December 2026
    grants = [
        Grant(
            effect="permit",
            action="access",
            resource_type="Goal",
            grantee="Organization/x",
            valid_until=until,
        )
    ]
    text = summarize("MEE", grants, now=0).text("nl")
    assert not plain_problems(text), text
    assert text.startswith("MEE mag je doelen zien. Dit mag tot en met 31 december 2026.")
    assert "mag niet zien: je naam en adres" in text


@pytest.mark.parametrize(
    "typed",
    ["31-12-2026", "31122026", "31/12/2026", "31.12.2026", "31 12 2026", "2026-12-31"],
)
def test_a_dutch_day_is_read_day_first(typed: str) -> None:
    assert parse_day(typed) == date(2026, 12, 31)


def test_short_forms_and_the_field_value() -> None:
    assert parse_day("1-3-2027") == date(2027, 3, 1)
    assert parse_day("  ") is None
    assert dutch_day(date(2027, 3, 1)) == "01-03-2027"
    assert parse_day(dutch_day(date(2027, 3, 1))) == date(2027, 3, 1)


@pytest.mark.parametrize("typed", ["12-31-2026", "31-13-2026", "30-02-2026", "312026", "morgen"])
def test_a_day_that_does_not_exist_is_refused(typed: str) -> None:
    with pytest.raises(ValueError):
        parse_day(typed)
