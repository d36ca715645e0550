"""Counters of the lower layers, exported by ``/metrics`` (``vault/app/metrics.py``).

The access log counts its decisions and group commits here, and the notification worker its
failed deliveries; labels carry outcomes only, never anything that could name an inwoner.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Protocol

from prometheus_client import Counter, Histogram

__all__ = ["DELIVERY_FAILURES", "Decided", "count_decisions", "group_committed"]


class Decided(Protocol):
    """Anything that records one access decision (an access-log record)."""

    @property
    def permitted(self) -> bool: ...


DECISIONS = Counter(
    "vault_access_decisions_total",
    "Access decisions written to the access log, by outcome",
    ["outcome"],
)
GROUP_SIZE = Histogram(
    "vault_access_log_group_records",
    "Access-log records per group commit",
    buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512),
)
GROUP_WAIT = Histogram(
    "vault_access_log_group_wait_seconds",
    "Time from the oldest request of a group joining the queue to its durable commit",
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0),
)
DELIVERY_FAILURES = Counter(
    "vault_notify_delivery_failures_total", "Notification deliveries that failed (each attempt)"
)

# Bound label lookups once: counting costs no dictionary work per record.
_PERMIT = DECISIONS.labels(outcome="permit")
_DENY = DECISIONS.labels(outcome="deny")


def count_decisions(records: Iterable[Decided]) -> None:
    """Count the access log's decisions by outcome (called as they are appended)."""
    permitted = denied = 0
    for record in records:
        if record.permitted:
            permitted += 1
        else:
            denied += 1
    if permitted:
        _PERMIT.inc(permitted)
    if denied:
        _DENY.inc(denied)


def group_committed(*, records: int, oldest_queued: float) -> None:
    """One group commit of the access log: its size and how long its oldest request waited."""
    GROUP_SIZE.observe(records)
    GROUP_WAIT.observe(time.perf_counter() - oldest_queued)
