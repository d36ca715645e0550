"""Load the benchmark's inwoners in bulk (``vault.app.bulk_load``) and print the rate.

The same data as ``fhir_read_search.load`` (per inwoner: a Patient, 2 RelatedPersons, 6
Goals, a CareTeam, a CarePlan, 8 Observations and a Consent for one of four Organizations:
20 resources), plus ``--access`` access-log records per inwoner (a partner's reads of her
Goals, chained as the audit log chains them), written in batches instead of one request
at a time. ``load`` is what the other benchmarks call; run on its own it loads into a
fresh database and prints resources and records per second:

    python benchmarks/bulk_load.py [--inwoners 2000] [--access 100] [--database-url URL] [--jobs N]
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import sys
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import fhir_read_search as base

from vault.app.bulk_load import Inwoner, bulk_load
from vault.audit.log import AuditRecord
from vault.audit.runtime import open_runtime
from vault.kernel.config import Settings
from vault.kernel.runtime import Runtime, now_micros

ORG_IDS = [f"bench-org-{i}" for i in range(len(base.ORGANISATIONS))]
READER = "bench-bulk-reader"  # the client id the loaded access-log records name


def _with_id(body: dict[str, Any], resource_id: str) -> dict[str, Any]:
    return {**body, "id": resource_id}


# A Consent's body for (patient id, Consent id), instead of ``fhir_read_search._consent``.
ConsentBody = Callable[[str, str], dict[str, Any]]


def inwoners(
    first: int,
    count: int,
    *,
    access: int,
    orgs: Sequence[str] | None = None,
    consent: ConsentBody | None = None,
) -> Iterator[Inwoner]:
    """Inwoners ``first`` .. ``first + count - 1``, as ``fhir_read_search.load`` makes them;
    inwoner ``n``'s Consent names ``orgs[n % len(orgs)]`` (default ``ORG_IDS``), or is
    ``consent``'s."""
    orgs = ORG_IDS if orgs is None else orgs
    recorded = now_micros()
    for n in range(first, first + count):
        pid = str(uuid.uuid4())
        related = [str(uuid.uuid4()), str(uuid.uuid4())]
        goals = [str(uuid.uuid4()) for _ in range(6)]
        team = str(uuid.uuid4())
        resources = [
            _with_id(base._related_person(pid, "Buurvrouw Ans", "buurvrouw"), related[0]),
            _with_id(base._related_person(pid, "Zus Petra", "zus"), related[1]),
            *(_with_id(base._goal(pid, i), g) for i, g in enumerate(goals)),
            _with_id(base._careteam(pid, related, list(orgs)), team),
            _with_id(base._careplan(pid, goals, team, list(orgs)), str(uuid.uuid4())),
            *(_with_id(base._observation(pid, i), str(uuid.uuid4())) for i in range(8)),
            _consent(pid, orgs[n % len(orgs)], consent),
        ]
        records = [
            AuditRecord(
                patient_id=pid,
                interaction="read",
                permitted=True,
                client_id=READER,
                organization=f"Organization/{orgs[n % len(orgs)]}",
                account_id=None,
                entities=[f"Goal/{goals[i % len(goals)]}"],
                recorded=recorded + i,
            )
            for i in range(access)
        ]
        yield Inwoner(_with_id(base._patient(n), pid), resources, records)


def _consent(pid: str, org: str, consent: ConsentBody | None) -> dict[str, Any]:
    consent_id = str(uuid.uuid4())
    if consent is not None:
        return consent(pid, consent_id)
    return _with_id(base._consent(pid, org), consent_id)


def load(
    runtime: Runtime,
    *,
    first: int,
    inwoners_: int,
    access: int,
    batch: int = 100,
    jobs: int = 0,
    consent: ConsentBody | None = None,
) -> base.Loaded:
    """Load inwoners ``first`` .. in bulk; the Organizations too when ``first`` is 0;
    their Consents ``consent``'s when given (a function of a module: see ``in_processes``).

    On PostgreSQL ``jobs`` processes (0: one per core) load disjoint ranges of inwoners side
    by side, each with a runtime of its own: one process left PostgreSQL waiting for its
    next statement about half the time (docs/performance.md). SQLite takes one writer at a
    time: there it is one process."""
    started = time.perf_counter()
    total = 0
    if first == 0:
        shared = [
            {"resourceType": "Organization", "id": org, "active": True, "name": name}
            for org, name in zip(ORG_IDS, base.ORGANISATIONS, strict=True)
        ]
        total += bulk_load(runtime, [], shared=shared).resources
    jobs = workers(runtime, jobs, inwoners_)
    # The organisations as the caller set them (``export_profile.py`` names one partner in
    # every Consent): a new process would import the module's own list again.
    part = (access, batch, tuple(ORG_IDS), started, consent)
    size, rest = divmod(inwoners_, jobs)
    starts = [first + i * size + min(i, rest) for i in range(jobs)]
    ranges = [(start, size + (i < rest), *part) for i, start in enumerate(starts)]
    total += sum(in_processes(runtime, _load_range, ranges))
    return base.Loaded([], [], total, time.perf_counter() - started)


def load_for_one_partner(
    runtime: Runtime, *, inwoners_: int, org_id: str, name: str
) -> base.Loaded:
    """Inwoners 1 .. ``inwoners_`` in bulk, every Consent naming the one Organization
    ``org_id`` (called ``name``, loaded first instead of ``ORG_IDS``' four): that partner
    may read and export everything. Counts the Organization among the resources."""
    org = {"resourceType": "Organization", "id": org_id, "active": True, "name": name}
    shared = bulk_load(runtime, [], shared=[org]).resources
    ORG_IDS[:] = [org_id] * len(ORG_IDS)  # the processes ``load`` spawns get them too
    loaded = load(runtime, first=1, inwoners_=inwoners_, access=0)  # from 1: no orgs
    return base.Loaded([], [], shared + loaded.resources, loaded.seconds)


def workers(runtime: Runtime, jobs: int, items: int) -> int:
    """How many processes write ``items`` side by side: ``jobs`` (0: one per core) on
    PostgreSQL, one on SQLite, which takes one writer at a time; never more than ``items``,
    and at least one."""
    wanted = 1 if runtime.db.is_sqlite else jobs or os.cpu_count() or 1
    return max(1, min(wanted, items))


def in_processes(
    runtime: Runtime, work: Callable[..., int], parts: Sequence[tuple[Any, ...]]
) -> list[int]:
    """``work(runtime, *part)`` for each part, side by side, each in a process of its own
    with a runtime of its own (one part: here, with ``runtime``); the results in order.
    ``work`` is a function of a module, so a new process can import it."""
    if len(parts) == 1:
        return [work(runtime, *parts[0])]
    # Spawned, not forked: this process's runtime holds connections and threads.
    spawn = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(len(parts), mp_context=spawn) as pool:
        futures = [pool.submit(_with_runtime, runtime.settings, work, *part) for part in parts]
        return [future.result() for future in futures]


def _with_runtime(settings: Settings, work: Callable[..., int], *part: Any) -> int:
    runtime = open_runtime(settings)
    try:
        return work(runtime, *part)
    finally:
        runtime.close()


def _load_range(
    runtime: Runtime,
    first: int,
    count: int,
    access: int,
    batch: int,
    orgs: Sequence[str],
    started: float,
    consent: ConsentBody | None,
) -> int:
    """Inwoners ``first`` .. ``first + count - 1``, ``batch`` per transaction; returns how
    many resources. Prints its progress about every 10 s (``started``: the whole load's)."""
    reported = time.perf_counter()
    total = 0
    records = 0
    step = batch * 20  # report about every 20 batches
    for offset in range(0, count, step):
        done = bulk_load(
            runtime,
            inwoners(
                first + offset, min(step, count - offset), access=access, orgs=orgs, consent=consent
            ),
            batch=batch,
        )
        total += done.resources
        records += done.access_records
        if time.perf_counter() - reported > 10:
            reported = time.perf_counter()
            print(
                f"  {first + min(offset + step, count):>7} inwoners, {total:>8} resources, "
                f"{records:>9} access-log records, {reported - started:.0f} s",
                flush=True,
            )
    return total


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--inwoners", type=int, default=2000)
    parser.add_argument("--access", type=int, default=100, help="access records per inwoner")
    parser.add_argument("--batch", type=int, default=100, help="inwoners per transaction")
    parser.add_argument(
        "--jobs", type=int, default=0, help="processes on PostgreSQL (0: one per core)"
    )
    parser.add_argument("--database-url", default="")
    parser.add_argument("--keep", action="store_true", help="keep the temporary data folder")
    args = parser.parse_args(argv)
    base.in_scratch(args, run, name="bulk-load")


def run(args: argparse.Namespace, data_dir: Path, url: str) -> None:
    print("Regiekluis bulk load")
    print(f"Revision  {base._vault_revision()}")
    print(f"Database  {url.split('://')[0]}")
    print(f"Command   {' '.join([Path(sys.executable).name, *sys.argv])}")
    settings = Settings(data_dir=data_dir, database_url=url)
    base.initialise(settings)
    runtime = open_runtime(settings)
    try:
        loaded = load(
            runtime,
            first=0,
            inwoners_=args.inwoners,
            access=args.access,
            batch=args.batch,
            jobs=args.jobs,
        )
    finally:
        runtime.close()
    records = args.inwoners * args.access
    print(
        f"{args.inwoners} inwoners: {loaded.resources} resources and {records} access-log "
        f"records in {loaded.seconds:.1f} s = {loaded.resources / loaded.seconds:.0f} "
        f"resources/s + {records / loaded.seconds:.0f} records/s "
        f"({args.inwoners / loaded.seconds:.1f} inwoners/s)"
    )


if __name__ == "__main__":
    main()
