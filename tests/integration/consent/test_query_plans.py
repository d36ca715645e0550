"""Every statement of a partner's read, search and export reads its tables through an index.

Flat in size (issue 13) is a property of the query plans, not of a timing: a plan that
scans a table does work that grows with it. The family plan made a permit's compartment
``patient_id = row OR family_id = row`` (``consent/enforce._compartment``) while only
``patient_id`` had an index, so no index could serve the OR: every row a partner searched
or exported scanned every grant of the vault (an export page of 501 Goals took 103 ms at
300 inwoners, and more with every inwoner; 8 ms with ``ix_consent_grant_family``).

SQLite's planner is asked (``EXPLAIN QUERY PLAN``): without statistics it uses an index
wherever one fits, so a ``SCAN`` in its plan means none does. PostgreSQL's planner chooses
by statistics and prices, and on a test's few rows reads whole indexes where it would not
on real data (seen while writing this test, with ``enable_seqscan`` off and ``ANALYZE``):
its plans are checked at scale by ``benchmarks/partner_plans.py`` (docs/performance.md).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from sqlalchemy import Connection, event

from tests.factories import goal
from tests.integration.consent.conftest import Operator, grant
from tests.support import organization_context
from vault.fhir.repository import Repository
from vault.kernel.runtime import Runtime


@contextmanager
def statements(runtime: Runtime) -> Iterator[list[tuple[str, Any]]]:
    """The SELECTs the vault's engines send through SQLAlchemy while the block runs."""
    seen: list[tuple[str, Any]] = []

    def capture(_conn: Any, _cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        if statement.lstrip().upper().startswith("SELECT"):
            seen.append((statement, parameters))

    engines = {runtime.db.read_engine, runtime.db.write_engine}
    for engine in engines:
        event.listen(engine, "before_cursor_execute", capture)
    try:
        yield seen
    finally:
        for engine in engines:
            event.remove(engine, "before_cursor_execute", capture)


def plan_lines(conn: Connection, statement: str, parameters: Any) -> list[str]:
    """SQLite's plan of the statement, a line per step."""
    cursor = conn.connection.cursor()
    try:
        cursor.execute("EXPLAIN QUERY PLAN " + statement, parameters)
        return [str(row[-1]) for row in cursor.fetchall()]
    finally:
        cursor.close()


def bound(params: Any) -> list[Any]:
    """The values bound to a statement, whatever the driver's parameter style."""
    return list(params.values() if isinstance(params, dict) else params)


def table_scans(conn: Connection, statement: str, parameters: Any) -> list[str]:
    """The plan's lines that read a whole table instead of an index range."""
    return [line for line in plan_lines(conn, statement, parameters) if line.startswith("SCAN ")]


@pytest.fixture
def organization(operator: Operator) -> Iterator[str]:
    org_id = operator.create({"resourceType": "Organization", "name": "MEE"})
    yield f"Organization/{org_id}"
    operator.delete("Organization", org_id)  # the shared directory: other tests page it


def test_a_partners_read_search_and_export_scan_no_table(
    runtime: Runtime, operator: Operator, inwoner: str, organization: str
) -> None:
    if not runtime.db.is_sqlite:
        pytest.skip("PostgreSQL plans by statistics: benchmarks/partner_plans.py at scale")
    goal_id = operator.create(goal(patient_id=inwoner))
    operator.create(goal(patient_id=inwoner))
    operator.create(grant(inwoner, organization, classes=("Goal",)))
    repo = Repository(runtime, organization_context(organization))

    with statements(runtime) as sent, runtime.db.read() as conn:
        # A page that does not hold every match: the total has a statement of its own.
        query = repo.parse(
            "Goal",
            [("patient", f"Patient/{inwoner}"), ("_total", "accurate"), ("_count", "1")],
            lenient=False,
        )
        page = repo.search(conn, query)
        assert ([m.resource_id for m in page.matches], page.total) == ([goal_id], 2)
        # A sorted search takes the generic statement.
        by_id = repo.parse(
            "Goal", [("patient", f"Patient/{inwoner}"), ("_sort", "_id")], lenient=False
        )
        assert len(repo.search(conn, by_id).matches) == 2
        assert repo.read(conn, "Goal", goal_id).resource_id == goal_id
        assert repo.export_page(conn, repo.parse("Goal", [], lenient=False)).matches
        # The read by id and a first page of one inwoner's search run one statement each
        # on the driver's own cursor, past SQLAlchemy's events (``Reads._read_plan``,
        # ``Searches._compartment_statement``): ask for their plans too.
        plan = repo._read_plan("Goal", goal_id, conn.dialect)
        assert plan is not None
        sent.append((plan.sql, plan.params))
        first_page = repo._compartment_statement(query, conn.dialect)
        assert first_page is not None
        sent.append(first_page)

    deciding = [(sql, params) for sql, params in sent if "consent_grant" in sql]
    # the total, the sorted page, the export page, the read, a first page
    assert len(deciding) >= 5
    with runtime.db.read() as conn:
        scans = [
            (" ".join(sql.split())[:100], found)
            for sql, params in deciding
            if (found := table_scans(conn, sql, params))
        ]
    assert scans == []


def test_the_deny_check_reads_only_the_deny_rows_of_its_consent(
    runtime: Runtime, operator: Operator, inwoner: str, organization: str
) -> None:
    """A Consent naming many parties holds a permit row for each; each permit's deny check
    must not read them all (``ix_consent_grant_consent``, migration 0018)."""
    if not runtime.db.is_sqlite:
        pytest.skip("PostgreSQL plans by statistics: benchmarks/partner_plans.py at scale")
    goal_id = operator.create(goal(patient_id=inwoner))
    others = [f"Organization/other-{n}" for n in range(20)]
    operator.create(grant(inwoner, organization, *others, classes=("Goal",)))
    repo = Repository(runtime, organization_context(organization))
    with runtime.db.read() as conn:
        plan = repo._read_plan("Goal", goal_id, conn.dialect)
        assert plan is not None
        lines = plan_lines(conn, plan.sql, plan.params)
        assert repo.read(conn, "Goal", goal_id).resource_id == goal_id
    by_consent = [line for line in lines if "ix_consent_grant_consent" in line]
    assert by_consent
    assert all("consent_pk=? AND effect=?" in line for line in by_consent), by_consent


def test_a_search_writes_its_type_into_its_sql(
    runtime: Runtime, operator: Operator, inwoner: str, organization: str
) -> None:
    """A search's type is written into its SQL text, not bound: PostgreSQL plans a
    prepared statement once for all its runs only if that plan is priced no higher than
    one made with the values, and with ``resource_type = $1`` it priced a search for an
    inwoner's six Goals as if it read her hundreds of AuditEvents. Past a few hundred
    records per inwoner it then planned every run anew: 1.3 ms a search instead of 0.3
    (docs/performance.md)."""
    operator.create(goal(patient_id=inwoner))
    operator.create(grant(inwoner, organization, classes=("Goal", "CarePlan")))
    repo = Repository(runtime, organization_context(organization))
    patient = [("patient", f"Patient/{inwoner}")]
    with statements(runtime) as sent, runtime.db.read() as conn:
        texts = {}
        for name in ("Goal", "CarePlan"):
            first_page = repo._compartment_statement(
                repo.parse(name, patient, lenient=False), conn.dialect
            )
            assert first_page is not None
            sql, params = first_page
            assert f"fhir_resource.resource_type = '{name}'" in sql
            assert name not in bound(params)
            texts[name] = sql
        assert texts["Goal"] != texts["CarePlan"]
        first = repo.search(conn, repo.parse("Goal", patient, lenient=False))
        sorted_ = repo.search(conn, repo.parse("Goal", [*patient, ("_sort", "_id")], lenient=False))
        assert len(first.matches) == len(sorted_.matches) == 1
    searches = [(sql, params) for sql, params in sent if "consent_grant" in sql]
    assert searches  # the sorted search: SQLAlchemy's statement
    for sql, params in searches:
        assert "fhir_resource.resource_type = 'Goal'" in sql
        assert "Goal" not in bound(params)
