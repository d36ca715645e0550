"""What ``vault report`` and ``vault demo`` do for outcome reports (the commands stay thin).

``vault report --period 2026`` writes ``regiekluis-cijfers-2026.html`` and ``.csv``: the
figures of the year if it has ended, else of its quarters that have ended. The run is
logged in the access log of each inwoner it counts, for "vault report".
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path

from vault.app.demo import ORGANIZATIONS
from vault.kernel.runtime import Runtime
from vault.reports.cohort import load_cohort
from vault.reports.collect import Report, figures_for, organization_named
from vault.reports.figures import parse_period
from vault.reports.html import report_csv, report_html
from vault.store.models import ResourceRow

__all__ = ["load_demo_cohort", "write_report"]


def write_report(
    runtime: Runtime,
    *,
    period: str,
    out: Path,
    organization: str | None,
    today: date | None = None,
) -> list[Path]:
    """Write the page and the CSV; ValueError for a period that is not a year or quarter."""
    wanted = parse_period(period)
    today = today or datetime.now(UTC).date()
    name = organization or runtime.settings.report_organization
    reference = organization_named(runtime, name)
    reports: list[Report] = []
    still_open: list[str] = []
    for candidate in [wanted] if wanted.end <= today else wanted.quarters or [wanted]:
        if candidate.end > today:
            still_open.append(candidate.code)
            continue
        found = figures_for(
            runtime,
            period=candidate,
            organization=reference,
            client_id=None,
            k=runtime.settings.report_min_cell,
            today=today,
        )
        reports.extend(found)
    if wanted.end > today and wanted.quarters:
        still_open.append(wanted.code)
    out.mkdir(parents=True, exist_ok=True)
    stem = out / f"regiekluis-cijfers-{wanted.code}"
    page = stem.with_suffix(".html")
    page.write_text(
        report_html(
            reports,
            title=f"Resultaten van de plannen, {wanted.code}",
            organization_name=name,
            open_periods=still_open,
        ),
        encoding="utf-8",
    )
    table = stem.with_suffix(".csv")
    table.write_text(report_csv(reports), encoding="utf-8")
    return [page, table]


def load_demo_cohort(runtime: Runtime) -> int:
    """The demo's fictional cohort for the default gemeente (once); the number written."""
    reference = organization_named(runtime, runtime.settings.report_organization)
    partners = [o.reference for o in ORGANIZATIONS]
    before = _count(runtime)
    load_cohort(runtime, organization=reference, partners=partners, size=50, year=2025)
    load_cohort(
        runtime, organization=reference, partners=partners, size=40, seed=26, year=2026, first=51
    )
    return _count(runtime) - before


def _count(runtime: Runtime) -> int:
    from sqlalchemy import func, select

    with runtime.db.read() as conn:
        return int(conn.scalar(select(func.count()).select_from(ResourceRow)) or 0)
