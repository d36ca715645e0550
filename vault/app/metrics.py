"""What an operator watches: ``/readyz`` and Prometheus ``/metrics`` (issue 13).

The metrics follow the Prometheus exposition format (text format 0.0.4) through the
``prometheus-client`` library. Labels carry route templates, statuses and outcomes only:
never a raw path, an id or anything else that could name an inwoner. ``/metrics`` is served
only when ``VAULT_METRICS=on`` (docs/operating.md, "Metrics and health"); counting is always
on because a counter costs less than asking whether to count.

Gauges that live in the database (notification queue depth, export jobs by status) are read
when scraped, so the code that writes those tables needs no hook. With ``vault serve
--workers N`` and ``PROMETHEUS_MULTIPROC_DIR`` set, the counters of all workers are summed
(prometheus-client's multiprocess mode).

A serving process also says in its log when nothing keeps PostgreSQL's statistics current
(``warn_without_autovacuum``): the vault is not unready, but its plans will go stale.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.metrics_core import Metric
from prometheus_client.multiprocess import MultiProcessCollector
from sqlalchemy import Connection, func, select
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from vault.audit.waiting import expecting, unexpected
from vault.fhir.export_models import ExportJob
from vault.fhir.router import plain_read, plain_search
from vault.migrations import alembic_config
from vault.notify.models import NotifyDelivery, NotifySubscription
from vault.store.models import SHARED_OWNER, DataKey

if TYPE_CHECKING:
    from vault.kernel.runtime import Runtime

__all__ = [
    "MetricsMiddleware",
    "metrics_response",
    "readiness",
    "served",
    "statistics_stay_current",
    "warn_without_autovacuum",
]

log = logging.getLogger(__name__)

# The route template of the plain read, which answers before the router (fhir/router.py).
PLAIN_READ_ROUTE = "/fhir/{resource_type}/{resource_id}"

REQUESTS = Counter(
    "vault_http_requests_total", "HTTP requests by route template and status", ["route", "status"]
)
LATENCY = Histogram(
    "vault_http_request_seconds",
    "Time from request to the end of the response, by route template",
    ["route"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0),
)

# Bound label lookups once: ``labels()`` checks and locks on every call, a tenth of a
# search's time on the event loop (docs/performance.md). Route templates and statuses are
# few, so the children are kept: (route, status) -> (count, latency).
_children: dict[tuple[str, int], tuple[Any, Any]] = {}


def _route_of(scope: Scope) -> str:
    route = scope.get("route")
    path = getattr(route, "path", None)
    # No route matched (a 404 from the router): one label for all such paths, never the path.
    return path if isinstance(path, str) else "(unmatched)"


async def served(
    app: Any, scope: Scope, receive: Receive, send: Send, *args: str, plain: bool
) -> None:
    """Run ``app`` (with ``args`` after the ASGI three) for one HTTP request and count it by
    route template and status."""
    started = time.perf_counter()
    status = 500
    # A partner's read or search hands the access log a record before it answers: counted,
    # so that the log's writer waits a moment for it before a group commit
    # (audit/waiting.py).
    mark = expecting() if plain or _is_search(scope) else None

    async def sending(message: Message) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]
        await send(message)

    try:
        await app(scope, receive, sending, *args)
    finally:
        if mark is not None:
            unexpected(mark)
        elapsed = time.perf_counter() - started
        route = PLAIN_READ_ROUTE if plain else _route_of(scope)
        children = _children.get((route, status))
        if children is None:
            children = _children[(route, status)] = (
                REQUESTS.labels(route=route, status=str(status)),
                LATENCY.labels(route=route),
            )
        children[0].inc()
        children[1].observe(elapsed)


def _is_search(scope: Scope) -> bool:
    """A search of a stored type: by GET, or by POST to ``_search``. (The plain read is
    told apart before.) Not history, ``$everything`` or an export's status, which may run
    long or hand nothing over: the writer would wait for them in vain."""
    if scope["method"] == "POST":
        path: str = scope["path"]
        return path.endswith("/_search") and "/fhir/" in path
    return plain_search(scope) is not None


class _DatabaseGauges:
    """Gauges read from the database when scraped: the queues are tables, not counters."""

    def __init__(self, runtime: Runtime) -> None:
        self._rt = runtime

    def collect(self) -> Iterator[Metric]:

        with self._rt.db.read() as conn:
            queued = conn.scalar(select(func.count()).select_from(NotifyDelivery)) or 0
            subs = conn.execute(
                select(NotifySubscription.status, func.count()).group_by(NotifySubscription.status)
            ).all()
            jobs = conn.execute(
                select(ExportJob.status, func.count()).group_by(ExportJob.status)
            ).all()
        depth = GaugeMetricFamily(
            "vault_notify_queue_depth", "Notifications waiting for delivery (all subscriptions)"
        )
        depth.add_metric([], queued)
        yield depth
        by_status = GaugeMetricFamily(
            "vault_notify_subscriptions", "Subscriptions by status", labels=["status"]
        )
        for status, count in subs:
            by_status.add_metric([str(status)], count)
        yield by_status
        exports = GaugeMetricFamily(
            "vault_export_jobs", "Bulk export jobs kept, by status", labels=["status"]
        )
        for status, count in jobs:
            exports.add_metric([str(status)], count)
        yield exports


def metrics_response(runtime: Runtime) -> Response:
    """The exposition of this process (or of all workers, in multiprocess mode)."""
    registry = CollectorRegistry(auto_describe=False)
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    else:
        registry = _with_default(registry)
    registry.register(_DatabaseGauges(runtime))
    return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)


def _with_default(registry: CollectorRegistry) -> CollectorRegistry:
    class _Default:
        def collect(self) -> Iterable[Metric]:
            return REGISTRY.collect()

    registry.register(_Default())
    return registry


def readiness(runtime: Runtime) -> JSONResponse:
    """``/readyz``: 200 when this process can serve, 503 naming the check that failed.

    The checks: the database answers, its schema is at the migrations' head, and the master
    key unwraps the vault's shared data key (so data keys can be loaded). Only check names and
    fixed words go out: never an exception's text, which could carry a URL or a path.
    """
    checks: dict[str, str] = {}
    try:
        with runtime.db.read() as conn:
            conn.exec_driver_sql("SELECT 1")
            checks["database"] = "ok"
            checks["migrations"] = "ok" if _at_head(conn) else "behind"
            checks["keys"] = "ok" if _keys_load(runtime, conn) else "unavailable"
    except Exception:
        checks.setdefault("database", "unreachable")
    ready = checks.get("database") == "ok" and all(v == "ok" for v in checks.values())
    for name in ("migrations", "keys"):
        checks.setdefault(name, "unknown")
    return JSONResponse(
        {"status": "ready" if ready else "not ready", "checks": checks},
        status_code=200 if ready else 503,
        headers={"cache-control": "no-store"},
    )


def statistics_stay_current(conn: Connection) -> bool:
    """False on a PostgreSQL server whose autovacuum is off. Nothing then runs ``ANALYZE``,
    so each connection keeps the plans it prepared while the tables were small: measured on
    a new vault filled through the API, the write's owner check read every Patient of the
    vault by type (51 µs at 125 inwoners, 686 µs at 1,000; docs/performance.md)."""
    if conn.dialect.name != "postgresql":
        return True
    return str(conn.exec_driver_sql("SHOW autovacuum").scalar()).lower() == "on"


def warn_without_autovacuum(runtime: Runtime) -> None:
    """For a serving process, whose connections keep their plans for as long as it runs: a
    warning in its log when nothing keeps the statistics current. A command of the command
    line ends before its plans could go stale, and its errors stay the first thing it says."""
    with runtime.db.read() as conn:
        current = statistics_stay_current(conn)
    if not current:
        log.warning(
            "PostgreSQL's autovacuum is off: the planner's statistics will not follow the"
            " vault as it grows, and plans made on small tables stay in use"
            " (docs/operating.md, PostgreSQL)"
        )


_heads: Sequence[str] | None = None


def _at_head(conn: Any) -> bool:
    global _heads
    from alembic.runtime.migration import MigrationContext
    from alembic.script import ScriptDirectory

    if _heads is None:
        _heads = tuple(sorted(ScriptDirectory.from_config(alembic_config("sqlite://")).get_heads()))
    current = tuple(sorted(MigrationContext.configure(conn).get_current_heads()))
    return current == _heads


def _keys_load(runtime: Runtime, conn: Any) -> bool:

    try:
        row = conn.execute(
            select(DataKey.wrapped, DataKey.master_key_id).where(DataKey.owner == SHARED_OWNER)
        ).one_or_none()
        if row is None or row.wrapped is None:
            return False
        runtime.keys.keyring.unwrap(row.wrapped, owner=SHARED_OWNER, key_id=row.master_key_id)
    except Exception:
        return False
    return True


class MetricsMiddleware:
    """Counts every HTTP request by route template and status (``served``), the plain read
    under its own template; the outermost middleware of the app."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        await served(self.app, scope, receive, send, plain=plain_read(scope) is not None)
