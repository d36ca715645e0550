"""Small-cell suppression on hand-made tables: the three rules, one at a time."""

from __future__ import annotations

from datetime import date

import pytest

from vault.audit.log import AuditRecord
from vault.page.words import describe_event
from vault.reports.figures import parse_period
from vault.reports.suppress import Figure, Relation, suppress


def people(prefix: str, n: int) -> frozenset[str]:
    return frozenset(f"{prefix}{i}" for i in range(n))


def test_a_figure_of_fewer_than_k_inwoners_is_hidden_and_a_count_of_nobody_is_not() -> None:
    figures = {
        "small": Figure("goals", people("a", 9), 9.0),
        "enough": Figure("goals", people("b", 10), 10.0),
        "nobody": Figure("goals", frozenset(), 0.0),
        "no mean": Figure("rating", frozenset(), None),
    }
    suppress(figures, [], k=10)
    assert [key for key, f in figures.items() if f.suppressed] == ["small", "no mean"]


def test_one_hidden_part_of_a_shown_total_takes_a_second_part_with_it() -> None:
    figures = {
        "total": Figure("goals", people("a", 3) | people("b", 12) | people("c", 11), 26.0),
        "a": Figure("goals", people("a", 3), 3.0),
        "b": Figure("goals", people("b", 12), 12.0),
        "c": Figure("goals", people("c", 11), 11.0),
    }
    suppress(figures, [Relation("total", ("a", "b", "c"))], k=10)
    assert not figures["total"].suppressed
    assert figures["a"].suppressed and figures["c"].suppressed  # the smaller of b and c
    assert not figures["b"].suppressed


def test_hidden_parts_that_together_rest_on_fewer_than_k_inwoners_take_more() -> None:
    figures = {
        "total": Figure("goals", people("a", 2) | people("b", 3) | people("c", 20), 25.0),
        "a": Figure("goals", people("a", 2), 2.0),
        "b": Figure("goals", people("b", 3), 3.0),
        "c": Figure("goals", people("c", 20), 20.0),
    }
    suppress(figures, [Relation("total", ("a", "b", "c"))], k=10)
    # a + b = total - c would be 5 inwoners' figure: c (or the total) must go as well.
    assert figures["c"].suppressed or figures["total"].suppressed


def test_two_figures_whose_groups_differ_by_a_few_inwoners_are_not_both_shown() -> None:
    everyone = people("a", 11)
    figures = {
        "all": Figure("rating", everyone, 7.5),
        "wonen": Figure("rating", people("a", 10), 8.0),
        "other": Figure("goals", people("a", 10), 10.0),  # another measure: not compared
    }
    suppress(figures, [], k=10)
    assert figures["wonen"].suppressed and not figures["all"].suppressed
    assert not figures["other"].suppressed


def test_a_frozen_figure_keeps_its_status_and_a_new_one_gives_way() -> None:
    figures = {
        "year": Figure("goals", people("a", 12), 12.0),
        "q1": Figure("goals", people("a", 11), 11.0, locked=True),
        "q4": Figure("goals", frozenset({"a11"}), 1.0, suppressed=True, locked=True),
    }
    suppress(figures, [Relation("year", ("q1", "q4"))], k=10)
    assert figures["year"].suppressed
    assert not figures["q1"].suppressed


@pytest.mark.parametrize(
    ("text", "start", "end"),
    [
        ("2026", date(2026, 1, 1), date(2027, 1, 1)),
        ("2026-Q1", date(2026, 1, 1), date(2026, 4, 1)),
        ("2026-Q4", date(2026, 10, 1), date(2027, 1, 1)),
    ],
)
def test_periods_are_calendar_quarters_and_years(text: str, start: date, end: date) -> None:
    period = parse_period(text)
    assert (period.start, period.end) == (start, end)


@pytest.mark.parametrize("text", ["2026-Q5", "26", "2026-01", "", "2026Q1"])
def test_other_periods_are_refused(text: str) -> None:
    with pytest.raises(ValueError, match="quarter"):
        parse_period(text)


def test_the_access_log_says_counted_never_viewed() -> None:
    event = AuditRecord(
        patient_id="p1",
        interaction="operation",
        permitted=True,
        client_id="c1",
        organization="Organization/g",
        account_id=None,
        query="Measure/$evaluate-measure?period=2025",
        purposes=["HRESCH"],
        recorded=1_700_000_000_000_000,
    ).to_fhir(resource_id="e1")
    line = describe_event(
        event,
        names={"Organization/g": "Gemeente Voorbeeldstad"},
        own_account=None,
        role_at=lambda person, instant: None,
        patient_ref="Patient/p1",
    )
    assert line.sentence == (
        "Gemeente Voorbeeldstad heeft je meegeteld in cijfers zonder namen "
        "(je plan zelf is niet bekeken)"
    )
