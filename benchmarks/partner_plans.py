"""Query plans of the partner's read and search, as the data and the grants grow.

No servers and no load: bulk-loads ``--inwoners`` (benchmarks/bulk_load.py, with
``--access`` access-log records each), gives every inwoner's Consent each ``--grants``
level in turn and prints the plan (``EXPLAIN QUERY PLAN`` on SQLite, ``EXPLAIN`` on
PostgreSQL, after ``ANALYZE``) of every statement the partner's ``GET Goal/{id}`` and
``GET Goal?patient=`` run on ``fhir_resource`` and ``consent_grant``, and any plan line
that reads a whole table. The throughput side is ``consent_read_search.py``.

    python benchmarks/partner_plans.py [--inwoners 2000] [--grants 1,100] [--database-url URL]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from sqlalchemy import text

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bulk_load
import consent_read_search as consent
import fhir_read_search as base

from vault.audit.runtime import open_runtime
from vault.consent.access import AccessContext
from vault.fhir.repository import Repository
from vault.kernel.config import Settings


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
    finally:
        runtime.close()


if __name__ == "__main__":
    main()
