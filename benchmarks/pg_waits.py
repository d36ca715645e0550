"""What PostgreSQL's backends wait for while a benchmark row runs: ``--waits``.

``server_probe.py`` sees a request's time from inside the vault; this sees it from the
database. A thread of the benchmark asks ``pg_stat_activity`` every 10 ms what
each client backend of the run's database is doing, and :func:`summary` counts the answers
of one measured row:

- for the backend of the access log's writer (any backend seen running a statement on
  ``audit_chain``), the share of the row it spent inside a transaction, and of that time
  the share it waited for the vault to send its next statement (``idle in transaction``)
  or worked (``active``, by wait event: none is CPU, ``IO``/``WALSync`` the flush, ...);
- the statement the writer's backend ran last before it waited for the vault;
- the same states for every other backend (the reads).

A backend that waits for the vault while it holds a transaction open waits for the
writer thread: for its turn on the server's core, for the GIL, or for its Python. The
answers are samples, not a trace: a state shorter than the interval is seen in proportion
to its length. The sampling runs in the benchmark's own process, so it shows in the row's
``other`` column: every 5 ms it put 11 to 17 % there, every 10 ms 10 and 12 % (5 to 9 %
without it; 7 Dec, PostgreSQL pinned to wrk's core).
"""

from __future__ import annotations

import collections
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import psycopg

_INTERVAL = 0.01
_ACTIVITY = (
    "SELECT pid, state, coalesce(wait_event_type, ''), coalesce(wait_event, ''),"
    " left(query, 40) FROM pg_stat_activity"
    " WHERE backend_type = 'client backend' AND datname = %s AND pid <> pg_backend_pid()"
)


@dataclass
class Sampler:
    """Samples ``pg_stat_activity`` of one database from :meth:`start` to :meth:`stop`."""

    conninfo: str
    database: str
    interval: float = _INTERVAL
    samples: list[tuple[float, list[tuple[Any, ...]]]] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="pg-waits", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None

    def _run(self) -> None:
        with psycopg.connect(self.conninfo, autocommit=True) as conn:
            while not self._stop.is_set():
                rows = conn.execute(_ACTIVITY, [self.database]).fetchall()
                self.samples.append((time.time(), rows))
                time.sleep(self.interval)

    def summary(self, start: float, end: float) -> list[str]:
        """What the backends did between ``start`` and ``end`` (wall clock), as lines."""
        window = [rows for at, rows in self.samples if start <= at <= end]
        if not window:
            return ["    waits: no samples in this row"]
        writers = {row[0] for rows in window for row in rows if "audit_chain" in row[4]}
        states: dict[str, collections.Counter[tuple[str, str]]] = {
            "writer": collections.Counter(),
            "reads": collections.Counter(),
        }
        before_wait: collections.Counter[str] = collections.Counter()
        in_transaction = 0
        for rows in window:
            busy = False
            for pid, state, wait_type, wait_event, query in rows:
                kind = "writer" if pid in writers else "reads"
                if kind == "writer" and state != "idle":
                    busy = True
                    if state.startswith("idle in transaction"):
                        before_wait[query.split("(")[0].strip()[:32]] += 1
                states[kind][(state, f"{wait_type}/{wait_event}" if wait_type else "")] += 1
            in_transaction += busy
        held_share = f"{100 * in_transaction / len(window):.0f} %"
        lines = [
            f"    waits: {len(window)} samples; "
            + (
                f"the access log's writer ({len(writers)} backend(s)) held a transaction "
                f"in {held_share} of them"
                if writers
                else "no backend wrote the access log"
            )
        ]
        for kind, counted in states.items():
            held = {k: v for k, v in counted.items() if k[0] != "idle"}
            total = sum(held.values())
            if not total:
                continue
            shares = ", ".join(
                f"{state}{' ' + wait if wait else ''} {100 * n / total:.0f} %"
                for (state, wait), n in sorted(held.items(), key=lambda item: -item[1])[:6]
            )
            lines.append(f"    waits: {kind}, when not idle: {shares}")
        if before_wait:
            total = sum(before_wait.values())
            last = ", ".join(
                f"{query} {100 * n / total:.0f} %" for query, n in before_wait.most_common(6)
            )
            lines.append(f"    waits: the writer waited for the vault after: {last}")
        return lines
