"""Outcome reports through the real HTTP API: who counts, what is hidden, what is logged.

A gemeente's system (a backend client with ``system/MeasureReport.r``, its own keys, its
token from the vault's token endpoint) asks ``$evaluate-measure``; the inwoners are written
in process. Each test has its own gemeente (a new Organization), so frozen figures of one
test never meet another's.
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

import httpx
import orjson
import pytest
from fhir.resources.R4B.measure import Measure
from fhir.resources.R4B.measurereport import MeasureReport
from fhirclient.models.measurereport import MeasureReport as ClientMeasureReport

from tests.factories import consent
from tests.integration.consent.conftest import Operator, Partner, PartnerFactory
from vault.consent.access import AccessContext
from vault.fhir.repository import Repository
from vault.kernel.runtime import Runtime
from vault.reports.cohort import Member, member

REPORTING = ["system/MeasureReport.r"]
YEAR = (("periodStart", "2025-01-01"), ("periodEnd", "2025-12-31"))


def quarter(q: int) -> tuple[tuple[str, str], ...]:
    start = date(2025, 3 * q - 2, 1)
    end = date(2026, 1, 1) if q == 4 else date(2025, 3 * q + 1, 1)
    return (
        ("periodStart", start.isoformat()),
        ("periodEnd", (end - timedelta(days=1)).isoformat()),
    )


def plan(
    *,
    domains: tuple[str, ...] = ("wonen",),
    day: date = date(2025, 2, 1),
    rating: int | None = 7,
    achieved: bool = False,
) -> Member:
    return Member(
        created=day,
        phase="samen-op-weg",
        agreed=day + timedelta(days=20),
        goals=[
            (
                d,
                day,
                "achieved" if achieved else None,
                day + timedelta(days=30) if achieved else None,
            )
            for d in domains
        ],
        scores=[(d, day, 4) for d in domains] + [(d, day + timedelta(days=40), 6) for d in domains],
        rating=(day + timedelta(days=50), rating) if rating is not None else None,
        organisations=(),
        network=1,
    )


def add(runtime: Runtime, plans: list[Member], *, consent_for: str | None) -> list[str]:
    repo = Repository(runtime, AccessContext.full("test-operator"))
    with runtime.db.write() as conn:
        return [
            member(repo, conn, p, name=f"Fictief {i}", consent_for=consent_for)
            for i, p in enumerate(plans)
        ]


def evaluate(
    gemeente: Partner, measure: str, period: tuple[tuple[str, str], ...] = YEAR
) -> dict[str, Any]:
    response = gemeente.fhir.get(f"/Measure/regiekluis-{measure}/$evaluate-measure", params=period)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def strata(report: dict[str, Any]) -> dict[str, float | None]:
    """Domain -> value (None: suppressed) of a summary MeasureReport."""
    found: dict[str, float | None] = {}
    for stratum in report["group"][0]["stratifier"][0]["stratum"]:
        codes = stratum["value"].get("coding") or [{"code": "alle"}]
        score = stratum.get("measureScore")
        if score is None:
            assert stratum["extension"][0]["valueCode"] == "masked"
        found[codes[0]["code"]] = None if score is None else score["value"]
    return found


@pytest.fixture
def gemeente(make_partner: PartnerFactory) -> Partner:
    return make_partner(scopes=REPORTING)


def test_only_inwoners_who_allow_statistics_are_counted(
    runtime: Runtime, gemeente: Partner, make_partner: PartnerFactory, operator: Operator
) -> None:
    counted = add(runtime, [plan() for _ in range(12)], consent_for=gemeente.organization)
    others = add(runtime, [plan() for _ in range(5)], consent_for=None)
    # An ordinary grant to the same Organization (its sociaal team reads the plan) is no
    # yes to statistics: these inwoners stay out of the figures.
    for pid in others:
        operator.create(consent(patient_id=pid, actors=[gemeente.organization]))
    figures = strata(evaluate(gemeente, "inwoners"))
    assert figures["alle"] == 12
    assert figures["wonen"] == 12
    assert figures["financien"] == 0  # a count of nobody tells about no one
    MeasureReport.model_validate(evaluate(gemeente, "rating"))
    ClientMeasureReport(evaluate(gemeente, "rating"))  # an outside client's R4 model, strict
    # Each counted inwoner's log says she was counted, for whom, and names nothing of her plan.
    for pid in counted[:2]:
        events = audit_events(runtime, pid)
        counts = [e for e in events if _purpose(e) == "HRESCH"]
        assert len(counts) == 1
        assert counts[0]["agent"][0]["who"]["reference"] == gemeente.organization
        assert all(
            "what" not in e or e["what"]["reference"].startswith("Patient/")
            for e in counts[0].get("entity", [])
        )
        assert not [
            e for e in events if e.get("subtype", [{}])[0].get("code") in ("read", "search-type")
        ]
    for pid in others:
        assert not [e for e in audit_events(runtime, pid) if _purpose(e) == "HRESCH"]


def _purpose(event: dict[str, Any]) -> str | None:
    for concept in event.get("purposeOfEvent") or []:
        for coding in concept.get("coding") or []:
            return str(coding.get("code"))
    return None


def audit_events(runtime: Runtime, patient_id: str) -> list[dict[str, Any]]:
    repo = Repository(runtime, AccessContext.full("test-operator"))
    runtime.audit.settle_all()  # a store-level search: the log's waiting records first
    with runtime.db.read() as conn:
        query = repo.parse(
            "AuditEvent", [("patient", f"Patient/{patient_id}"), ("_count", "200")], lenient=False
        )
        page = repo.search(conn, query)
    return [orjson.loads(s.body or b"{}") for s in page.matches]


def test_small_cells_are_suppressed_with_a_complement(runtime: Runtime, gemeente: Partner) -> None:
    # 12 in wonen, 3 in financien, 11 in relaties: financien is small; with the total
    # published, one more domain must go, or financien = total - the others.
    add(runtime, [plan(domains=("wonen",)) for _ in range(12)], consent_for=gemeente.organization)
    add(
        runtime, [plan(domains=("financien",)) for _ in range(3)], consent_for=gemeente.organization
    )
    add(
        runtime, [plan(domains=("relaties",)) for _ in range(11)], consent_for=gemeente.organization
    )
    goals = strata(evaluate(gemeente, "goals-set"))
    assert goals["financien"] is None
    assert goals["alle"] == 26
    hidden = [d for d, v in goals.items() if v is None and d != "alle"]
    shown = [d for d, v in goals.items() if v is not None and d != "alle"]
    assert "financien" in hidden
    assert [d for d in hidden if d in ("wonen", "relaties")], "no complementary cell"
    # Nothing suppressed can be recomputed: the total less the shown parts covers at least
    # two hidden cells that hold 10 or more inwoners together.
    assert goals["alle"] - sum(goals[d] or 0 for d in shown) >= 10


def test_overlapping_filters_cannot_single_out_one_inwoner(
    runtime: Runtime, gemeente: Partner
) -> None:
    # Ten inwoners with a goal in wonen and one with a goal only in gezondheid: "all
    # domains" minus "wonen" would be that one inwoner's rating.
    add(
        runtime,
        [plan(domains=("wonen",), rating=8) for _ in range(10)],
        consent_for=gemeente.organization,
    )
    add(runtime, [plan(domains=("gezondheid",), rating=2)], consent_for=gemeente.organization)
    rating = strata(evaluate(gemeente, "rating"))
    assert rating["alle"] == 7.5  # 10 x 8 and 1 x 2: the mean over all eleven
    assert rating["wonen"] is None  # else 11 x 7.5 - 10 x 8 = her 2
    people = strata(evaluate(gemeente, "inwoners"))
    assert people["alle"] is None or people["wonen"] is None


def test_adjacent_periods_cannot_single_out_one_inwoner(
    runtime: Runtime, gemeente: Partner
) -> None:
    # Eleven achieved a goal in the first quarter, one in the fourth: the year less the
    # first quarter would be that one inwoner.
    add(
        runtime,
        [plan(achieved=True, day=date(2025, 1, 10)) for _ in range(11)],
        consent_for=gemeente.organization,
    )
    add(runtime, [plan(achieved=True, day=date(2025, 10, 10))], consent_for=gemeente.organization)
    year = strata(evaluate(gemeente, "goals-achieved"))
    quarters = [strata(evaluate(gemeente, "goals-achieved", quarter(q))) for q in range(1, 5)]
    assert quarters[3]["wonen"] is None
    # Else year - Q1 = 1: the fourth quarter's one inwoner.
    assert year["wonen"] is None or quarters[0]["wonen"] is None
    assert year["wonen"] == 12  # the sum stays, its parts go


def test_a_revocation_after_the_period_closed_changes_no_figure(
    runtime: Runtime, gemeente: Partner, operator: Operator
) -> None:
    ids = add(runtime, [plan(rating=6) for _ in range(11)], consent_for=gemeente.organization)
    before = evaluate(gemeente, "rating")
    assert strata(before)["alle"] == 6
    # The last one revokes: her statistics Consent becomes inactive.
    repo = Repository(runtime, AccessContext.full("test-operator"))
    with runtime.db.read() as conn:
        found = repo.search(
            conn, repo.parse("Consent", [("patient", f"Patient/{ids[-1]}")], lenient=False)
        )
    body = orjson.loads(found.matches[0].body or b"{}")
    body["status"] = "inactive"
    operator.update(body)
    after = evaluate(gemeente, "rating")
    assert strata(after) == strata(before)
    assert after["date"] == before["date"]  # frozen at the first run, not recomputed
    # She was counted once, at that first run; the second run counted no one anew.
    assert len([e for e in audit_events(runtime, ids[-1]) if _purpose(e) == "HRESCH"]) == 1


def test_a_period_that_has_not_ended_is_refused(gemeente: Partner) -> None:
    today = date.today()
    start = date(today.year, 3 * ((today.month - 1) // 3) + 1, 1)
    end = date(start.year + (start.month == 10), (start.month + 3 - 1) % 12 + 1, 1) - timedelta(
        days=1
    )
    response = gemeente.fhir.get(
        "/Measure/regiekluis-inwoners/$evaluate-measure",
        params={"periodStart": start.isoformat(), "periodEnd": end.isoformat()},
    )
    assert response.status_code == 422
    assert response.json()["resourceType"] == "OperationOutcome"


@pytest.mark.parametrize(
    "params",
    [
        {},
        {"periodStart": "2025-01-01", "periodEnd": "2025-02-11"},
        {"periodStart": "kwartaal", "periodEnd": "2025-03-31"},
        {"periodStart": "2025-01-01", "periodEnd": "2025-12-31", "reportType": "subject-list"},
        {"periodStart": "2025-01-01", "periodEnd": "2025-12-31", "subject": "Patient/x"},
    ],
)
def test_bad_report_requests_get_an_operation_outcome(
    gemeente: Partner, params: dict[str, str]
) -> None:
    response = gemeente.fhir.get("/Measure/regiekluis-inwoners/$evaluate-measure", params=params)
    assert response.status_code == 400
    assert response.json()["resourceType"] == "OperationOutcome"


def test_measures_are_served_and_valid(gemeente: Partner) -> None:
    bundle = gemeente.fhir.get("/Measure").json()
    assert bundle["total"] == len(bundle["entry"]) > 10
    for entry in bundle["entry"]:
        Measure.model_validate(entry["resource"])
    one = gemeente.fhir.get("/Measure/regiekluis-rating")
    assert one.status_code == 200 and one.json()["url"].endswith("/rating")
    assert gemeente.fhir.get("/Measure/regiekluis-nothing").status_code == 404
    by_url = gemeente.fhir.get(
        "/Measure/$evaluate-measure",
        params={"measure": "https://regiekluis.nl/fhir/Measure/inwoners", **dict(YEAR)},
    )
    assert by_url.status_code == 200, by_url.text


@pytest.mark.parametrize("scopes", [["system/*.rs"], ["system/CarePlan.rs", "system/Goal.rs"]])
def test_only_the_reporting_scope_gets_reports(
    make_partner: PartnerFactory, scopes: list[str]
) -> None:
    partner = make_partner(scopes=scopes)
    response = partner.fhir.get("/Measure/regiekluis-inwoners/$evaluate-measure", params=dict(YEAR))
    assert response.status_code == 403
    assert partner.fhir.get("/Measure").status_code == 403


def test_no_token_no_report(vault: Any, http: httpx.Client) -> None:
    response = http.get(
        f"{vault.url}/fhir/Measure/regiekluis-inwoners/$evaluate-measure", params=dict(YEAR)
    )
    assert response.status_code == 401


def test_the_statistics_purpose_opens_no_plan_to_a_client(
    runtime: Runtime, make_partner: PartnerFactory
) -> None:
    # A client registered for the purpose HRESCH, of the Organization the inwoner said yes
    # to, still reads nothing of her plan: the purpose is the vault's own.
    partner = make_partner(scopes=["system/CarePlan.rs", "system/Goal.rs"], purposes=["HRESCH"])
    (pid,) = add(runtime, [plan()], consent_for=partner.organization)
    response = partner.fhir.get("/CarePlan", params={"patient": f"Patient/{pid}"})
    assert response.status_code == 200
    assert response.json().get("total", 0) == 0
    assert (
        partner.fhir.get("/Goal", params={"patient": f"Patient/{pid}"}).json().get("total", 0) == 0
    )
