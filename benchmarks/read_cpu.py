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

``--partner`` registers MEE Veluwe's backend client (``consent_read_search.py``), gives
every inwoner's Consent one grant, fetches a real token from a vault server started for
that, and sends it on every request. ``--without-access-log`` replaces the wait for the
read's AuditEvent with nothing: it shows what the read costs apart from its access-log
record (never a way to run the vault). Pin it to one core (``taskset -c 0``) to compare
with a server pinned the same way.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import resource
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import uvloop

sys.path.insert(0, str(Path(__file__).resolve().parent))

import consent_read_search as partner_bench
import fhir_read_search as base

from vault.audit.log import AuditLog
from vault.audit.runtime import open_runtime
from vault.kernel.config import Settings

App = Callable[..., Any]


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


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
) -> float:
    async def worker(part: list[tuple[str, bytes]]) -> None:
        for path, query in part:
            status = await _request(app, path, query, headers)
            if status != 200:
                raise RuntimeError(f"{path}?{query.decode()} answered {status}")

    started = _cpu_seconds()
    await asyncio.gather(*(worker(requests[i::tasks]) for i in range(tasks)))
    return (_cpu_seconds() - started) / len(requests) * 1e6


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
        rounds = []
        for _ in range(args.repeats):
            requests = [make() for _ in range(count)]
            rounds.append(await _measure(app, requests, headers, args.concurrency))
        shown = ", ".join(f"{r:.0f}" for r in rounds)
        print(f"{label:<24} best {min(rounds):7.1f} µs CPU per request  (rounds: {shown})")
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
    args = parser.parse_args(argv)

    data_dir = Path(tempfile.mkdtemp(prefix="rk-read-cpu-"))
    url = f"sqlite:///{data_dir / 'vault.db'}"
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
    if args.without_access_log:

        async def nothing(self: AuditLog, records: Any) -> None:
            return None

        AuditLog.record_async = nothing  # type: ignore[method-assign]
    app = partner_bench.partner_vault_app() if token else base.vault_app()
    print(f"Regiekluis read CPU, in process; {base._vault_revision()}")
    print(
        f"{args.inwoners} inwoners on SQLite; {'partner token' if token else 'full access'}"
        f"{', without the access-log write' if args.without_access_log else ''}; "
        f"{args.concurrency} concurrent tasks; load average {os.getloadavg()[0]:.1f}"
    )
    uvloop.run(_run(app, args, reads, loaded.patients, token))


if __name__ == "__main__":
    main()
