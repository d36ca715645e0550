"""CPU per access-log record by group-commit batch size, in process (SQLite).

A partner's read waits for its AuditEvent to be durable; ``AuditLog`` writes the records
that wait together in one transaction (group commit). This script appends ``--records``
partner-read records in batches of 1, 4, 16 and 64 through ``AuditLog.append`` (sealed,
indexed, chained, committed with ``synchronous=FULL``) and prints user and system CPU and
wall time per record: what a batch costs whatever its size, and what each record adds.

    python benchmarks/access_log_cpu.py [--inwoners 50] [--records 3200]
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import tempfile
import time
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
    args = parser.parse_args(argv)
    data_dir = Path(tempfile.mkdtemp(prefix="rk-access-log-"))
    settings = Settings(data_dir=data_dir, database_url=f"sqlite:///{data_dir / 'vault.db'}")
    base.initialise(settings)
    runtime = open_runtime(settings)
    loaded = base.load(runtime, inwoners=args.inwoners)
    log = AuditLog(runtime)
    print(f"Regiekluis access-log CPU, in process; {base._vault_revision()}")
    print(f"SQLite, {args.inwoners} inwoners; load average {os.getloadavg()[0]:.1f}")
    print(f"{'batch':>5} {'user µs':>8} {'system µs':>9} {'wall µs':>8}  per record")
    try:
        for size in (1, 4, 16, 64):
            batches = max(1, args.records // size)
            before = resource.getrusage(resource.RUSAGE_SELF)
            started = time.perf_counter()
            for n in range(batches):
                records = [
                    AuditRecord(
                        patient_id=loaded.patients[(n + i) % len(loaded.patients)],
                        interaction="read",
                        permitted=True,
                        client_id="bench-client",
                        organization="Organization/bench",
                        account_id=None,
                        entities=[f"CarePlan/{loaded.careplans[(n + i) % len(loaded.careplans)]}"],
                        recorded=now_micros(),
                    )
                    for i in range(size)
                ]
                with runtime.db.write() as conn:
                    log.append(conn, records)
            wall = time.perf_counter() - started
            after = resource.getrusage(resource.RUSAGE_SELF)
            count = batches * size
            user = (after.ru_utime - before.ru_utime) / count * 1e6
            system = (after.ru_stime - before.ru_stime) / count * 1e6
            print(f"{size:>5} {user:>8.0f} {system:>9.0f} {wall / count * 1e6:>8.0f}")
    finally:
        runtime.close()


if __name__ == "__main__":
    main()
