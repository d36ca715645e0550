"""What an access-log record costs as the log grows (SQLite): group commits of records
stored as AuditEvents at once, block by block.

A vault under steady load on SQLite stores each group's records as AuditEvent resources in
the group's own commit (``AuditLog.append(settled=True)``): the resource, its version, its
single values and its reference rows. A record names the inwoner, the partner and the
resources it was about: one for a read, six for a search of Goals, all of an inwoner's
resources in a file for a Bulk export's download. This script bulk-loads ``--inwoners``
inwoners, then appends ``--groups`` group commits of ``--records`` records, each about a
random inwoner and naming ``--entities`` resources, and prints the wall time per record
for each block of ten commits. A cost that grows from block to block is a cost that grows
with the log. Checkpoints run as in the server; with ``--no-checkpoint`` none runs, and the
pages each record wrote to the write-ahead log are counted too (the WAL then grows without
bound: some 30 KB a record past 30,000 records).

    python benchmarks/access_log_growth.py [--inwoners 1000] [--groups 60] [--records 1000]
    python benchmarks/access_log_growth.py --entities 1      # a partner's read
    python benchmarks/access_log_growth.py --compact         # links only, settled later
    python benchmarks/access_log_growth.py --no-checkpoint --groups 30   # WAL pages too

Pin it to one core (``taskset -c 1``); the checkpoint thread shares it, as in the server.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import sys
import tempfile
import time
import uuid
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bulk_load
import fhir_read_search as base
from sqlalchemy import select

from vault.audit.log import AuditRecord
from vault.audit.runtime import open_runtime
from vault.kernel.config import Settings
from vault.kernel.runtime import now_micros
from vault.store.models import ResourceRow

_BLOCK = 10  # group commits per printed line
_PAGE = 4096 + 24  # a WAL frame: the page and its header
_NEVER = 1e9  # seconds between checkpoints: none in the run


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--inwoners", type=int, default=1000)
    parser.add_argument("--groups", type=int, default=60, help="group commits, in all")
    parser.add_argument("--records", type=int, default=1000, help="records per group commit")
    parser.add_argument("--entities", type=int, default=8, help="resources each record names")
    parser.add_argument("--compact", action="store_true", help="append links only")
    parser.add_argument("--no-checkpoint", action="store_true", help="count the WAL's pages")
    args = parser.parse_args(argv)
    os.environ.pop("VAULT_MASTER_KEY", None)  # its vault uses its own key file
    data_dir = Path(tempfile.mkdtemp(prefix="rk-access-log-growth-"))
    try:
        run(args, data_dir)
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)


def run(args: argparse.Namespace, data_dir: Path) -> None:
    settings = Settings(data_dir=data_dir, database_url=f"sqlite:///{data_dir / 'vault.db'}")
    if args.no_checkpoint:
        settings = replace(settings, sqlite_checkpoint_interval=_NEVER)
    base.initialise(settings)
    runtime = open_runtime(settings)
    try:
        loaded = bulk_load.load_for_one_partner(
            runtime, inwoners_=args.inwoners, org_id="org-partner", name="Partner"
        )
        with runtime.db.read() as conn:
            patients = list(
                conn.scalars(
                    select(ResourceRow.resource_id).where(ResourceRow.resource_type == "Patient")
                )
            )
        print(f"Regiekluis access-log growth, in process; {base._vault_revision()}")
        print(
            f"SQLite, {args.inwoners} inwoners ({loaded.resources} resources, bulk-loaded); "
            f"{args.groups} group commits of {args.records} records naming {args.entities} "
            f"resources each, {'links only' if args.compact else 'stored as AuditEvents'}"
        )
        pages = args.no_checkpoint
        print(f"{'records':>9} {'µs/record':>10}" + (f" {'WAL pages/record':>17}" if pages else ""))
        wal = data_dir / "vault.db-wal"
        rng = random.Random(1)
        block_seconds, block_pages, last_size = 0.0, 0.0, _size(wal)
        for group in range(1, args.groups + 1):
            records = [
                AuditRecord(
                    patient_id=patient,
                    interaction="export",
                    permitted=True,
                    client_id="partner-client",
                    organization="Organization/org-partner",
                    account_id=None,
                    entities=[f"Observation/{uuid.uuid4()}" for _ in range(args.entities)],
                    query="$export-file/job/1",
                    recorded=now_micros(),
                )
                for patient in rng.sample(patients, min(args.records, len(patients)))
            ]
            started = time.perf_counter()
            with runtime.db.write() as conn:
                runtime.audit.append(conn, records, settled=not args.compact)
            block_seconds += time.perf_counter() - started
            size = _size(wal)  # grows by every frame while no checkpoint runs
            block_pages += (size - last_size) / _PAGE / len(records)
            last_size = size
            if group % _BLOCK == 0:
                per_record = block_seconds / (_BLOCK * len(records)) * 1e6
                line = f"{group * len(records):>9} {per_record:>10.0f}"
                print(line + (f" {block_pages / _BLOCK:>17.2f}" if pages else ""), flush=True)
                block_seconds, block_pages = 0.0, 0.0
    finally:
        runtime.close()


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0


if __name__ == "__main__":
    main()
