"""How a request waits for its access-log records to be durable (``audit/log.py``).

A request hands its records to the writer thread as a :class:`Pending` and waits: a thread
blocks on ``done`` (``AuditLog.record``); a coroutine awaits ``waiter`` on its event loop
(``AuditLog.record_async``). After each group commit the writer answers every request of
the group at once (:func:`finish`): each blocked thread through its Future, and each event
loop with one ``call_soon_threadsafe`` for all of its requests. A concurrent Future per
request, wrapped for the loop, cost two futures, a chain of callbacks and a wake-up each:
about a fifth of a partner read's time on the event loop (docs/performance.md).

A group commit costs about 300 µs of CPU whatever its size, and each record adds about 40
(``benchmarks/access_log_cpu.py``), so the writer does best to commit the records of every
request that is about to hand some over. :func:`expecting` counts those requests: a read
by id or a search from its start (``app/metrics.served``) until it hands its records over
(:func:`handed_over`) or ends. Before it commits, the writer waits a moment for them
(``AuditLog._gather``); with nothing expected it commits at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import Future
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from vault.audit.record import AuditRecord

__all__ = [
    "CLOSE",
    "Pending",
    "expected",
    "expecting",
    "finish",
    "handed_over",
    "unexpected",
    "until_none_expected",
    "wake_all",
]


@dataclass(eq=False)
class Pending:
    """One request's records, and how it learns they are durable (or why not)."""

    records: list[AuditRecord]
    done: Future[None] = field(default_factory=Future)  # a blocked thread's
    loop: asyncio.AbstractEventLoop | None = None  # an awaiting coroutine's loop ...
    waiter: asyncio.Future[None] | None = None  # ... and what it awaits there
    queued: float = field(default_factory=time.perf_counter)  # for the group-wait metric

    @classmethod
    def awaited(cls, records: list[AuditRecord], loop: asyncio.AbstractEventLoop) -> Pending:
        """Records a coroutine on ``loop`` will await (:meth:`wait`)."""
        return cls(records, done=_AWAITED, loop=loop, waiter=loop.create_future())

    async def wait(self, seconds: float) -> None:
        """Until the writer answers: raises its error, or TimeoutError after ``seconds``.
        A request cancelled or timed out meanwhile leaves the late answer unread."""
        waiter = self.waiter
        if waiter is None:
            raise RuntimeError("only records made with Pending.awaited are awaited")
        timer = waiter.get_loop().call_later(seconds, _time_out, waiter)
        try:
            await waiter
        finally:
            timer.cancel()


# Put on the queue by ``AuditLog.close``: the writer stops when it reaches it.
CLOSE = Pending([])
# The ``done`` of an awaited request: never set, never waited on (its ``waiter`` is).
_AWAITED: Future[None] = Future()


def finish(batch: Iterable[Pending], error: BaseException | None) -> None:
    """Tell every request of ``batch`` that its records are durable, or why not."""
    woken: dict[asyncio.AbstractEventLoop, list[Pending]] = {}
    for pending in batch:
        if pending.loop is None:
            if error is None:
                pending.done.set_result(None)
            else:
                pending.done.set_exception(error)
        else:
            woken.setdefault(pending.loop, []).append(pending)
    for loop, waiting in woken.items():
        with contextlib.suppress(RuntimeError):  # the loop has closed meanwhile
            loop.call_soon_threadsafe(_wake, waiting, error)


def _wake(waiting: list[Pending], error: BaseException | None) -> None:
    """On the event loop: the answers ``finish`` sent for one loop's requests."""
    for pending in waiting:
        waiter = pending.waiter
        if waiter is None or waiter.done():  # cancelled, or timed out (``Pending.wait``)
            continue
        if error is None:
            waiter.set_result(None)
        else:
            waiter.set_exception(error)


def _time_out(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_exception(TimeoutError())


class _Expected:
    """How many requests of this process may still hand the writer records (one count for
    the process: a process serves one vault). Event loops and threads both change it; the
    writer is woken once, when the last of them hands over, not at every record."""

    def __init__(self) -> None:
        self.count = 0
        self.changed = threading.Condition(threading.Lock())


_EXPECTED = _Expected()
# The open mark of the request this context serves: a list so that a thread the request
# runs in (a copied context) closes the same mark as the event loop would.
_MARK: ContextVar[list[bool] | None] = ContextVar("rk_audit_expected", default=None)


def expecting() -> list[bool]:
    """A request starts that will hand records over: counted until :func:`handed_over` in
    its context, or :func:`unexpected` with the mark returned here."""
    mark = [True]
    _MARK.set(mark)
    with _EXPECTED.changed:
        _EXPECTED.count += 1
    return mark


def handed_over() -> None:
    """The request of this context hands its records over (or has none): no longer counted."""
    mark = _MARK.get()
    if mark is not None:
        unexpected(mark)


def unexpected(mark: list[bool]) -> None:
    """The request of ``mark`` ended: no longer counted, if it still was."""
    with _EXPECTED.changed:
        if mark[0]:
            mark[0] = False
            _EXPECTED.count -= 1
            if not _EXPECTED.count:
                _EXPECTED.changed.notify_all()


def expected() -> int:
    """Requests that may still hand records over (read without the lock: a hint)."""
    return _EXPECTED.count


def until_none_expected(seconds: float, stop: Callable[[], bool]) -> None:
    """Wait until no request is expected, ``seconds`` at most, or until ``stop()`` (checked
    when woken: :func:`wake_all`)."""
    with _EXPECTED.changed:
        _EXPECTED.changed.wait_for(lambda: not _EXPECTED.count or stop(), seconds)


def wake_all() -> None:
    """Wake every writer waiting in :func:`until_none_expected` to check its ``stop``."""
    with _EXPECTED.changed:
        _EXPECTED.changed.notify_all()
