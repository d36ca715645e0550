"""Small-cell suppression: no published figure rests on fewer than k inwoners.

Three rules, applied until nothing changes (the statistical-disclosure-control practice of
CBS and Eurostat, written for the few fixed tables this vault publishes):

1. Primary: a figure whose contributors (the inwoners it is computed from) number fewer
   than ``k`` is suppressed (a count of nobody, 0, is shown: it tells about no one).
2. Complementary (sums): where a figure is the sum of others (all domains = the sum of the
   domains; a year = the sum of its quarters; all plans = the plans per phase), and the
   total is published, the suppressed parts together must rest on ``k`` or more inwoners;
   otherwise the next smallest part is suppressed as well (or the total, if none is left).
   Then no suppressed figure can be computed from a total and the other parts.
3. Differencing: two published figures of the same measure whose groups of inwoners
   differ by 1 to k-1 inwoners would tell about those few when subtracted (asking for
   "all domains" and for "wonen" when one inwoner has no goal in wonen, or for a year and
   its last quarter). The figure with the smaller group is suppressed.

A figure frozen by an earlier run is ``locked``: its status cannot change, so the rules
suppress one of the new figures instead. Pure: no database, no web framework.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["Figure", "Relation", "suppress"]


@dataclass
class Figure:
    measure: str
    contributors: frozenset[str]
    value: float | None
    suppressed: bool = False
    locked: bool = False


@dataclass(frozen=True, slots=True)
class Relation:
    """``total`` is the sum of ``parts`` (keys of figures)."""

    total: Hashable
    parts: tuple[Hashable, ...]


def suppress(figures: Mapping[Any, Figure], relations: Iterable[Relation], *, k: int) -> None:
    """Mark figures suppressed in place, by the three rules above."""
    relations = [r for r in relations if r.total in figures]
    for figure in figures.values():
        # A count of nobody tells nothing about anyone, and hiding it would only hide its
        # neighbours too; a mean of nobody has no value to show.
        small = 0 < len(figure.contributors) < k or figure.value is None
        if not figure.locked and small:
            figure.suppressed = True
    by_measure: dict[str, list[Figure]] = {}
    for figure in figures.values():
        by_measure.setdefault(figure.measure, []).append(figure)
    changed = True
    while changed:
        changed = False
        for relation in relations:
            changed |= _complement(figures, relation, k=k)
        for group in by_measure.values():
            changed |= _differences(group, k=k)


def _hide(figure: Figure) -> bool:
    if figure.suppressed or figure.locked:
        return False
    figure.suppressed = True
    return True


def _complement(figures: Mapping[Any, Figure], relation: Relation, *, k: int) -> bool:
    total = figures[relation.total]
    if total.suppressed:
        return False
    parts = [figures[p] for p in relation.parts if p in figures]
    hidden = [p for p in parts if p.suppressed]
    if not hidden:
        return False
    covered: frozenset[str] = frozenset().union(*(p.contributors for p in hidden))
    if len(covered) >= k and len(hidden) >= 2:
        return False
    candidates = sorted(
        (p for p in parts if not p.suppressed and not p.locked and p.contributors),
        key=lambda p: (len(p.contributors), p.measure),
    )
    for candidate in candidates:
        if _hide(candidate):
            return True
    return _hide(total)


def _differences(group: list[Figure], *, k: int) -> bool:
    changed = False
    shown = [f for f in group if not f.suppressed]
    for i, first in enumerate(shown):
        for second in shown[i + 1 :]:
            if first.suppressed or second.suppressed:
                continue
            apart = (first.contributors - second.contributors) | (
                second.contributors - first.contributors
            )
            one_way = min(
                len(first.contributors - second.contributors) or k,
                len(second.contributors - first.contributors) or k,
            )
            if not apart or one_way >= k:
                continue
            smaller, larger = sorted((first, second), key=lambda f: (f.locked, len(f.contributors)))
            changed |= _hide(smaller) or _hide(larger)
    return changed
