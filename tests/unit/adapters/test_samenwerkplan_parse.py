"""Reading a samenwerkplan: the documented example, and every mistake named by its line."""

from __future__ import annotations

import pytest

from adapters.samenwerkplan import PlanError, goal_priority, parse_plan, read_plan
from tests.support import REPO_ROOT

EXAMPLE = REPO_ROOT / "docs" / "examples" / "samenwerkplan-noor.md"

SMALL = """\
# Plan van Kim

## Wat wil ik
- Ik wil een baan.
## Wat kan ik
## Wat heb ik nodig
## Afspraken
## Wie doen er mee
"""


def test_the_documented_example_reads_in_the_inwoners_words_and_order() -> None:
    plan = read_plan(EXAMPLE)
    assert plan.key == "samenwerkplan-2026-11-noor"
    assert plan.title == "Samenwerkplan van Noor"
    assert (plan.date, plan.start, plan.end) == ("2026-11-20", "2026-11-20", "2026-12-18")
    assert [(w.rank, w.domain) for w in plan.wishes] == [
        (1, "financien"),
        (2, "wonen"),
        (3, "gezondheid"),
    ]
    # an indented line continues the item above it
    assert (
        plan.wishes[2].text == "Ik wil weer één keer per week iets leuks doen, gewoon voor mezelf."
    )
    assert [a.section for a in plan.activities] == ["kan"] * 3 + ["nodig"] * 2 + ["afspraken"] * 4
    first = plan.activities[0]
    assert (first.who, first.status, first.start, first.end) == (
        None,
        "in-progress",
        "2026-11-20",
        "2026-12-18",
    )
    agreement = plan.activities[5]
    assert (agreement.who, agreement.status, agreement.start, agreement.end) == (
        "Anouk Smit",
        "scheduled",
        "2026-11-27",
        "2026-11-27",
    )
    assert plan.activities[7].who is None  # "wie: ik"
    assert plan.activities[7].status == "not-started"  # "nog niet begonnen"
    kinds = {p.name: p.kind for p in plan.participants}
    assert kinds == {
        "Bram Jansen": "netwerk",
        "Fatima El Amrani": "netwerk",
        "Anouk Smit": "professional",
        "Sociaal Team Voorbeeldstad": "organisatie",
        "Woonstichting Voorbeeldstad": "organisatie",
        "Voedselbank Voorbeeldstad": "organisatie",
    }


def test_without_front_matter_the_title_names_the_plan() -> None:
    plan = parse_plan(SMALL)
    assert plan.key == "plan-van-kim"
    assert plan.date is None and plan.start is None
    assert plan.activities == () and plan.participants == ()


def test_the_same_words_give_the_same_goal_key_whatever_the_spacing() -> None:
    one = parse_plan(SMALL).wishes[0]
    two = parse_plan(SMALL.replace("- Ik wil een baan.", "1.  ik wil  een baan.")).wishes[0]
    assert one.key == two.key


def test_priority_keeps_the_exact_rank_and_codes_the_first_two() -> None:
    assert [goal_priority(r)["coding"][0]["code"] for r in (1, 2, 3, 7)] == [
        "high-priority",
        "medium-priority",
        "low-priority",
        "low-priority",
    ]
    assert goal_priority(7)["text"] == "7"


@pytest.mark.parametrize(
    ("text", "line", "message"),
    [
        (SMALL.replace("## Afspraken\n", ""), 7, "missing heading '## Afspraken'"),
        (SMALL.replace("## Wat kan ik", "## Wat ik kan"), 5, "unknown heading 'Wat ik kan'"),
        (SMALL + "## Wat wil ik\n", 9, "'Wat wil ik' appears twice"),
        (SMALL.replace("- Ik wil een baan.\n", ""), 3, "needs at least one item"),
        (SMALL.replace("baan.", "baan. | domein: geld"), 4, "unknown life domain 'geld'"),
        (SMALL.replace("baan.", "baan. | kleur: rood"), 4, "unknown field 'kleur'"),
        (SMALL.replace("- Ik wil", "Ik wil"), 4, "expected a list item"),
        ("Hallo\n" + SMALL, 1, "text before the first heading"),
        (
            SMALL.replace("## Afspraken", "## Afspraken\n- Bellen. | wie: Piet"),
            8,
            "'Piet' is not listed under 'Wie doen er mee'",
        ),
        (SMALL.replace("## Afspraken", "## Afspraken\n- Bellen."), 8, "says who does it"),
        (
            SMALL.replace("## Wat kan ik", "## Wat kan ik\n- Fietsen. | status: misschien"),
            6,
            "unknown status 'misschien'",
        ),
        (
            SMALL.replace("## Wat kan ik", "## Wat kan ik\n- Fietsen. | wanneer: morgen"),
            6,
            "'morgen' is not a date",
        ),
        (
            SMALL.replace("## Wat kan ik", "## Wat kan ik\n- Fietsen. | wanneer: 2026-02-30"),
            6,
            "'2026-02-30' is not a date",
        ),
        (
            SMALL.replace(
                "## Wat kan ik", "## Wat kan ik\n- Fietsen. | wanneer: 2026-03-02 tot 2026-03-01"
            ),
            6,
            "ends before it starts",
        ),
        (
            SMALL + "- Ans | namens: Buurthuis\n",
            9,
            "'Buurthuis' is not listed under 'Wie doen er mee' as organisatie",
        ),
        (SMALL + "- Ans\n- ans\n", 10, "'ans' is listed twice"),
        ("---\nkleur: rood\n---\n" + SMALL, 2, "front matter takes 'key: value' lines"),
        ("---\nid: x\n", 1, "not closed with '---'"),
        ("---\nperiode: 2026-13-01\n---\n" + SMALL, 2, "'2026-13-01' is not a date"),
        (SMALL.replace("# Plan van Kim", ""), 1, "give the plan a title"),
    ],
)
def test_a_mistake_is_named_with_its_line(text: str, line: int, message: str) -> None:
    with pytest.raises(PlanError) as error:
        parse_plan(text, source="plan.md")
    assert error.value.line == line, str(error.value)
    assert message in str(error.value)
    assert str(error.value).startswith(f"plan.md, line {line}: ")


def test_a_file_that_is_not_utf8_is_refused(tmp_path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "plan.md"
    path.write_bytes(b"# Plan\xff\n")
    with pytest.raises(PlanError, match="not UTF-8"):
        read_plan(path)
