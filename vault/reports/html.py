"""The figures for a policy officer: one HTML page with charts, and the same in CSV.

Written by ``vault report``. The page stands alone: inline CSS and SVG charts, no script,
nothing fetched from elsewhere, so it opens from a file share or a mail attachment. Plain
Dutch; a hidden figure shows as a dash, with the reason under the table. Only published
figures appear: the page holds nothing the MeasureReports do not.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from html import escape

from vault.fhir.codesystems import LEVENSDOMEINEN
from vault.reports.collect import Report
from vault.reports.figures import ALL_DOMAINS, MEASURES

__all__ = ["report_csv", "report_html"]

DOMAIN_NAMES = {ALL_DOMAINS: "Alle domeinen", **LEVENSDOMEINEN}
HIDDEN = "\u2013"  # an en dash: "not shown"


def _number(value: float | None, kind: str) -> str:
    if value is None:
        return HIDDEN
    if kind == "count":
        return str(int(value))
    return f"{value:.1f}".replace(".", ",")


def report_csv(reports: Sequence[Report]) -> str:
    """One row per period, domain and figure; an empty value is a hidden figure."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["periode", "levensdomein", "cijfer", "omschrijving", "waarde", "k"])
    for report in reports:
        for domain in DOMAIN_NAMES:
            for measure, (label, _) in MEASURES.items():
                value = report.values.get((domain, measure))
                writer.writerow(
                    [
                        report.period.code,
                        domain,
                        measure,
                        label,
                        "" if value is None else f"{value:g}",
                        report.k,
                    ]
                )
    return out.getvalue()


def _bars(title: str, items: list[tuple[str, float | None]], *, kind: str) -> str:
    """A horizontal bar chart as inline SVG; hidden figures get no bar, only the dash."""
    shown = [v for _, v in items if v is not None]
    top = max(shown, default=0.0) or 1.0
    row, label_w, bar_w = 26, 150, 130
    height = row * len(items) + 10
    parts = [
        f'<svg role="img" aria-labelledby="{escape(_id(title))}" viewBox="0 0 320 {height}" '
        f'width="100%" preserveAspectRatio="xMinYMin meet">',
        f'<title id="{escape(_id(title))}">{escape(title)}</title>',
    ]
    for index, (label, value) in enumerate(items):
        y = 5 + index * row
        parts.append(
            f'<text x="0" y="{y + 17}" font-size="13" fill="#1a1a1a">{escape(label)}</text>'
        )
        if value is not None:
            width = max(2, round(bar_w * value / top))
            parts.append(
                f'<rect x="{label_w}" y="{y + 4}" width="{width}" height="16" fill="#1f5f8b"/>'
            )
            x = label_w + width + 4
        else:
            x = label_w
        parts.append(
            f'<text x="{x}" y="{y + 17}" font-size="13" fill="#1a1a1a">'
            f"{escape(_number(value, kind))}</text>"
        )
    parts.append("</svg>")
    return "".join(parts)


def _id(title: str) -> str:
    return "g-" + "".join(c if c.isalnum() else "-" for c in title.lower())


def _table(report: Report, measures: Sequence[str], caption: str) -> str:
    head = "".join(f'<th scope="col">{escape(MEASURES[m][0])}</th>' for m in measures)
    rows = []
    for domain, name in DOMAIN_NAMES.items():
        cells = "".join(
            f"<td>{escape(_number(report.values.get((domain, m)), MEASURES[m][1]))}</td>"
            for m in measures
        )
        rows.append(f'<tr><th scope="row">{escape(name)}</th>{cells}</tr>')
    return (
        f'<div class="scroll" tabindex="0" role="region" aria-label="{escape(caption)}">'
        f"<table><caption>{escape(caption)}</caption><thead><tr>"
        f'<th scope="col">Levensdomein</th>{head}</tr></thead>'
        f"<tbody>{''.join(rows)}</tbody></table></div>"
    )


_CSS = """
body{font-family:system-ui,sans-serif;margin:0 auto;max-width:60rem;padding:1rem;
line-height:1.5;color:#1a1a1a;background:#fff}
h1{font-size:1.6rem}h2{font-size:1.3rem;margin-top:2rem}h3{font-size:1.1rem}
table{border-collapse:collapse;margin:.5rem 0;font-size:.95rem}
th,td{border:1px solid #767676;padding:.3rem .5rem;text-align:left;vertical-align:top}
td{text-align:right}caption{text-align:left;font-weight:bold;padding:.3rem 0}
.scroll{overflow-x:auto;max-width:100%}.scroll:focus{outline:3px solid #1f5f8b}
.charts{display:grid;grid-template-columns:repeat(auto-fit,minmax(16rem,1fr));gap:1rem}
figure{margin:0}figcaption{font-weight:bold}
.note{background:#f3f3f3;border-left:4px solid #1f5f8b;padding:.5rem 1rem}
"""

_GROUPS = (
    (
        "Inwoners en plannen",
        ("inwoners", "plans", *[m for m in MEASURES if m.startswith("plans-")]),
    ),
    ("Doelen", ("goals-set", "goals-achieved", "goals-stopped")),
    ("Resultaat en werkwijze", ("score-change", "rating", "days-to-plan")),
    ("Wie helpt mee", ("organisations", "network")),
)


def report_html(
    reports: Sequence[Report], *, title: str, organization_name: str, open_periods: Sequence[str]
) -> str:
    """The page: what the figures are, then per period the charts and tables."""
    # Long on purpose: the report page top to bottom, in the order a reader sees it.
    k = reports[0].k if reports else 10
    sections = []
    # The year first: it is what a policy officer looks for; its quarters follow.
    for report in sorted(reports, key=lambda r: ("-Q" in r.period.code, r.period.code)):
        overall = report.values
        charts = [
            _bars(
                f"Plannen per fase, {report.period.code}",
                [
                    (
                        MEASURES[m][0].removeprefix("Plannen in fase ").capitalize(),
                        overall.get((ALL_DOMAINS, m)),
                    )
                    for m in MEASURES
                    if m.startswith("plans-")
                ],
                kind="count",
            ),
            _bars(
                f"Doelen, {report.period.code}",
                [
                    ("Gesteld", overall.get((ALL_DOMAINS, "goals-set"))),
                    ("Bereikt", overall.get((ALL_DOMAINS, "goals-achieved"))),
                    ("Gestopt", overall.get((ALL_DOMAINS, "goals-stopped"))),
                ],
                kind="count",
            ),
            _bars(
                f"Eigen cijfer voor de werkwijze per domein, {report.period.code}",
                [(name, overall.get((d, "rating"))) for d, name in DOMAIN_NAMES.items()],
                kind="mean",
            ),
        ]
        figures = "".join(f"<figure>{chart}</figure>" for chart in charts)
        tables = "".join(
            f"<h3>{escape(group)}</h3>" + _table(report, measures, f"{group}, {report.period.code}")
            for group, measures in _GROUPS
        )
        sections.append(
            f'<section aria-labelledby="p-{report.period.code}">'
            f'<h2 id="p-{report.period.code}">Periode {escape(report.period.code)}</h2>'
            f'<div class="charts">{figures}</div>{tables}</section>'
        )
    pending = ""
    if open_periods:
        pending = (
            '<p class="note">Nog niet afgesloten, dus nog geen cijfers: '
            + escape(", ".join(open_periods))
            + ". Cijfers komen er pas als een periode voorbij is.</p>"
        )
    empty = "" if reports else "<p>Er zijn nog geen afgesloten perioden met cijfers.</p>"
    return f"""<!doctype html>
<html lang="nl">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{escape(title)}</title>
<style>{_CSS}</style>
</head>
<body>
<header><h1>{escape(title)}</h1></header>
<main>
<p>Cijfers over de plannen van inwoners die {escape(organization_name)} toestemming gaven
om mee te tellen in een overzicht zonder namen. Er staat geen naam en geen plan in.</p>
<p class="note">Een streepje ({HIDDEN}) betekent: dit cijfer is verborgen. Het rust op minder
dan {k} inwoners, of je zou het anders kunnen uitrekenen uit de andere cijfers. Zo is
niemand te herkennen.</p>
{pending}{empty}
{"".join(sections)}
</main>
</body>
</html>
"""
