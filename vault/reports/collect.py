"""Counting inwoners who allow it: facts gathered through the access decision, then logged.

Issue 14, section 1; design section 3. The figures for a gemeente's system rest on one
rule: an inwoner counts only while an active Consent of hers permits that gemeente's
Organization with the statistics purpose (``codes.STATISTICS_PURPOSE``). The vault finds
those inwoners in the compiled grants and then reads each one's plan with a repository
built for that Organization *and* that purpose, so the same SQL access decision as every
partner read decides what is counted (a goal the inwoner denied stays out). The reads are
not logged as reads: each counted inwoner's access log gets one entry, "counted in figures
for <client>", and nothing of her plan is named in it.

``figures_for`` freezes a closed period's figures at their first run (``models.py``); a
period that has not ended yet is refused, so the same figure is never published twice with
different groups of inwoners behind it.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, date, datetime
from typing import Any

import orjson
from sqlalchemy import Connection, and_, insert, or_, select
from sqlalchemy.exc import IntegrityError

from vault.audit.log import AuditRecord
from vault.consent.access import AccessContext
from vault.consent.models import ConsentGrant
from vault.fhir.codesystems import LEVENSDOMEIN
from vault.fhir.directory import find_or_create_organization
from vault.fhir.repository import Repository
from vault.fhir.search import MAX_ALTERNATIVES
from vault.kernel.errors import Unprocessable
from vault.kernel.runtime import Runtime, now_micros
from vault.oauth.scopes import permissions_from
from vault.reports.codes import (
    AGREED_FROM,
    EVALUATIE,
    PLAN_AGREED,
    PLAN_FASE,
    PLAN_PHASE,
    RATING_CODE,
    STATISTICS_PURPOSE,
)
from vault.reports.figures import (
    FigureKey,
    GoalFacts,
    InwonerFacts,
    Period,
    PlanFacts,
    compute,
)
from vault.reports.models import FrozenFigures
from vault.reports.suppress import Figure, suppress
from vault.store.registry import SCOPE_TYPES

__all__ = [
    "Report",
    "consenting",
    "figures_for",
    "organization_named",
    "statistics_context",
]

COUNTED_TYPES = ("CarePlan", "Goal", "Observation", "CareTeam")
# As many inwoners per search as a search parameter may name (vault/fhir/search.py).
_CHUNK = MAX_ALTERNATIVES


def statistics_context(*, organization: str, client_id: str | None) -> AccessContext:
    """The context the vault counts under: this Organization, the statistics purpose."""
    return AccessContext(
        subject=f"statistics:{client_id or 'vault'}",
        kind="system",
        organization=organization,
        client_id=client_id,
        permissions=permissions_from(
            [f"system/{t}.rs" for t in COUNTED_TYPES], context="system", known_types=SCOPE_TYPES
        ),
        purposes=frozenset({STATISTICS_PURPOSE}),
        patient_id=None,
        account_id=None,
        practitioner=None,
        representative=None,
    )


def organization_named(runtime: Runtime, name: str) -> str:
    """``Organization/<id>`` of the Organization called ``name``, made when there is none."""

    with runtime.db.write() as conn:
        return f"Organization/{find_or_create_organization(runtime, conn, name)}"


def consenting(conn: Connection, *, organization: str, now: int) -> list[str]:
    """Inwoners whose active Consent permits ``organization`` the statistics purpose now."""
    g = ConsentGrant.__table__.c
    rows = conn.execute(
        select(g.patient_id)
        .where(
            g.effect == "permit",
            g.grantee == organization,
            g.purpose == STATISTICS_PURPOSE,
            or_(g.action.is_(None), g.action == "access"),
            or_(g.valid_from.is_(None), g.valid_from <= now),
            and_(or_(g.valid_until.is_(None), g.valid_until > now)),
        )
        .distinct()
        .order_by(g.patient_id)
    ).scalars()
    return list(rows)


def _day(value: Any) -> date | None:
    if not isinstance(value, str) or len(value) < 10:
        return None
    try:
        return date.fromisoformat(value[:10])
    except ValueError:
        return None


def _codes(concept: Any, system: str) -> list[str]:
    return [
        str(c.get("code"))
        for c in (concept or {}).get("coding") or []
        if c.get("system") == system and c.get("code")
    ]


def _extension(resource: dict[str, Any], url: str) -> dict[str, Any]:
    return next((e for e in resource.get("extension") or [] if e.get("url") == url), {})


def _gather(
    repo: Repository, conn: Connection, patients: list[str]
) -> dict[str, dict[str, list[dict[str, Any]]]]:
    """Each inwoner's counted resources, a hundred inwoners per search (one search each
    took a report of 800 inwoners 20 s); the access decision runs in every one of them."""
    found: dict[str, dict[str, list[dict[str, Any]]]] = {
        pid: {t: [] for t in COUNTED_TYPES} for pid in patients
    }
    for start in range(0, len(patients), _CHUNK):
        wanted = ",".join(f"Patient/{pid}" for pid in patients[start : start + _CHUNK])
        for resource_type in COUNTED_TYPES:
            query = repo.parse(
                resource_type, [("patient", wanted), ("_count", "500")], lenient=False
            )
            while True:
                page = repo.search(conn, query)
                for stored in page.matches:
                    if stored.patient_id in found:
                        found[stored.patient_id][resource_type].append(
                            orjson.loads(stored.body or b"{}")
                        )
                if page.next_cursor is None:
                    break
                query.cursor = page.next_cursor
    return found


def _facts(patient_id: str, found: dict[str, list[dict[str, Any]]]) -> InwonerFacts | None:
    plans = found["CarePlan"]
    if not plans:
        return None
    teams = found["CareTeam"]
    members = {
        str((p.get("member") or {}).get("reference", ""))
        for team in teams
        for p in team.get("participant") or []
    }
    organisations = sum(1 for m in members if m.startswith("Organization/"))
    network = sum(1 for m in members if m.startswith("RelatedPerson/"))
    facts = InwonerFacts(key=patient_id)
    for plan in plans:
        created = (
            _day(plan.get("created"))
            or _day((plan.get("period") or {}).get("start"))
            or _day((plan.get("meta") or {}).get("lastUpdated"))
        )
        if created is None:
            continue
        coding = _extension(plan, PLAN_PHASE).get("valueCoding") or {}
        phase = str(coding["code"]) if coding.get("system") == PLAN_FASE else None
        # An agreed plan without its day stays out of the waiting time, not in at zero.
        agreed = _day(_extension(plan, PLAN_AGREED).get("valueDateTime"))
        if phase not in AGREED_FROM:
            agreed = None
        facts.plans.append(PlanFacts(created, phase, agreed, organisations, network))
    for goal in found["Goal"]:
        domains = [
            c for concept in goal.get("category") or [] for c in _codes(concept, LEVENSDOMEIN)
        ]
        when = _day(goal.get("statusDate")) or _day((goal.get("meta") or {}).get("lastUpdated"))
        achievement = [
            str(c.get("code")) for c in (goal.get("achievementStatus") or {}).get("coding") or []
        ]
        achieved = (
            when
            if ("achieved" in achievement or goal.get("lifecycleStatus") == "completed")
            else None
        )
        stopped = when if goal.get("lifecycleStatus") == "cancelled" else None
        facts.goals.append(
            GoalFacts(domains[0] if domains else "", _day(goal.get("startDate")), achieved, stopped)
        )
    for obs in found["Observation"]:
        value = obs.get("valueInteger")
        when = _day(obs.get("effectiveDateTime"))
        if not isinstance(value, int) or when is None:
            continue
        if RATING_CODE in _codes(obs.get("code"), EVALUATIE):
            facts.ratings.append((when, value))
            continue
        domains = _codes(obs.get("code"), LEVENSDOMEIN)
        if domains:
            facts.scores.setdefault(domains[0], []).append((when, value))
    return facts if facts.plans else None


class Report:
    """The published figures of one period: ``values`` maps (domain, measure) to a value
    or None (suppressed)."""

    def __init__(
        self, *, period: Period, k: int, frozen_at: int, values: dict[tuple[str, str], float | None]
    ) -> None:
        self.period = period
        self.k = k
        self.frozen_at = frozen_at
        self.values = values


def _today() -> date:
    return datetime.now(UTC).date()


def _load(conn: Connection, organization: str, codes: Iterable[str]) -> dict[str, FrozenFigures]:
    t = FrozenFigures.__table__.c
    rows = conn.execute(
        select(t.period, t.k, t.frozen_at, t.figures).where(
            t.organization == organization, t.period.in_(list(codes))
        )
    ).all()
    return {
        row.period: FrozenFigures(
            organization=organization,
            period=row.period,
            k=row.k,
            frozen_at=row.frozen_at,
            figures=row.figures,
        )
        for row in rows
    }


def figures_for(
    runtime: Runtime,
    *,
    period: Period,
    organization: str,
    client_id: str | None,
    k: int,
    today: date | None = None,
) -> list[Report]:
    """The frozen figures of ``period`` (and, for a year, its quarters), freezing any not
    frozen yet. Raises Unprocessable for a period that has not ended."""
    if period.end > (today or _today()):
        raise Unprocessable(
            f"Period {period.code} has not ended yet; figures exist only for closed periods",
            code="not-supported",
        )
    wanted = [*period.quarters, period]
    with runtime.db.read() as conn:
        stored = _load(conn, organization, [p.code for p in wanted])
    if all(p.code in stored for p in wanted):
        return [_report(p, stored[p.code]) for p in wanted]
    now = now_micros()
    # The statistics purpose's access decision; its reads are counts, logged as such below.
    repo = Repository(
        runtime, statistics_context(organization=organization, client_id=client_id), logged=False
    )
    with runtime.db.read() as conn:
        gathered = _gather(repo, conn, consenting(conn, organization=organization, now=now))
    people = [f for pid, found in gathered.items() if (f := _facts(pid, found)) is not None]
    frozen: dict[FigureKey, float | None] = {}
    for code, row in stored.items():
        for domain, measure, value in orjson.loads(row.figures):
            frozen[(code, domain, measure)] = value
    figures, relations = compute(people, wanted, frozen=frozen)
    suppress(figures, relations, k=k)
    try:
        _freeze(runtime, wanted, stored, figures, organization=organization, k=k, now=now)
    except IntegrityError:
        # Another run froze the same period a moment earlier: its figures are the ones.
        with runtime.db.read() as conn:
            stored = _load(conn, organization, [p.code for p in wanted])
        return [_report(p, stored[p.code]) for p in wanted]
    # One entry per inwoner whose plan was counted: for whom, never which parts of it.
    runtime.audit.record(
        [
            AuditRecord(
                patient_id=person.key,
                interaction="operation",
                permitted=True,
                client_id=client_id,
                organization=organization,
                account_id=None,
                query=f"Measure/$evaluate-measure?period={period.code}",
                purposes=[STATISTICS_PURPOSE],
                recorded=now,
            )
            for person in people
        ]
    )
    return [_report(p, stored[p.code]) for p in wanted]


def _freeze(
    runtime: Runtime,
    wanted: list[Period],
    stored: dict[str, FrozenFigures],
    figures: dict[FigureKey, Figure],
    *,
    organization: str,
    k: int,
    now: int,
) -> None:
    with runtime.db.write() as conn:
        for p in wanted:
            if p.code in stored:
                continue
            mine = {key: f for key, f in figures.items() if key[0] == p.code}
            payload = [
                [domain, measure, None if f.suppressed else f.value]
                for (_, domain, measure), f in sorted(mine.items())
            ]
            row = FrozenFigures(
                organization=organization,
                period=p.code,
                k=k,
                frozen_at=now,
                figures=orjson.dumps(payload),
            )
            conn.execute(
                insert(FrozenFigures).values(
                    organization=row.organization,
                    period=row.period,
                    k=row.k,
                    frozen_at=row.frozen_at,
                    figures=row.figures,
                )
            )
            stored[p.code] = row


def _report(period: Period, row: FrozenFigures) -> Report:
    values = {(d, m): v for d, m, v in orjson.loads(row.figures)}
    return Report(period=period, k=row.k, frozen_at=row.frozen_at, values=values)
