"""One partner's system-level ``$export``, run in-process, timed and optionally profiled.

No HTTP and no token: bulk-loads ``--inwoners`` (benchmarks/bulk_load.py, every Consent
naming the one partner, so the partner may export everything), records an export job as
the kick-off does and runs the job's worker function (``vault.fhir.export._run``) in this
thread, so cProfile sees it. Every page still goes through the partner's access decision
and is written to the access log, as in the server. Prints resources per second (wall and
CPU of the whole process, the access-log writer thread included) and the peak RSS of the
process (which includes the loading: an upper bound for the export).

    python benchmarks/export_profile.py [--inwoners 1000] [--profile] [--database-url URL]
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import resource
import sys
import time
from pathlib import Path
from typing import Any

from sqlalchemy import select

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bulk_load
import fhir_read_search as base

from vault.audit.runtime import open_runtime
from vault.consent.access import AccessContext
from vault.fhir import export
from vault.fhir.export_models import ExportFile, ExportJob
from vault.kernel.config import Settings
from vault.oauth.scopes import permissions_from
from vault.store.registry import RESOURCE_TYPES

PARTNER = "bench-org-1"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--inwoners", type=int, default=1000)
    parser.add_argument("--profile", action="store_true", help="print a cProfile table")
    parser.add_argument("--database-url", default="")
    parser.add_argument("--keep", action="store_true", help="keep the temporary data folder")
    args = parser.parse_args(argv)
    base.in_scratch(args, run, name="export-profile")


def run(args: argparse.Namespace, data_dir: Path, url: str) -> None:
    print("Regiekluis in-process export")
    print(f"Revision  {base._vault_revision()}")
    print(f"Database  {url.split('://')[0]}")
    print(f"Command   {' '.join([Path(sys.executable).name, *sys.argv])}")
    settings = Settings(data_dir=data_dir, database_url=url)
    base.initialise(settings)
    runtime = open_runtime(settings)
    try:
        loaded = bulk_load.load_for_one_partner(
            runtime, inwoners_=args.inwoners, org_id=PARTNER, name="MEE"
        )
        print(f"loaded {loaded.resources} resources in {loaded.seconds:.0f} s")
        if not runtime.db.is_sqlite:
            # What autovacuum does after a load like this one: without statistics the
            # planner takes every table for one row and filters a whole type per page.
            with runtime.db.write() as conn:
                conn.exec_driver_sql("ANALYZE")
            print("ANALYZE after loading")
        ctx = AccessContext(
            subject="client:bench",
            kind="system",
            client_id="bench",
            organization=f"Organization/{PARTNER}",
            permissions=permissions_from(
                ["system/*.rs"], context="system", known_types=RESOURCE_TYPES
            ),
            patient_id=None,
            account_id=None,
            purposes=frozenset(),
            practitioner=None,
            representative=None,
        )
        request = export.ExportRequest("system", export.resolve_types(ctx, "system", []), None)
        launched: list[Any] = []
        export._launch = lambda *job: launched.append(job)
        job_id = export.start(runtime, ctx, request, request_url="bench")
        profile = cProfile.Profile() if args.profile else None
        wall, cpu = time.perf_counter(), time.process_time()
        if profile:
            profile.enable()
        export._run(*launched[0])
        if profile:
            profile.disable()
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        with runtime.db.read() as conn:
            status = conn.scalar(select(ExportJob.status).where(ExportJob.id == job_id))
            count = sum(conn.scalars(select(ExportFile.count).where(ExportFile.job_id == job_id)))
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(
            f"export {status}: {count} resources in {wall:.1f} s wall = {count / wall:.0f}/s; "
            f"{cpu:.1f} s CPU = {cpu / count * 1e6:.0f} µs/resource; peak RSS {rss:.0f} MiB"
        )
        if profile:
            pstats.Stats(profile).sort_stats("cumtime").print_stats(30)
    finally:
        runtime.close()


if __name__ == "__main__":
    main()
