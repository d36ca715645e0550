"""A child's consent by age (issue 17, docs/family.md): the birthdays, and the two
statements of the rule agreeing.

``consent/representation.py`` turns a birth date into the instants the rules change
(``birthday``, ``stage``); ``consent/policy.py`` restates them on its own, from the local
calendar date in Amsterdam. The hand-picked cases pin the instants down (00:00 in
Europe/Amsterdam is 22:00 or 23:00 UTC the day before; born on 29 February, the birthday of
a common year is 1 March); the property checks that both statements agree at every instant
around every birthday that matters.
"""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vault.consent.compile import compile_consent
from vault.consent.policy import Facts, Request, Signed, permits
from vault.consent.representation import birthday, stage


def _utc(text: str) -> int:
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return int(moment.timestamp()) * 1_000_000


@pytest.mark.parametrize(
    ("born", "years", "utc"),
    [
        # Summer time: 00:00 CEST is 22:00 UTC the day before.
        ("2014-06-10", 12, "2026-06-09T22:00:00Z"),
        # Winter time: 00:00 CET is 23:00 UTC the day before.
        ("2010-01-10", 16, "2026-01-09T23:00:00Z"),
        # Born on a leap day: a leap year keeps 29 February ...
        ("2012-02-29", 12, "2024-02-28T23:00:00Z"),
        ("2012-02-29", 16, "2028-02-28T23:00:00Z"),
        # ... a common year has 1 March.
        ("2012-02-29", 13, "2025-02-28T23:00:00Z"),
        ("2008-02-29", 18, "2026-02-28T23:00:00Z"),
        # The day summer time starts (29 March 2026, at 02:00): midnight is still CET.
        ("2014-03-29", 12, "2026-03-28T23:00:00Z"),
        # The day it ends (25 October 2026, at 03:00): midnight is still CEST.
        ("2010-10-25", 16, "2026-10-24T22:00:00Z"),
    ],
)
def test_a_birthday_begins_at_midnight_in_amsterdam(born: str, years: int, utc: str) -> None:
    assert birthday(date.fromisoformat(born), years) == _utc(utc)


def test_the_stages_change_on_the_birthday_itself() -> None:
    born = date(2014, 6, 10)
    twelve, sixteen, eighteen = (birthday(born, n) for n in (12, 16, 18))
    assert stage(born, twelve - 1) == "parents"
    assert stage(born, twelve) == "together"
    assert stage(born, sixteen - 1) == "together"
    assert stage(born, sixteen) == "own"
    assert stage(born, eighteen - 1) == "own"
    assert stage(born, eighteen) == "adult"
    assert stage(None, twelve) == "adult"
    # In UTC it is still the day before: the date in UTC would be a day late.
    assert datetime.fromtimestamp(twelve / 1e6, tz=UTC).date() == date(2026, 6, 9)


def test_a_leap_day_child_turns_eighteen_on_1_march_of_a_common_year() -> None:
    # Born 29 February 2008: the 12th and 16th birthdays fall in leap years (2020, 2024),
    # the 18th in a common one (2026), where it is 1 March.
    leap = date(2008, 2, 29)
    assert stage(leap, _utc("2020-02-28T22:59:59Z")) == "parents"
    assert stage(leap, _utc("2020-02-28T23:00:00Z")) == "together"
    assert stage(leap, _utc("2024-02-28T22:59:59Z")) == "together"
    assert stage(leap, _utc("2024-02-28T23:00:00Z")) == "own"
    # 28 February 2026, all day in Amsterdam, is not yet the 18th birthday.
    assert stage(leap, _utc("2026-02-28T22:59:59Z")) == "own"
    assert stage(leap, _utc("2026-02-28T23:00:00Z")) == "adult"


PARENT, CHILD, MEE = "RelatedPerson/mama", "Patient/kind", "Organization/mee"


def _parent_grant() -> dict[str, tuple[str, list]]:  # type: ignore[type-arg]
    body = {
        "resourceType": "Consent",
        "status": "active",
        "scope": {"coding": [{"code": "patient-privacy"}]},
        "patient": {"reference": CHILD},
        "provision": {"type": "permit", "actor": [{"reference": {"reference": MEE}}],
                      "action": [{"coding": [{"code": "access"}]}]},
    }  # fmt: skip
    return {"c": ("kind", compile_consent(body, patient_id="kind"))}


def _partner_sees(signed: Signed, now: int) -> bool:
    request = Request(frozenset({MEE}), "access", frozenset(), now)
    return permits(_parent_grant(), Facts("Goal", "g", "kind"), request, {"c": signed})


def test_the_reference_ends_a_parents_grant_at_twelve_and_keeps_a_shared_one() -> None:
    born = date(2014, 6, 10)
    twelve = birthday(born, 12)
    written = twelve - 86_400_000_000
    by_parent = Signed(born, frozenset({PARENT}), written)
    together = Signed(born, frozenset({PARENT, CHILD}), written)
    assert _partner_sees(by_parent, twelve - 1)
    assert not _partner_sees(by_parent, twelve)
    assert _partner_sees(together, twelve)
    # An adult's Consent signed by a representative alone: no age rule.
    adult = Signed(date(1990, 1, 1), frozenset({PARENT}), written)
    assert _partner_sees(adult, twelve + 1)


BIRTHS = st.dates(min_value=date(2004, 1, 1), max_value=date(2020, 12, 31))


@settings(max_examples=400, deadline=None)
@given(born=BIRTHS, years=st.sampled_from((12, 16, 18)), offset=st.integers(-3, 3))
def test_the_reference_and_the_vault_agree_around_every_birthday(
    born: date, years: int, offset: int
) -> None:
    """At the birthday, a microsecond and a few hours either side (whole hours: 00:00 in
    Amsterdam against 00:00 UTC), both statements say the same about a parent's grant."""
    moment = birthday(born, years) + offset * 3_600_000_000 + (offset % 2) * -1
    written = birthday(born, 11)  # signed by a parent at 11
    by_parent = Signed(born, frozenset({PARENT}), written)
    assert _partner_sees(by_parent, moment) == (stage(born, moment) == "parents")
