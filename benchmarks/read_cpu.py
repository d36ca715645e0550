"""CPU per read and search through the whole ASGI app, in process: no sockets, no wrk.

Over HTTP (``fhir_read_search.py``, ``consent_read_search.py``) the figures move with
whatever else runs on the machine; CPU time spent by this one process moves much less.
This script loads ``--inwoners`` inwoners with the data builders of ``fhir_read_search.py``
into a fresh SQLite file, starts the real app's lifespan, and sends ``--requests`` plain
reads (and a tenth as many ``Goal?patient=`` searches) straight into the ASGI app from
``--concurrency`` tasks at once, on one event loop (uvloop, like the server). It prints the
process CPU time (every thread: the event loop, SQLite's reader threads, the access-log
writer) per request, the best of ``--repeats`` rounds.

    python benchmarks/read_cpu.py                  # full access, CarePlan/{id}
    python benchmarks/read_cpu.py --partner        # a partner with a real token, Goal/{id}
    python benchmarks/read_cpu.py --partner --without-access-log
    python benchmarks/read_cpu.py --partner --database-url postgresql+psycopg://postgres@127.0.0.1/test
    python benchmarks/read_cpu.py --partner --statements   # the SQL each request sends
    python benchmarks/read_cpu.py --partner --only search   # searches only (for a profiler)
    python benchmarks/read_cpu.py --partner --sustained     # every record an AuditEvent
    python benchmarks/read_cpu.py --partner --sustained --latency --threads

``--partner`` registers MEE Veluwe's backend client (``consent_read_search.py``), gives
every inwoner's Consent one grant, fetches a real token from a vault server started for
that, and sends it on every request. ``--without-access-log`` replaces the wait for the
read's AuditEvent with nothing: it shows what the read costs apart from its access-log
record (never a way to run the vault). ``--sustained`` measures what a read costs under
steady load: once more than ``_MAX_WAITING`` records wait (``audit/log.py``), a vault
that never idles stores each record as an AuditEvent resource all the same, at once in its
group commit (SQLite) or settled in the writer's batches after it (PostgreSQL); this sets
that bound to 256, so every round pays for its own records' AuditEvents. Without it a round
pays only for what the writer settles meanwhile, which depends on the rounds before (the
best round usually none). Pin it to one
core (``taskset -c 0``) to compare with a server pinned the same way.

With ``--database-url`` (a PostgreSQL server) the data go to a database of their own,
dropped at the end, and the CPU of that database's backends is printed beside the
process's (``fhir_read_search._postgres_cpu_seconds``). ``--statements`` counts the SQL
statements each request sends (SQLAlchemy's ``before_cursor_execute`` on every engine,
the access-log writer's included) and prints them per request, most frequent first: round
trips are what a PostgreSQL read pays for, whatever the machine's load.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import gc
import os
import random
import resource
import shutil
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import uvloop
from prometheus_client import REGISTRY
from sqlalchemy import event, make_url
from sqlalchemy.engine import Engine

sys.path.insert(0, str(Path(__file__).resolve().parent))

import consent_read_search as partner_bench
import fhir_read_search as base

from vault.audit import log as log_module
from vault.audit.log import AuditLog
from vault.audit.runtime import open_runtime
from vault.kernel.config import Settings
from vault.kernel.db import Database

App = Callable[..., Any]


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


# The PostgreSQL database whose backends' CPU is counted (``--database-url``), else None.
POSTGRES_DATABASE: str | None = None
# Statements sent since the last reset, by their first 110 characters (``--statements``).
STATEMENTS: collections.Counter[str] = collections.Counter()
# Each request's wall time in seconds, and each garbage collection's (generation, seconds),
# of the round under way (``--latency``).
LATENCIES: list[float] = []
COLLECTIONS: list[tuple[int, float]] = []
_collection_started = [0.0]


def _timed_collection(phase: str, info: dict[str, Any]) -> None:
    if phase == "start":
        _collection_started[0] = time.perf_counter()
    else:
        COLLECTIONS.append((info["generation"], time.perf_counter() - _collection_started[0]))


def _thread_seconds() -> dict[str, float]:
    """CPU seconds (user + system) of each thread of this process, by its Python name; the
    kernel counts them per thread (``/proc/self/task/*/stat``, in clock ticks)."""
    tick = os.sysconf("SC_CLK_TCK")
    found: dict[str, float] = collections.defaultdict(float)
    for thread in threading.enumerate():
        try:
            with open(f"/proc/self/task/{thread.native_id}/stat") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
        except (FileNotFoundError, TypeError):  # ended meanwhile, or never started
            continue
        # Numbered threads of one kind (``sqlite-read-0``, ``-1``) are counted together.
        found[thread.name.rstrip("0123456789").rstrip("-_ ")] += (
            int(fields[11]) + int(fields[12])
        ) / tick
    return found


def _print_latency(label: str) -> None:
    """The round's latencies and collections (``--latency``)."""
    ordered = sorted(LATENCIES)
    n = len(ordered)
    if not n:
        return
    at = {name: ordered[min(n - 1, int(n * share))] * 1e3 for name, share in _QUANTILES}
    shown = "  ".join(f"{name} {ms:.2f}" for name, ms in at.items())
    print(f"{'':<24} latency ms: {shown}  max {ordered[-1] * 1e3:.1f}")
    by_generation: dict[int, list[float]] = collections.defaultdict(list)
    for generation, seconds in COLLECTIONS:
        by_generation[generation].append(seconds)
    collected = ", ".join(
        f"gen {g}: {len(v)}, longest {max(v) * 1e3:.2f} ms, {sum(v) * 1e3:.1f} ms in all"
        for g, v in sorted(by_generation.items())
    )
    print(f"{'':<24} garbage collections: {collected or 'none'}")


_QUANTILES = (("p50", 0.5), ("p90", 0.9), ("p99", 0.99), ("p99.9", 0.999))


def _backend_seconds() -> float:
    return base._postgres_cpu_seconds(POSTGRES_DATABASE) if POSTGRES_DATABASE else 0.0


def _count_statement(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
    STATEMENTS[" ".join(statement.split())[:110]] += 1


def _count_awaited_statements() -> None:
    """Count the statements awaited past SQLAlchemy (``Database.fetch_one_async``) too."""
    awaited = Database.fetch_one_async

    async def counted(self: Database, sql: str, params: Any) -> Any:
        STATEMENTS["(awaited) " + " ".join(sql.split())[:100]] += 1
        return await awaited(self, sql, params)

    Database.fetch_one_async = counted  # type: ignore[method-assign]


async def _request(app: App, path: str, query: bytes, headers: list[tuple[bytes, bytes]]) -> int:
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": query,
        "root_path": "",
        "headers": headers,
        "client": ("127.0.0.1", 40000),
        "server": ("127.0.0.1", 8000),
        "state": {},
    }
    status = 0

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]

    await app(scope, receive, send)
    return status


async def _measure(
    app: App, requests: list[tuple[str, bytes]], headers: list[tuple[bytes, bytes]], tasks: int
) -> tuple[float, float]:
    """CPU µs per request of this process, and of the PostgreSQL backends (0 on SQLite)."""

    async def worker(part: list[tuple[str, bytes]]) -> None:
        for path, query in part:
            started = time.perf_counter()
            status = await _request(app, path, query, headers)
            LATENCIES.append(time.perf_counter() - started)
            if status != 200:
                raise RuntimeError(f"{path}?{query.decode()} answered {status}")

    started, backends = _cpu_seconds(), _backend_seconds()
    await asyncio.gather(*(worker(requests[i::tasks]) for i in range(tasks)))
    # The access log's group commit of the last reads may still be under way.
    await asyncio.sleep(0.2)
    per = 1e6 / len(requests)
    return (_cpu_seconds() - started) * per, (_backend_seconds() - backends) * per


async def _run(
    app: App, args: argparse.Namespace, reads: list[str], patients: list[str], token: str | None
) -> None:
    # The lifespan: startup before the first request, shutdown after the last.
    inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    outbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    await inbox.put({"type": "lifespan.startup"})
    lifespan = asyncio.create_task(
        app({"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}}, inbox.get, outbox.put)
    )
    if (await outbox.get())["type"] != "lifespan.startup.complete":
        raise RuntimeError("the app did not start")
    headers = [(b"host", b"127.0.0.1"), (b"accept", b"application/fhir+json")]
    if token:
        headers.append((b"authorization", f"Bearer {token}".encode()))
    pick = random.Random(1)
    read_type = "Goal" if token else "CarePlan"
    rows = (
        (
            f"read {read_type}/{{id}}",
            lambda: (f"/fhir/{read_type}/{pick.choice(reads)}", b""),
            args.requests,
        ),
        (
            "search Goal?patient=",
            lambda: ("/fhir/Goal", f"patient={pick.choice(patients)}".encode()),
            max(1, args.requests // 10),
        ),
    )
    for label, make, count in rows:
        if args.only and not label.startswith(args.only):
            continue
        rounds = []
        for _ in range(args.repeats):
            requests = [make() for _ in range(count)]
            STATEMENTS.clear()
            LATENCIES.clear()
            COLLECTIONS.clear()
            threads = _thread_seconds()
            rounds.append(await _measure(app, requests, headers, args.concurrency))
            if args.latency:
                _print_latency(label)
            if args.threads:
                after = _thread_seconds()
                spent = {name: after[name] - threads.get(name, 0.0) for name in after}
                total = sum(spent.values()) or 1.0
                shown = ", ".join(
                    f"{name} {seconds / count * 1e6:.0f} µs ({seconds / total:.0%})"
                    for name, seconds in sorted(spent.items(), key=lambda kv: -kv[1])
                    if seconds > 0
                )
                print(f"{'':<24} CPU per request by thread: {shown}")
        shown = ", ".join(f"{r:.0f}" for r, _ in rounds)
        best = min(rounds)
        print(f"{label:<24} best {best[0]:7.1f} µs CPU per request  (rounds: {shown})")
        if POSTGRES_DATABASE:
            shown = ", ".join(f"{b:.0f}" for _, b in rounds)
            print(f"{'':<24} PostgreSQL backends {best[1]:7.1f} µs per request  (rounds: {shown})")
        if args.statements:
            total = sum(STATEMENTS.values())
            print(f"{'':<24} {total / count:.2f} SQL statements per request (last round):")
            for statement, times in STATEMENTS.most_common(12):
                print(f"{'':<26}{times / count:6.3f}  {statement}")
        groups = REGISTRY.get_sample_value("vault_access_log_group_records_count") or 0.0
        records = REGISTRY.get_sample_value("vault_access_log_group_records_sum") or 0.0
        if groups:
            print(
                f"{'':<24} access log so far: {records:.0f} records in {groups:.0f} group "
                f"commits, {records / groups:.1f} per commit"
            )
    await inbox.put({"type": "lifespan.shutdown"})
    await lifespan


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--inwoners", type=int, default=200)
    parser.add_argument("--requests", type=int, default=20000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--partner", action="store_true")
    parser.add_argument("--without-access-log", action="store_true")
    parser.add_argument("--database-url", default="", help="PostgreSQL server; default SQLite")
    parser.add_argument("--statements", action="store_true", help="count SQL per request")
    parser.add_argument(
        "--sustained",
        action="store_true",
        help="store each record as an AuditEvent as a vault under steady load does (docstring)",
    )
    parser.add_argument(
        "--only", choices=("read", "search"), default="", help="measure one kind of request"
    )
    parser.add_argument(
        "--latency",
        action="store_true",
        help="print each round's latency quantiles and its garbage collections",
    )
    parser.add_argument(
        "--threads", action="store_true", help="print each round's CPU per request by thread"
    )
    args = parser.parse_args(argv)
    if args.latency:
        gc.callbacks.append(_timed_collection)

    data_dir = Path(tempfile.mkdtemp(prefix="rk-read-cpu-"))
    try:
        with base.fresh_database(args.database_url or None, data_dir) as url:
            _main(args, data_dir, url)
    finally:  # every run left its folder behind (about 30 MB) until 7 Dec 2026
        shutil.rmtree(data_dir, ignore_errors=True)


def _main(args: argparse.Namespace, data_dir: Path, url: str) -> None:
    global POSTGRES_DATABASE
    if not url.startswith("sqlite"):
        # Its name, not the last part of the URL: a Unix socket's URL ends in its folder
        # (``postgresql+psycopg://postgres@/test?host=/var/run/postgresql``).
        POSTGRES_DATABASE = make_url(url).database
    os.environ["VAULT_DATA_DIR"] = str(data_dir)
    os.environ["VAULT_DATABASE_URL"] = url
    settings = Settings.from_env()
    base.initialise(settings)
    runtime = open_runtime(settings)
    loaded = base.load(runtime, inwoners=args.inwoners)
    reads, token = loaded.careplans, None
    if args.partner:
        partner, organization = partner_bench.register_partner(runtime)
        vault = partner_bench.scan(runtime, organization, [])
        partner_bench.set_grants(runtime, vault, 1)
        reads = vault.goals
        env = {k: v for k, v in os.environ.items() if not k.startswith("VAULT_")}
        env |= {
            "VAULT_DATA_DIR": str(data_dir),
            "VAULT_DATABASE_URL": url,
            "VAULT_BACKEND_TOKEN_SECONDS": "3600",
        }
        with base.Server(
            "token", "consent_read_search:partner_vault_app", cpu=0, env=env, log_dir=data_dir
        ) as server:
            token = partner.token(server.url)
    base.settle(runtime)
    runtime.close()
    if args.sustained:
        log_module._MAX_WAITING = 256  # past it from the first round on
    if args.without_access_log:

        async def nothing(self: AuditLog, records: Any) -> None:
            return None

        AuditLog.record_async = nothing  # type: ignore[method-assign]
    app = partner_bench.partner_vault_app() if token else base.vault_app()
    if args.statements:
        event.listen(Engine, "before_cursor_execute", _count_statement)
        _count_awaited_statements()
    print(f"Regiekluis read CPU, in process; {base._vault_revision()}")
    where = "PostgreSQL" if POSTGRES_DATABASE else "SQLite"
    print(
        f"{args.inwoners} inwoners on {where}; {'partner token' if token else 'full access'}"
        f"{', without the access-log write' if args.without_access_log else ''}"
        f"{', every record an AuditEvent (sustained)' if args.sustained else ''}; "
        f"{args.concurrency} concurrent tasks; load average {os.getloadavg()[0]:.1f}"
    )
    uvloop.run(_run(app, args, reads, loaded.patients, token))


if __name__ == "__main__":
    main()
