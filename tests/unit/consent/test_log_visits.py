"""One visit is one line: the grouping rule of the access log, and roles as they were."""

from __future__ import annotations

from vault.consent.representation import Role, role_at
from vault.page.words import LogLine, group_visits, visit_sentence

MINUTE = 60 * 1_000_000


def line(party: str, when: int, kind: str = "viewed", **extra: object) -> LogLine:
    who = {"x": "Stichting X", "mee": "MEE", "you": "Jij"}.get(party, party)
    options: dict[str, object] = {
        "party": party,
        "kind": kind,
        "types": ("Goal",),
        "has": "hebt" if party == "you" else "heeft",
    }
    options.update(extra)
    sentence = f"{who} wilde je doelen zien, maar mocht dat niet"
    return LogLine(when, who, sentence, None, kind != "denied", party == "you", **options)  # type: ignore[arg-type]


def test_a_flood_of_denials_is_one_line_and_does_not_split_an_interleaved_visit() -> None:
    start = 1_000 * MINUTE
    lines = [line("x", start - i * 100_000, "denied") for i in range(310)]
    lines.insert(100, line("mee", start - 10_000_000))
    lines.insert(200, line("mee", start - 20_000_000))
    groups = group_visits(lines)
    assert [g.count for g in groups] == [310, 2]
    assert groups[0].sentence() == "Stichting X probeerde 310 keer iets te zien wat niet mocht"
    assert groups[1].sentence() == "MEE heeft je doelen bekeken (2 keer)"


def test_a_long_pause_starts_a_new_visit() -> None:
    groups = group_visits([line("mee", 100 * MINUTE), line("mee", 40 * MINUTE)])
    assert len(groups) == 2


def test_writes_are_counted_per_thing_and_searches_without_results_say_so() -> None:
    added = [
        line("app", 10 * MINUTE, "changed", verb="added", entities=(f"Goal/{n}",)) for n in range(7)
    ]
    assert visit_sentence(added) == "app heeft 7 doelen toegevoegd"
    assert visit_sentence(added, "en") == "app added 7 goals"
    empty = [line("Erik", 10 * MINUTE - n, "empty") for n in range(6)]
    assert visit_sentence(empty) == "Erik keek 6 keer, maar zag niets"


def test_a_role_holds_only_between_its_start_and_its_end() -> None:
    history = {"RelatedPerson/k": [Role("RelatedPerson/k", "mentor", 10 * MINUTE, 20 * MINUTE)]}
    assert role_at(history, "RelatedPerson/k", 5 * MINUTE) is None
    assert role_at(history, "RelatedPerson/k", 15 * MINUTE) == "mentor"
    assert role_at(history, "RelatedPerson/k", 25 * MINUTE) is None
    assert role_at(history, "RelatedPerson/other", 15 * MINUTE) is None


def _consent_change_by(person: str, when_iso: str) -> dict[str, object]:
    """An AuditEvent as the access log writes it when someone of the network acts."""
    return {
        "resourceType": "AuditEvent",
        "subtype": [{"code": "create"}],
        "recorded": when_iso,
        "outcome": "0",
        "agent": [
            {"name": "account a1", "requestor": True},
            {
                "who": {"reference": person},
                "requestor": True,
                "type": {"coding": [{"code": "AGNT"}]},
            },
        ],
        "entity": [{"what": {"reference": "Consent/c1"}}],
    }


def test_a_parent_with_gezag_is_named_as_the_child_says_it_in_dutch_word_order() -> None:
    from vault.page.words import describe_event

    mother = "RelatedPerson/sanne"
    history = {mother: [Role(mother, "ouder", 0, None)]}
    event = _consent_change_by(mother, "2026-12-04T10:00:00.000Z")
    kwargs: dict[str, object] = {
        "names": {mother: "Sanne Bakker"},
        "own_account": None,
        "role_at": lambda person, when: role_at(history, person, when),
        "patient_ref": "Patient/mila",
    }
    line = describe_event(event, kin={mother: "mother"}, **kwargs)  # type: ignore[arg-type]
    assert line.sentence == "Mama (Sanne Bakker) heeft namens jou veranderd wie wat mag zien"
    english = describe_event(event, kin={mother: "mother"}, lang="en", **kwargs)  # type: ignore[arg-type]
    assert english.sentence == "Mum (Sanne Bakker) on your behalf changed who may see what"
    # A mentor is no parent: the name alone, "namens jou" after the verb all the same.
    history[mother] = [Role(mother, "mentor", 0, None)]
    line = describe_event(event, kin={mother: "mother"}, **kwargs)  # type: ignore[arg-type]
    assert line.sentence == "Sanne Bakker heeft namens jou veranderd wie wat mag zien"
    # Every sentence of a visit keeps the order, the grouped ones too.
    assert visit_sentence([line, line]) == line.sentence + " (2 keer)"
    # Someone whose role had ended acted for nobody: no "namens jou".
    history[mother] = [Role(mother, "ouder", 0, 1)]
    line = describe_event(event, kin={mother: "mother"}, **kwargs)  # type: ignore[arg-type]
    assert line.sentence == "Sanne Bakker heeft veranderd wie wat mag zien"
