"""Query plans of the partner's read and search, as the data and the grants grow.

No servers and no load: bulk-loads ``--inwoners`` (benchmarks/bulk_load.py, with
``--access`` access-log records each), gives every inwoner's Consent each ``--grants``
level in turn and prints the plan (``EXPLAIN QUERY PLAN`` on SQLite, ``EXPLAIN`` on
PostgreSQL, after ``ANALYZE``) of every statement the partner's ``GET Goal/{id}`` and
``GET Goal?patient=`` run on ``fhir_resource`` and ``consent_grant``, and any plan line
that reads a whole table. On PostgreSQL it also runs the first-page search for 400
inwoners, one after the other on one connection as a prepared statement, and counts the
plans PostgreSQL made for it: generic (one plan for every run) or custom (planned again
at every run, with its values). The throughput side is ``consent_read_search.py``.

    python benchmarks/partner_plans.py [--inwoners 2000] [--grants 1,100] [--database-url URL]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import psycopg
from sqlalchemy import text

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bulk_load
import consent_read_search as consent
import fhir_read_search as base

from vault.audit.runtime import open_runtime
from vault.consent.access import AccessContext
from vault.fhir.repository import Repository
from vault.kernel.config import Settings
from vault.kernel.runtime import Runtime


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--inwoners", type=int, default=2000)
    parser.add_argument("--access", type=int, default=20, help="access records per inwoner")
    parser.add_argument("--grants", default="1,100", help="grant rows per inwoner")
    parser.add_argument("--database-url", default="")
    parser.add_argument("--keep", action="store_true", help="keep the temporary data folder")
    args = parser.parse_args(argv)
    base.in_scratch(args, run, name="partner-plans")


def run(args: argparse.Namespace, data_dir: Path, url: str) -> None:
    levels = [int(x) for x in args.grants.split(",")]
    print("Regiekluis partner query plans")
    print(f"Revision  {base._vault_revision()}")
    print(f"Database  {url.split('://')[0]}")
    print(f"Command   {' '.join([Path(sys.executable).name, *sys.argv])}")
    settings = Settings(data_dir=data_dir, database_url=url)
    base.initialise(settings)
    runtime = open_runtime(settings)
    try:
        loaded = bulk_load.load(runtime, first=0, inwoners_=args.inwoners, access=args.access)
        print(f"{args.inwoners} inwoners, {loaded.resources} resources in {loaded.seconds:.0f} s")
        partner, partner_org = consent.register_partner(runtime)
        others = []
        repo = Repository(runtime, AccessContext.full("bench"))
        with runtime.db.write() as conn:
            for i in range(max(levels) - 1):
                body = {"resourceType": "Organization", "active": True, "name": f"Partner {i + 1}"}
                stored, _ = repo.create(conn, "Organization", body)
                others.append(f"Organization/{stored.resource_id}")
        vault = consent.scan(runtime, partner_org, others)
        context = consent.partner_context(runtime, partner.client_id, partner_org)
        sqlite = runtime.db.is_sqlite
        for level in levels:
            consent.set_grants(runtime, vault, level)
            with runtime.db.write() as conn:
                conn.execute(text("ANALYZE"))
            plan = consent.query_plans(runtime, context, vault)
            print(f"\n{args.inwoners} inwoners, {level} grant rows each:")
            print("\n".join(plan))
            bad = consent.full_scans(plan, sqlite=sqlite)
            print(f"full scans: {bad if bad else 'none'}")
            if not sqlite:
                print(plan_choice(runtime, context, vault, url))
    finally:
        runtime.close()


def plan_choice(
    runtime: Runtime, context: AccessContext, vault: consent.Vault, url: str, *, runs: int = 400
) -> str:
    """The plans PostgreSQL made for the first-page search of ``runs`` inwoners in turn, as
    the vault runs it (a prepared statement on one connection, ``plan_cache_mode`` auto),
    and its time a run. PostgreSQL makes a custom plan for the first five runs, then keeps
    a generic plan unless that is priced higher than they were on average; a custom plan
    is planned at every run."""
    repo = Repository(runtime, context)
    statements = []
    with runtime.db.read() as conn:
        for n in range(runs):
            patient = vault.patients[n % len(vault.patients)]
            query = repo.parse("Goal", [("patient", patient)], lenient=True)
            found = repo._compartment_statement(query, conn.dialect)
            if found is None:
                raise RuntimeError("the partner's search took no first-page statement")
            statements.append(found)
    if len({sql for sql, _ in statements}) != 1:
        raise RuntimeError("the first-page search changed its SQL from one inwoner to the next")
    with psycopg.connect(consent.conninfo(url), autocommit=True) as connection:
        cursor = connection.cursor()
        started = time.perf_counter()
        matches = 0
        for sql, params in statements:
            cursor.execute(sql, params, prepare=True)
            matches += len(cursor.fetchall())
        seconds = time.perf_counter() - started
        row = connection.execute(
            "SELECT generic_plans, custom_plans FROM pg_prepared_statements"
        ).fetchone()
    generic, custom = row if row is not None else (0, 0)
    if matches != 6 * runs:
        raise RuntimeError(f"{matches} Goals found in {runs} first pages, not {6 * runs}")
    return (
        f"first-page search, {runs} inwoners in turn on one connection: {generic} generic "
        f"and {custom} custom plans, {seconds / runs * 1e6:.0f} µs a run"
    )


if __name__ == "__main__":
    main()
