"""SQLite's hot reads on the database's own reader threads: off the event loop, each answer
to its own caller, an error only to the caller whose statement failed, and closed with the
database (and made again when it is used after that)."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support import sqlite_database
from vault.kernel import db as vault_db
from vault.kernel.db import Database


@pytest.fixture
def database(tmp_path: Path) -> Iterator[Database]:
    with sqlite_database(
        tmp_path / "readers.db",
        "CREATE TABLE numbers (n INTEGER PRIMARY KEY, word TEXT)",
        "INSERT INTO numbers VALUES " + ",".join(f"({n}, 'w{n}')" for n in range(500)),
    ) as db:
        yield db


def test_reads_run_off_the_loop_and_each_caller_gets_its_own_row(
    database: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    threads: set[str] = set()
    original = vault_db._fetch_dbapi

    def recording(connection: Any, sql: str, params: Any, **options: Any) -> Any:
        threads.add(threading.current_thread().name)
        return original(connection, sql, params, **options)

    monkeypatch.setattr(vault_db, "_fetch_dbapi", recording)

    async def scenario() -> list[Any]:
        return await asyncio.gather(
            *(
                database.fetch_one_async("SELECT n, word FROM numbers WHERE n = ?", (n,))
                for n in range(500)
            )
        )

    rows = asyncio.run(scenario())
    assert [tuple(r) for r in rows] == [(n, f"w{n}") for n in range(500)]
    assert threads and all(name.startswith("sqlite-read-") for name in threads)
    assert threading.current_thread().name not in threads


def test_statements_of_many_rows_and_of_one_mixed_each_get_their_own_answer(
    database: Database,
) -> None:
    """``fetch_all_async`` (a search's first page) shares the reader threads with
    ``fetch_one_async``: each caller gets every row of its own statement, or its one row."""
    many = "SELECT n FROM numbers WHERE n < ? ORDER BY n"
    one = "SELECT n, word FROM numbers WHERE n = ?"

    async def scenario() -> list[Any]:
        return await asyncio.gather(
            *(
                database.fetch_all_async(many, (n,))
                if n % 2
                else database.fetch_one_async(one, (n,))
                for n in range(200)
            )
        )

    answers = asyncio.run(scenario())
    for n, answer in enumerate(answers):
        if n % 2:
            assert [row[0] for row in answer] == list(range(n))
        else:
            assert tuple(answer) == (n, f"w{n}")
    assert asyncio.run(database.fetch_all_async(many, (0,))) == []


def test_a_failing_statement_fails_only_its_own_caller(database: Database) -> None:
    async def scenario() -> list[Any]:
        calls = []
        for n in range(60):
            sql = (
                "SELECT nope FROM numbers" if n % 7 == 3 else "SELECT word FROM numbers WHERE n = ?"
            )
            calls.append(database.fetch_one_async(sql, () if n % 7 == 3 else (n,)))
        return await asyncio.gather(*calls, return_exceptions=True)

    results = asyncio.run(scenario())
    for n, result in enumerate(results):
        if n % 7 == 3:
            assert isinstance(result, sqlite3.OperationalError)
        else:
            assert tuple(result) == (f"w{n}",)


def test_a_caller_that_gave_up_leaves_the_others_answered(database: Database) -> None:
    async def scenario() -> list[Any]:
        tasks = [
            asyncio.ensure_future(
                database.fetch_one_async("SELECT word FROM numbers WHERE n = ?", (n,))
            )
            for n in range(40)
        ]
        tasks[5].cancel()
        return await asyncio.gather(*tasks, return_exceptions=True)

    results = asyncio.run(scenario())
    assert isinstance(results[5], asyncio.CancelledError)
    assert [tuple(r) for n, r in enumerate(results) if n != 5] == [
        (f"w{n}",) for n in range(40) if n != 5
    ]


def test_dispose_stops_the_readers_and_a_later_read_makes_new_ones(database: Database) -> None:
    async def one(n: int) -> Any:
        return await database.fetch_one_async("SELECT word FROM numbers WHERE n = ?", (n,))

    assert tuple(asyncio.run(one(1))) == ("w1",)
    # This database's readers (other tests' databases may have theirs running too).
    readers = database._sqlite_readers
    assert readers is not None
    threads = list(readers._threads)
    assert threads and all(t.is_alive() for t in threads)
    database.dispose()
    assert not any(t.is_alive() for t in threads)
    assert database._sqlite_readers is None
    assert tuple(asyncio.run(one(2))) == ("w2",)  # made again on first use
