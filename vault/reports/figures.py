"""The figures of an outcome report, per period and per life domain, from plain facts.

Issue 14, section 1. The facts (``InwonerFacts``) are what ``collect.py`` gathered, through
the access decision, about the inwoners who allow statistics; this module turns them into
figures (``suppress.Figure``) with, for each, the set of inwoners it rests on, so that
``suppress.py`` can hide the small ones. Periods are calendar quarters (``2026-Q1``) and
calendar years (``2026``). Pure: no database, no web framework.

Each figure of a period and a domain (or ``alle`` for all domains together):

    inwoners            inwoners with a plan begun before the period ended (in the domain:
                        with a goal in it)
    plans, plans-<fase> their plans, and the plans per phase (the phase now)
    goals-set           goals begun in the period
    goals-achieved      goals achieved in the period (achievementStatus achieved/completed)
    goals-stopped       goals stopped in the period (lifecycleStatus cancelled)
    score-change        mean change of the own score (1-10), first to last evaluation up to
                        the end of the period, over inwoners with two or more scores
    days-to-plan        mean days from first contact (the plan's creation) to the agreed
                        plan, over plans agreed in the period
    rating              mean own rating of the way of working (1-10), the latest one given
                        up to the end of the period
    organisations       mean number of organisations per plan (the CareTeam)
    network             mean number of network members per plan (the CareTeam)
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date

from vault.fhir.codesystems import LEVENSDOMEINEN
from vault.reports.codes import PHASES
from vault.reports.suppress import Figure, Relation

__all__ = [
    "ALL_DOMAINS",
    "MEASURES",
    "GoalFacts",
    "InwonerFacts",
    "Period",
    "compute",
    "parse_period",
]

ALL_DOMAINS = "alle"
ADDITIVE = ("goals-set", "goals-achieved", "goals-stopped")
# measure -> (Dutch label, kind: count or mean)
MEASURES: dict[str, tuple[str, str]] = {
    "inwoners": ("Inwoners die meetellen", "count"),
    "plans": ("Plannen", "count"),
    **{
        f"plans-{code}": (f"Plannen in fase {label.lower()}", "count")
        for code, label in PHASES.items()
    },
    "goals-set": ("Doelen gesteld", "count"),
    "goals-achieved": ("Doelen bereikt", "count"),
    "goals-stopped": ("Doelen gestopt", "count"),
    "score-change": ("Verandering eigen cijfer (eerste tot laatste evaluatie)", "mean"),
    "days-to-plan": ("Dagen van eerste contact tot afgesproken plan", "mean"),
    "rating": ("Eigen cijfer voor de werkwijze (1-10)", "mean"),
    "organisations": ("Organisaties per plan", "mean"),
    "network": ("Mensen uit het netwerk per plan", "mean"),
}


@dataclass(frozen=True, slots=True)
class Period:
    code: str  # "2026" or "2026-Q3"
    start: date
    end: date  # the first day after the period

    @property
    def quarters(self) -> list[Period]:
        if "-Q" in self.code:
            return []
        return [parse_period(f"{self.code}-Q{q}") for q in range(1, 5)]

    def holds(self, day: date | None) -> bool:
        return day is not None and self.start <= day < self.end


_PERIOD = re.compile(r"^(\d{4})(?:-Q([1-4]))?$")


def parse_period(text: str) -> Period:
    """``2026`` or ``2026-Q1``; ValueError for anything else."""
    match = _PERIOD.match(text.strip())
    if match is None:
        raise ValueError("A period is a year (2026) or a quarter (2026-Q1)")
    year = int(match[1])
    if match[2] is None:
        return Period(str(year), date(year, 1, 1), date(year + 1, 1, 1))
    quarter = int(match[2])
    start = date(year, 3 * quarter - 2, 1)
    end = date(year + 1, 1, 1) if quarter == 4 else date(year, 3 * quarter + 1, 1)
    return Period(f"{year}-Q{quarter}", start, end)


@dataclass(frozen=True, slots=True)
class GoalFacts:
    domain: str
    start: date | None
    achieved: date | None
    stopped: date | None


@dataclass
class PlanFacts:
    created: date
    phase: str | None
    agreed: date | None
    organisations: int
    network: int


@dataclass
class InwonerFacts:
    """What may be counted of one inwoner. ``key`` never leaves this package."""

    key: str
    plans: list[PlanFacts] = field(default_factory=list)
    goals: list[GoalFacts] = field(default_factory=list)
    scores: dict[str, list[tuple[date, int]]] = field(default_factory=dict)
    ratings: list[tuple[date, int]] = field(default_factory=list)


FigureKey = tuple[str, str, str]  # (period, domain, measure)


def _mean(values: list[float]) -> float | None:
    return round(sum(values) / len(values), 1) if values else None


def _cell(
    people: Iterable[InwonerFacts], period: Period, domain: str
) -> dict[str, tuple[frozenset[str], float | None]]:
    # Long on purpose: one table cell's counts over the same pass of the people.
    in_domain = domain == ALL_DOMAINS
    members: list[InwonerFacts] = []
    for person in people:
        if not any(p.created < period.end for p in person.plans):
            continue
        if not in_domain and not any(
            g.domain == domain and g.start is not None and g.start < period.end
            for g in person.goals
        ):
            continue
        members.append(person)
    out: dict[str, tuple[frozenset[str], float | None]] = {}
    everyone = frozenset(p.key for p in members)
    out["inwoners"] = (everyone, float(len(everyone)))
    plans = [(p.key, plan) for p in members for plan in p.plans if plan.created < period.end]
    out["plans"] = (everyone, float(len(plans)))
    for code in PHASES:
        having = [key for key, plan in plans if plan.phase == code]
        out[f"plans-{code}"] = (frozenset(having), float(len(having)))

    def goals(person: InwonerFacts) -> list[GoalFacts]:
        return [g for g in person.goals if in_domain or g.domain == domain]

    for measure, attribute in (
        ("goals-set", "start"),
        ("goals-achieved", "achieved"),
        ("goals-stopped", "stopped"),
    ):
        counted = [
            (p.key, g) for p in members for g in goals(p) if period.holds(getattr(g, attribute))
        ]
        out[measure] = (frozenset(key for key, _ in counted), float(len(counted)))

    changes: dict[str, float] = {}
    for person in members:
        deltas = []
        for code, series in person.scores.items():
            if not in_domain and code != domain:
                continue
            before = sorted(s for s in series if s[0] < period.end)
            if len(before) >= 2:
                deltas.append(before[-1][1] - before[0][1])
        if deltas:
            changes[person.key] = sum(deltas) / len(deltas)
    out["score-change"] = (frozenset(changes), _mean(list(changes.values())))

    waits = [
        (key, float((plan.agreed - plan.created).days))
        for key, plan in plans
        if plan.agreed is not None and period.holds(plan.agreed)
    ]
    out["days-to-plan"] = (frozenset(k for k, _ in waits), _mean([w for _, w in waits]))

    ratings = {}
    for person in members:
        given = sorted(r for r in person.ratings if r[0] < period.end)
        if given:
            ratings[person.key] = float(given[-1][1])
    out["rating"] = (frozenset(ratings), _mean(list(ratings.values())))
    out["organisations"] = (everyone, _mean([float(p.organisations) for _, p in plans]))
    out["network"] = (everyone, _mean([float(p.network) for _, p in plans]))
    return out


def compute(
    people: list[InwonerFacts],
    periods: Iterable[Period],
    *,
    frozen: Mapping[FigureKey, float | None] | None = None,
) -> tuple[dict[FigureKey, Figure], list[Relation]]:
    """Figures of ``periods`` for every domain, and the sums that tie them together.

    ``frozen`` holds figures of earlier runs (a value, or None if suppressed): they keep
    their status and value (locked); their groups of inwoners are taken from today's facts,
    for the differencing rule. A year's goal counts are the sum of its quarters, frozen
    values included, so that a year and its quarters always add up, also after someone
    stopped counting (see docs/reports.md).
    """
    # Long on purpose: every figure of a period in one pass, so suppression sees them all together.
    frozen = frozen or {}
    figures: dict[FigureKey, Figure] = {}
    fresh: dict[FigureKey, float | None] = {}
    relations: list[Relation] = []
    domains = [ALL_DOMAINS, *LEVENSDOMEINEN]
    period_list = list(periods)
    for period in period_list:
        for domain in domains:
            for measure, (contributors, value) in _cell(people, period, domain).items():
                key = (period.code, domain, measure)
                fresh[key] = value
                if key in frozen:
                    figures[key] = Figure(
                        measure,
                        contributors,
                        frozen[key],
                        suppressed=frozen[key] is None,
                        locked=True,
                    )
                else:
                    figures[key] = Figure(measure, contributors, value)
            relations.append(
                Relation(
                    (period.code, domain, "plans"),
                    tuple((period.code, domain, f"plans-{c}") for c in PHASES),
                )
            )
        for measure in ADDITIVE:
            relations.append(
                Relation(
                    (period.code, ALL_DOMAINS, measure),
                    tuple((period.code, d, measure) for d in LEVENSDOMEINEN),
                )
            )
    codes = {p.code for p in period_list}
    for period in period_list:
        quarters = [q for q in period.quarters if q.code in codes]
        if len(quarters) != 4:
            continue
        for domain in domains:
            for measure in ADDITIVE:
                year = figures[(period.code, domain, measure)]
                parts = [figures[(q.code, domain, measure)] for q in quarters]
                if not year.locked:
                    # A published quarter counts with the value it was published with.
                    year.value = float(
                        sum(
                            (p.value if p.locked and not p.suppressed else fresh[key]) or 0.0
                            for p, key in zip(
                                parts, [(q.code, domain, measure) for q in quarters], strict=True
                            )
                        )
                    )
                    year.contributors = frozenset().union(*(p.contributors for p in parts))
                relations.append(
                    Relation(
                        (period.code, domain, measure),
                        tuple((q.code, domain, measure) for q in quarters),
                    )
                )
    return figures, relations
