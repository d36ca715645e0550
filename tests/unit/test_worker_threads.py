"""The threads a search runs in (``kernel/threads.py``): at most N jobs at once, answers and
errors back to the awaiting task, its context variables, and a cancellation that waits for
the job it cannot stop."""

from __future__ import annotations

import asyncio
import contextvars
import threading
import time

import pytest

from vault.kernel.threads import WorkerThreads

CALLER: contextvars.ContextVar[str] = contextvars.ContextVar("caller", default="nobody")


def test_jobs_run_at_most_n_at_once_and_answer_their_own_task() -> None:
    workers = WorkerThreads(3, name="test")
    running, most, lock = 0, 0, threading.Lock()

    def job(n: int) -> tuple[int, str, str]:
        nonlocal running, most
        with lock:
            running += 1
            most = max(most, running)
        time.sleep(0.01)
        with lock:
            running -= 1
        return n, CALLER.get(), threading.current_thread().name

    async def one(n: int) -> tuple[int, str, str]:
        CALLER.set(f"caller-{n}")
        return await workers.run(lambda: job(n))

    async def scenario() -> list[tuple[int, str, str]]:
        return await asyncio.gather(*(one(n) for n in range(12)))

    answers = asyncio.run(scenario())
    workers.close()
    assert [(n, caller) for n, caller, _ in answers] == [(n, f"caller-{n}") for n in range(12)]
    assert {name for _, _, name in answers} <= {"test-0", "test-1", "test-2"}
    assert most == 3


def test_an_error_reaches_the_awaiting_task_and_the_threads_go_on() -> None:
    workers = WorkerThreads(1, name="test")

    def broken() -> None:
        raise LookupError("no such thing")

    async def scenario() -> int:
        with pytest.raises(LookupError, match="no such thing"):
            await workers.run(broken)
        return await workers.run(lambda: 42)

    assert asyncio.run(scenario()) == 42
    workers.close()


def test_a_cancelled_task_waits_for_its_job_then_is_cancelled() -> None:
    workers = WorkerThreads(1, name="test")
    done = threading.Event()

    def slow() -> str:
        time.sleep(0.2)
        done.set()
        return "finished"

    async def scenario() -> tuple[bool, bool]:
        task = asyncio.create_task(workers.run(slow))
        await asyncio.sleep(0.05)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        return done.is_set(), task.cancelled()

    finished_first, cancelled = asyncio.run(scenario())
    workers.close()
    assert finished_first  # the task ended only after the job did
    assert cancelled


def test_close_ends_the_threads_after_the_jobs_queued_before() -> None:
    workers = WorkerThreads(2, name="closing")

    async def scenario() -> list[int]:
        return await asyncio.gather(*(workers.run(lambda n=n: n) for n in range(4)))

    assert asyncio.run(scenario()) == [0, 1, 2, 3]
    workers.close()
    assert not [t for t in threading.enumerate() if t.name.startswith("closing-")]
