"""What a benchmark's server saw of its own tail: loaded into the servers with ``--probe``.

wrk measures a request from its socket; this measures, inside the server, where a request's
time went while wrk ran: each request inside the app (from the ASGI call to its last body
byte), each group commit of the access log (its length, its records, and how long its first
request waited from hand-over to answer), each SQLite checkpoint, each garbage collection
longer than half a millisecond, and how late the event loop woke from a 1 ms sleep (a loop
busy with other requests, or waiting for the GIL). Every event carries its wall-clock
instant, so :func:`summary` picks those of one measured row.

The server writes them as JSON to ``PROBE_OUT`` when its shutdown begins. It wraps private
methods of the vault (``AuditLog._write_group``, ``Database._checkpoint``): a measuring
tool, never loaded into a vault that serves anyone. It costs the server a few µs a request.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import os
import threading
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from fastapi import FastAPI

_LAG_TICK = 0.001  # the loop's probe sleeps this long
_LAG_SHOWN = 0.002  # and notes a wake-up later than this
_GC_SHOWN = 0.0005


def install(app: FastAPI) -> FastAPI:
    """``app`` with the probe, when ``PROBE_OUT`` names a file; else ``app`` unchanged."""
    out = os.environ.get("PROBE_OUT")
    if not out:
        return app
    kinds = ("requests", "groups", "checkpoints", "gcs", "lags")
    events: dict[str, list[Any]] = {kind: [] for kind in kinds}
    _time_collections(events["gcs"])
    _time_writes(events)
    build = app.build_middleware_stack
    started: list[asyncio.Task[None]] = []

    def timed_stack() -> Any:
        inner = build()

        async def timed(scope: Any, receive: Any, send: Any) -> None:
            if scope["type"] != "http":
                await inner(scope, receive, send)
                return
            if not started:
                started.append(asyncio.get_running_loop().create_task(_lags(events["lags"])))
            began = time.perf_counter()

            async def answered(message: Any) -> None:
                if message["type"] == "http.response.body" and not message.get("more_body"):
                    events["requests"].append((time.time(), time.perf_counter() - began))
                await send(message)

            await inner(scope, receive, answered)

        return timed

    app.build_middleware_stack = timed_stack  # type: ignore[method-assign]
    lifespan = app.router.lifespan_context

    @contextlib.asynccontextmanager
    async def written_at_shutdown(served: FastAPI) -> AsyncIterator[Any]:
        async with lifespan(served) as state:
            try:
                yield state
            finally:  # before the vault's own shutdown, which may take long
                Path(out).write_text(json.dumps(events))

    app.router.lifespan_context = written_at_shutdown
    return app


async def _lags(lags: list[Any]) -> None:
    while True:
        began = time.perf_counter()
        await asyncio.sleep(_LAG_TICK)
        late = time.perf_counter() - began - _LAG_TICK
        if late > _LAG_SHOWN:
            lags.append((time.time(), late))


def _time_collections(gcs: list[Any]) -> None:
    begun: dict[int, float] = {}

    def timed(phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            begun[threading.get_ident()] = time.perf_counter()
            return
        began = begun.pop(threading.get_ident(), None)
        if began is not None and time.perf_counter() - began > _GC_SHOWN:
            name = threading.current_thread().name
            gcs.append((time.time(), info["generation"], time.perf_counter() - began, name))

    gc.callbacks.append(timed)


def _time_writes(events: dict[str, list[Any]]) -> None:
    from vault.audit.log import AuditLog
    from vault.kernel.db import Database

    write_group = AuditLog._write_group

    def timed_group(self: AuditLog, batch: list[Any], *, settled: bool) -> None:
        began = time.perf_counter()
        try:
            write_group(self, batch, settled=settled)
        finally:
            done = time.perf_counter()
            records = sum(len(p.records) for p in batch)
            waited = done - batch[0].queued
            events["groups"].append((time.time(), done - began, records, settled, waited))

    checkpoint = Database._checkpoint

    def timed_checkpoint(self: Database, conn: Any) -> None:
        began = time.perf_counter()
        try:
            checkpoint(self, conn)
        finally:
            events["checkpoints"].append((time.time(), time.perf_counter() - began))

    AuditLog._write_group = timed_group  # type: ignore[method-assign]
    Database._checkpoint = timed_checkpoint  # type: ignore[method-assign]


def summary(path: Path, start: float, end: float) -> list[str]:
    """Lines on what the server saw between two wall-clock instants (one measured row)."""
    if not path.exists():
        return ["    probe: the server wrote nothing (it was stopped before its shutdown)"]
    events = json.loads(path.read_text())

    def within(kind: str) -> list[Any]:
        return [e for e in events[kind] if start <= e[0] <= end]

    def ms(values: list[float], share: float) -> str:
        ordered = sorted(values)
        if not ordered:
            return "-"
        return f"{1000 * ordered[min(len(ordered) - 1, int(share * len(ordered)))]:.1f}"

    def quantiles(values: list[float]) -> str:
        shares = ((0.5, "p50"), (0.99, "p99"), (0.999, "p99.9"), (1.0, "max"))
        return ", ".join(f"{name} {ms(values, share)}" for share, name in shares) + " ms"

    requests = [e[1] for e in within("requests")]
    lines = [f"    probe: {len(requests)} requests inside the app: {quantiles(requests)}"]
    groups = within("groups")
    if groups:
        records = sum(g[2] for g in groups) / len(groups)
        at_once = sum(1 for g in groups if g[3])
        lines.append(
            f"    probe: {len(groups)} group commits ({records:.1f} records each, {at_once} "
            f"stored at once): {quantiles([g[1] for g in groups])}; hand-over to answer "
            f"{quantiles([g[4] for g in groups])}"
        )
        checkpoints = [(e[0] - e[1], e[0]) for e in within("checkpoints")]
        longest = sorted(groups, key=lambda g: -g[1])[:5]
        described = []
        for ended, took, count, _, _ in longest:
            began = ended - took
            overlaps = any(a < ended and b > began for a, b in checkpoints)
            described.append(f"{1000 * took:.0f} ms ({count}{', checkpoint' if overlaps else ''})")
        lines.append(f"    probe: longest group commits: {', '.join(described)}")
        if checkpoints:
            lengths = [b - a for a, b in checkpoints]
            lines.append(f"    probe: {len(checkpoints)} checkpoints: {quantiles(lengths)}")
    lags = [e[1] for e in within("lags")]
    over = [sum(1 for lag in lags if lag > bound) for bound in (0.005, 0.010)]
    lines.append(
        f"    probe: event loop woke >2 ms late {len(lags)} times (>5 ms {over[0]}, >10 ms "
        f"{over[1]}), longest {ms(lags, 1.0)} ms"
    )
    for generation in (0, 1, 2):
        pauses = [e[2] for e in within("gcs") if e[1] == generation]
        if pauses:
            lines.append(
                f"    probe: {len(pauses)} collections of generation {generation} over 0.5 ms, "
                f"{1000 * sum(pauses):.1f} ms together, longest {ms(pauses, 1.0)} ms"
            )
    return lines
