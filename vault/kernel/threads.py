"""Threads that run a request's blocking work for the event loop: a search's statements.

``anyio.to_thread.run_sync`` cost about 58 µs of CPU per hand-over on this project's
machine (a cancel scope, run variables, a capacity limiter, a future per side); a search
made one. Here a job is a tuple on a ``SimpleQueue`` and its answer one
``call_soon_threadsafe``: about 8 µs (docs/performance.md). The number of threads is the
number of jobs that run at once; the rest wait in the queue, in order.

A job cannot be stopped once a thread has it. A request cancelled meanwhile (its client
went away) waits for the job to end before the cancellation goes on, as anyio's
uncancellable hand-over did: what the job did must reach the request's own clean-up (a
search's access-log records above all) before that runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import queue
import threading
from collections.abc import Callable
from typing import Any, TypeVar

__all__ = ["WorkerThreads"]

T = TypeVar("T")


class WorkerThreads:
    """``threads`` threads, started at the first job, each running one job at a time."""

    def __init__(self, threads: int, *, name: str) -> None:
        self._count = max(1, threads)
        self._name = name
        self._jobs: queue.SimpleQueue[tuple[Any, ...] | None] = queue.SimpleQueue()
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()

    async def run(self, job: Callable[[], T]) -> T:
        """``job()`` in one of the threads, with this task's context variables."""
        loop = asyncio.get_running_loop()
        answer: asyncio.Future[T] = loop.create_future()
        self._start()
        self._jobs.put((loop, answer, contextvars.copy_context(), job))
        cancelled = False
        while True:
            try:
                result = await asyncio.shield(answer)
            except asyncio.CancelledError:
                if answer.done():
                    raise
                cancelled = True  # the thread goes on: wait for it, then be cancelled
                continue
            break
        if cancelled:
            raise asyncio.CancelledError
        return result

    def close(self) -> None:
        """Stop the threads once the jobs queued before are done."""
        with self._lock:
            threads, self._threads = self._threads, []
            for _ in threads:
                self._jobs.put(None)
        for thread in threads:
            thread.join(timeout=10)

    def _start(self) -> None:
        if self._threads:
            return
        with self._lock:
            if self._threads:
                return
            self._threads = [
                threading.Thread(target=self._serve, name=f"{self._name}-{n}", daemon=True)
                for n in range(self._count)
            ]
            for thread in self._threads:
                thread.start()

    def _serve(self) -> None:
        while (job := self._jobs.get()) is not None:
            loop, answer, context, work = job
            settled: tuple[Any, BaseException | None]
            try:
                settled = (context.run(work), None)
            except BaseException as exc:  # handed to the awaiting request
                settled = (None, exc)
            with contextlib.suppress(RuntimeError):  # the loop has closed meanwhile
                loop.call_soon_threadsafe(_settle, answer, *settled)


def _settle(answer: asyncio.Future[Any], result: Any, error: BaseException | None) -> None:
    if answer.done():  # the loop is shutting down and cancelled it
        return
    if error is None:
        answer.set_result(result)
    else:
        answer.set_exception(error)
