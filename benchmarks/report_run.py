"""Outcome reports: how long a report run takes for N consenting inwoners.

Issue 14. The script loads ``--inwoners`` fictional inwoners (``vault.reports.cohort``: a
plan, one to three goals, scores, a rating, a care team; about four in five say yes to
being counted) in process, then times, in process and on one thread:

1. the first run for a closed year: every consenting inwoner's plan read through the
   statistics access decision, the figures of the year and its four quarters computed,
   suppressed, frozen, and one access-log entry written per counted inwoner;
2. a second run of the same year, served from the frozen figures.

    python benchmarks/report_run.py [--inwoners 1000] [--database-url URL] [--keep]

A PostgreSQL database it makes is dropped afterwards. Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import fhir_read_search as base

from vault.audit.runtime import open_runtime
from vault.kernel.config import Settings
from vault.kernel.crypto import MasterKey
from vault.kernel.db import Database
from vault.migrations import upgrade
from vault.reports.cohort import load_cohort
from vault.reports.collect import figures_for, organization_named
from vault.reports.figures import parse_period


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--inwoners", type=int, default=1000)
    parser.add_argument("--database-url", default="", help="PostgreSQL URL; default SQLite")
    parser.add_argument("--keep", action="store_true", help="keep the data folder")
    return parser.parse_args(argv)


def bench(args: argparse.Namespace, data_dir: Path, url: str) -> None:
    settings = Settings(data_dir=data_dir, database_url=url)
    MasterKey.generate().write(settings.master_key_path)
    db = Database(url)
    try:
        upgrade(db.write_engine)
    finally:
        db.dispose()
    runtime = open_runtime(settings, bootstrap=True)
    try:
        gemeente = organization_named(runtime, "Gemeente Bench")
        started = time.perf_counter()
        load_cohort(runtime, organization=gemeente, partners=[], size=args.inwoners, year=2025)
        loaded = time.perf_counter() - started
        year = parse_period("2025")
        started = time.perf_counter()
        reports = figures_for(runtime, period=year, organization=gemeente, client_id=None, k=10)
        first = time.perf_counter() - started
        started = time.perf_counter()
        figures_for(runtime, period=year, organization=gemeente, client_id=None, k=10)
        again = time.perf_counter() - started
        counted = reports[-1].values.get(("alle", "inwoners"))
        values = [v for r in reports for v in r.values.values()]
        hidden = sum(1 for v in values if v is None)
        print("Regiekluis report run benchmark")
        print(f"Database  {url.split(':', 1)[0]}")
        print(f"Inwoners  {args.inwoners} loaded in {loaded:.1f} s; counted: {counted}")
        print(f"First run (read, compute, suppress, freeze, log): {first:.2f} s")
        print(f"Second run (frozen):                              {again * 1000:.1f} ms")
        print(f"Figures   {len(values)} in year + 4 quarters; hidden {hidden}")
    finally:
        runtime.close()


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    base.in_scratch(args, bench, name="report-bench")


if __name__ == "__main__":
    main()
