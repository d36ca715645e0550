"""CPU per access-log record by group-commit batch size, in process (SQLite or PostgreSQL).

A partner's read waits for its AuditEvent to be durable; ``AuditLog`` writes the records
that wait together in one transaction (group commit). This script appends ``--records``
partner-read records in batches of 1, 4, 16 and 64 through ``AuditLog.append`` (sealed
into their chain links, committed with ``synchronous=FULL``) and prints user and system CPU
and wall time per record: what a batch costs whatever its size, and what each record adds.
The last lines are what the append left for later: settling every record into its
AuditEvent resource with its search index (``AuditLog.settle``), in transactions of
``--settle`` records each: 32 as the writer does when idle or past its bound while busy
(PostgreSQL), 500 as a reader who may read the log or the operator does. The last line is
the other way a busy writer goes (SQLite): groups of 16 stored as AuditEvents in their own
commit (``append(settled=True)``), to set beside an append of 16 plus its settling.

    python benchmarks/access_log_cpu.py [--inwoners 50] [--records 3200] [--settle 32,128,500]
    python benchmarks/access_log_cpu.py --database-url postgresql+psycopg://postgres@127.0.0.1/test

On PostgreSQL (``--database-url``, a database of its own, dropped afterwards) the user and
system CPU are the vault's alone: what the backends spend shows in the wall time only. A
link there keeps its record's search values, and settling is one statement that PostgreSQL
runs (``audit/log.py``, ``_SETTLE_SQL``).

Instructions instead of seconds (other work on the machine does not move them): run it
under valgrind's callgrind with ``--callgrind``; the counters are zeroed just before and
dumped just after 20 group commits of 8 records (``callgrind_control``), so loading the
inwoners is not counted:

    valgrind --tool=callgrind --collect-atstart=yes --callgrind-out-file=cg.out \
        .venv/bin/python benchmarks/access_log_cpu.py --inwoners 3 --callgrind
    callgrind_annotate cg.out.2 | head -40     # the dump after the loop: its total
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import fhir_read_search as base

from vault.audit.log import AuditLog, AuditRecord
from vault.audit.runtime import open_runtime
from vault.kernel.config import Settings
from vault.kernel.runtime import now_micros


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--inwoners", type=int, default=50)
    parser.add_argument("--records", type=int, default=3200)
    parser.add_argument(
        "--settle", default="32,500", help="records settled per transaction, one run each"
    )
    parser.add_argument(
        "--callgrind", action="store_true", help="count 20 commits of 8 under callgrind"
    )
    parser.add_argument("--database-url", default="", help="PostgreSQL server; default SQLite")
    args = parser.parse_args(argv)
    data_dir = Path(tempfile.mkdtemp(prefix="rk-access-log-"))
    try:
        with base.fresh_database(args.database_url or None, data_dir) as url:
            _run(args, data_dir, url)
    finally:  # its database and its master key file
        shutil.rmtree(data_dir, ignore_errors=True)


def _run(args: argparse.Namespace, data_dir: Path, url: str) -> None:
    settings = Settings(data_dir=data_dir, database_url=url)
    base.initialise(settings)
    runtime = open_runtime(settings)
    loaded = base.load(runtime, inwoners=args.inwoners)
    log = AuditLog(runtime)
    engine = "SQLite" if runtime.db.is_sqlite else "PostgreSQL"
    print(f"Regiekluis access-log CPU, in process; {base._vault_revision()}")
    print(f"{engine}, {args.inwoners} inwoners; load average {os.getloadavg()[0]:.1f}")
    print(f"{'batch':>5} {'user µs':>8} {'system µs':>9} {'wall µs':>8}  per record")
    try:
        if args.callgrind:
            _batches(runtime, log, loaded, size=8, batches=5)  # warm: caches, statements
            control = ["callgrind_control", str(os.getpid())]
            subprocess.run([*control, "-z"], check=True, capture_output=True)
            _batches(runtime, log, loaded, size=8, batches=20)
            subprocess.run([*control, "-d"], check=True, capture_output=True)
            print("160 records in 20 commits of 8: see the callgrind dump")
            return
        for size in (1, 4, 16, 64):
            batches = max(1, args.records // size)
            user, system, wall, _ = _per_record(
                partial(_batches, runtime, log, loaded, size=size, batches=batches)
            )
            print(f"{size:>5} {user:>8.0f} {system:>9.0f} {wall:>8.0f}")
        # What was deferred: the records stored as AuditEvents (with their search index),
        # in transactions of each size: the writer's (32) and a reader's or the operator's
        # (500). The records of each size are appended first, in groups of 16, untimed.
        for n, size in enumerate(int(part) for part in args.settle.split(",")):
            if n:  # the first settles what the appends above left
                _batches(runtime, log, loaded, size=16, batches=max(1, args.records // 16))
            user, system, wall, count = _per_record(partial(log.settle_all, batch=size))
            print(
                f"{'settle':>6} {user:>7.0f} {system:>9.0f} {wall:>8.0f}"
                f"  ({count} records, {size} per transaction)"
            )
        user, system, wall, count = _per_record(
            lambda: _batches(
                runtime, log, loaded, size=16, batches=max(1, args.records // 16), settled=True
            )
        )
        print(
            f"{'once':>6} {user:>7.0f} {system:>9.0f} {wall:>8.0f}"
            f"  ({count} records stored as AuditEvents at once, 16 per commit)"
        )
    finally:
        runtime.close()


def _per_record(run: Callable[[], int]) -> tuple[float, float, float, int]:
    """User CPU, system CPU and wall time in µs per record of ``run``, which returns how
    many records it wrote; and that count."""
    before = resource.getrusage(resource.RUSAGE_SELF)
    started = time.perf_counter()
    count = run()
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_SELF)
    return (
        (after.ru_utime - before.ru_utime) / count * 1e6,
        (after.ru_stime - before.ru_stime) / count * 1e6,
        wall / count * 1e6,
        count,
    )


def _batches(
    runtime: object,
    log: AuditLog,
    loaded: object,
    *,
    size: int,
    batches: int,
    settled: bool = False,
) -> int:
    patients, careplans = loaded.patients, loaded.careplans  # type: ignore[attr-defined]
    for n in range(batches):
        records = [
            AuditRecord(
                patient_id=patients[(n + i) % len(patients)],
                interaction="read",
                permitted=True,
                client_id="bench-client",
                organization="Organization/bench",
                account_id=None,
                entities=[f"CarePlan/{careplans[(n + i) % len(careplans)]}"],
                recorded=now_micros(),
            )
            for i in range(size)
        ]
        with runtime.db.write() as conn:  # type: ignore[attr-defined]
            log.append(conn, records, settled=settled)
    return batches * size


if __name__ == "__main__":
    main()
