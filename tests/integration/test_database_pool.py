"""The PostgreSQL pools: no ping on a busy connection, a replaced one after a server-side close;
the async statements of the plain read: reused, replaced, bounded, and never in the way of a
loop that ends; no JIT compilation on any connection."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError

from vault.kernel import db as vault_db
from vault.kernel.db import Database
from vault.kernel.driver import execute_many, fetch_all

# PostgreSQL runs on every machine this project tests on (README); this behaviour exists
# only there, so the test uses it whichever database the rest of the suite runs on.
SERVER = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


@pytest.fixture
def database() -> Iterator[Database]:
    name = f"rk_pool_{uuid.uuid4().hex[:10]}"
    admin = create_engine(SERVER, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    db = Database(make_url(SERVER).set(database=name).render_as_string(hide_password=False))
    try:
        yield db
    finally:
        db.dispose()
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def _count_pings(db: Database, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every ping sent before a checkout: the vault's own and SQLAlchemy's pre-ping."""
    pings: list[str] = []
    own, dialect = vault_db._ping, db.write_engine.dialect

    def own_ping(dbapi_conn: object) -> None:
        pings.append("vault")
        own(dbapi_conn)

    def pre_ping(dbapi_conn: object) -> bool:
        pings.append("pre_ping")
        return True

    monkeypatch.setattr(vault_db, "_ping", own_ping)
    monkeypatch.setattr(dialect, "do_ping", pre_ping)
    return pings


def _backend_pid(db: Database) -> int:
    with db.read(snapshot=False) as conn:
        return int(conn.exec_driver_sql("SELECT pg_backend_pid()").scalar_one())


def test_a_connection_back_from_a_request_a_moment_ago_is_not_pinged(
    database: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = _backend_pid(database)  # opens the pooled connection
    pings = _count_pings(database, monkeypatch)
    assert _backend_pid(database) == first
    assert pings == []


def _terminate(pid: int) -> None:
    other = create_engine(SERVER, isolation_level="AUTOCOMMIT")
    with other.connect() as conn:
        assert conn.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid}).scalar()
    other.dispose()


def test_a_connection_the_server_closed_while_idle_is_replaced_before_use(
    database: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = _backend_pid(database)
    # The pooled connection dies while it idles (a server restart, a firewall).
    _terminate(first)
    monkeypatch.setattr(vault_db, "_PING_AFTER_IDLE_SECONDS", 0.0)
    pings = _count_pings(database, monkeypatch)
    time.sleep(0.05)  # lets the terminated backend go; not a timing assertion
    second = _backend_pid(database)
    assert second != first
    assert pings[0] == "vault"


PID = "SELECT pg_backend_pid()"


def test_async_statements_reuse_their_connection_and_replace_one_the_server_closed(
    database: Database,
) -> None:
    async def scenario() -> tuple[int, int, int]:
        first = (await database.fetch_one_async(PID, ()))[0]
        again = (await database.fetch_one_async(PID, ()))[0]
        await asyncio.to_thread(_terminate, first)
        await asyncio.sleep(0.05)  # lets the terminated backend go; not a timing assertion
        replaced = (await database.fetch_one_async(PID, ()))[0]
        await database.close_async()
        return first, again, replaced

    first, again, replaced = asyncio.run(scenario())
    assert again == first  # kept between statements: no connect per read
    assert replaced != first  # the read still answered, on a new connection


def test_async_statements_never_open_more_connections_than_their_slots(
    database: Database,
) -> None:
    async def scenario() -> list[int]:
        sql = "SELECT pg_backend_pid(), pg_sleep(0.02)"
        rows = await asyncio.gather(*(database.fetch_one_async(sql, ()) for _ in range(60)))
        await database.close_async()
        return [row[0] for row in rows]

    pids = asyncio.run(scenario())
    assert len(pids) == 60
    assert 1 < len(set(pids)) <= 20  # concurrent, and queued beyond the 20 slots


def test_a_loop_that_ends_without_closing_them_is_not_held_up(database: Database) -> None:
    """An app served without its lifespan (httpx.ASGITransport) never closes them."""

    async def read() -> int:
        return int((await database.fetch_one_async(PID, ()))[0])

    pid = asyncio.run(read())  # returns: nothing of the vault's still runs on that loop
    database.dispose()  # closes what that loop left behind
    time.sleep(0.05)
    other = create_engine(SERVER, isolation_level="AUTOCOMMIT")
    with other.connect() as conn:
        alive = conn.execute(
            text("SELECT count(*) FROM pg_stat_activity WHERE pid = :pid"), {"pid": pid}
        ).scalar()
    other.dispose()
    assert alive == 0


def test_every_connection_runs_without_jit(database: Database) -> None:
    """PostgreSQL compiled an ``$export`` page to machine code before running it: 56 of its
    60 ms (docs/performance.md). Every kind of connection the vault opens turns that off."""

    async def on_the_loop() -> str:
        (setting,) = await database.fetch_one_async("SHOW jit", ())
        await database.close_async()
        return str(setting)

    with database.write() as conn:
        written = conn.exec_driver_sql("SHOW jit").scalar_one()
    with database.read() as conn:
        read = conn.exec_driver_sql("SHOW jit").scalar_one()
    with database.read(snapshot=False) as conn:
        statement = conn.exec_driver_sql("SHOW jit").scalar_one()
    assert (written, read, statement, asyncio.run(on_the_loop())) == ("off",) * 4


def test_a_read_block_keeps_the_statements_its_connection_prepared(database: Database) -> None:
    """psycopg forgets every prepared statement at a ROLLBACK: a read block that ended in
    one planned each of its statements anew on every request (docs/performance.md)."""
    statement = text("SELECT count(*) FROM pg_class WHERE relname = :name")
    for _ in range(8):  # one pooled connection: each block has the one before's
        with database.read() as conn:
            conn.execute(statement, {"name": "pg_type"}).scalar_one()
    with database.read() as conn:
        prepared = conn.exec_driver_sql(
            "SELECT generic_plans + custom_plans FROM pg_prepared_statements"
            " WHERE statement LIKE 'SELECT count(*) FROM pg_class%%'"
        ).scalar_one_or_none()
    assert prepared is not None and prepared >= 2


def test_a_read_block_is_one_read_only_snapshot(database: Database) -> None:
    with database.write() as conn:
        conn.exec_driver_sql("CREATE TABLE seen (n integer)")
    with database.read() as conn:
        before = conn.exec_driver_sql("SELECT count(*) FROM seen").scalar_one()
        with database.write() as other:  # committed while the block is open
            other.exec_driver_sql("INSERT INTO seen VALUES (1)")
        assert conn.exec_driver_sql("SELECT count(*) FROM seen").scalar_one() == before == 0
    with database.read() as conn:
        assert conn.exec_driver_sql("SELECT count(*) FROM seen").scalar_one() == 1
        with pytest.raises(DBAPIError, match="read-only transaction"):
            conn.exec_driver_sql("INSERT INTO seen VALUES (2)")
    with database.write() as conn:  # the pool hands out writable connections again
        conn.exec_driver_sql("INSERT INTO seen VALUES (3)")
        assert conn.exec_driver_sql("SELECT count(*) FROM seen").scalar_one() == 2


def test_async_statements_take_psycopgs_placeholders_and_send_postgresqls_own(
    database: Database,
) -> None:
    """The awaited reads run on a raw cursor with ``$n`` placeholders, numbered once per
    statement (``_native_placeholders``): named ones in order of first use, a name used
    twice one number, ``%%`` a percent sign; and a statement past psycopg's own cache
    (over 50 parameters, over 4,096 bytes) answers as a short one does."""
    many = " + ".join(f"%(p{n})s::int" for n in range(60))
    padding = " " * 4_200
    cases = [
        ("SELECT %s::int + %s::int, 'a%%b'", (2, 3), (5, "a%b")),
        ("SELECT %(x)s::int * %(y)s::int + %(x)s::int", {"y": 4, "x": 3}, (15,)),
        (f"SELECT {many}{padding}", {f"p{n}": n for n in range(60)}, (sum(range(60)),)),
    ]

    async def scenario() -> list[Any]:
        rows = []
        for sql, params, _ in cases:
            for _ in range(7):  # past psycopg's threshold: the fifth run prepares it
                rows.append(tuple(await database.fetch_one_async(sql, params)))
        await database.close_async()
        return rows

    rows = asyncio.run(scenario())
    assert rows == [expected for _, _, expected in cases for _ in range(7)]
    assert vault_db._native_placeholders("SELECT %(b)s, %(a)s, %(b)s, '%%'") == (
        b"SELECT $1, $2, $1, '%'",
        ("b", "a"),
    )
    with pytest.raises(ValueError, match="both named and positional"):
        vault_db._native_placeholders("SELECT %(a)s, %s")


def test_async_statements_of_many_rows_answer_every_row_and_the_connection_serves_on(
    database: Database,
) -> None:
    """``fetch_all_async`` (a search's first page) on the same async connections as
    ``fetch_one_async``: every row of its statement, none when nothing matches, and the
    connection it used answers the next statement of one row."""
    many = "SELECT n FROM generate_series(1, %(n)s::int) AS n ORDER BY n"

    async def scenario() -> list[Any]:
        answers: list[Any] = []
        for n in (3, 0, 5):
            answers.append([row[0] for row in await database.fetch_all_async(many, {"n": n})])
            answers.append(tuple(await database.fetch_one_async("SELECT %s::int", (n,))))
        await database.close_async()
        return answers

    assert asyncio.run(scenario()) == [[1, 2, 3], (3,), [], (0,), [1, 2, 3, 4, 5], (5,)]


def test_pooled_connections_number_placeholders_once_and_answer_as_psycopg_would(
    database: Database,
) -> None:
    """SQLAlchemy's statements and the driver's own go through ``_NativeCursor`` on every
    pooled connection: named and positional parameters, many rows, a literal percent sign
    with and without parameters, and a statement with 60 parameters, run past psycopg's
    threshold for preparing it."""
    many = " + ".join(f":p{n}" for n in range(60))
    with database.write() as conn:
        assert isinstance(conn.connection.dbapi_connection.cursor(), vault_db._NativeCursor)  # type: ignore[union-attr]
        conn.exec_driver_sql("CREATE TABLE words (n int PRIMARY KEY, word text)")
        conn.execute(
            text("INSERT INTO words (n, word) VALUES (:n, :word)"),
            [{"n": n, "word": f"{n}%"} for n in range(3)],
        )
        execute_many(conn, "INSERT INTO words (n, word) VALUES (%s, %s)", [(3, "3%"), (4, "x")])
        assert fetch_all(conn, "SELECT n FROM words WHERE word LIKE %s ORDER BY n", ["%\\%"]) == [
            (0,),
            (1,),
            (2,),
            (3,),
        ]
    with database.read() as conn:
        for _ in range(7):
            assert conn.execute(
                text(f"SELECT CAST({many} AS int)"), {f"p{n}": n for n in range(60)}
            ).scalar_one() == sum(range(60))
            assert (
                conn.execute(
                    text("SELECT word || '%' FROM words WHERE n = :n"), {"n": 4}
                ).scalar_one()
                == "x%"
            )
        assert conn.exec_driver_sql("SELECT count(*) FROM words WHERE word LIKE '%%'").scalar() == 5


def test_a_statement_on_the_drivers_cursor_runs_in_the_read_blocks_transaction(
    database: Database,
) -> None:
    """The first statement of a read block on the driver's cursor (``kernel/driver.py``)
    runs in the block's snapshot, which its COMMIT ends: psycopg's prepared statements
    outlive it. Sent before SQLAlchemy began the block's transaction, it ran in one the
    driver began, which the pool rolled back, and every prepared statement went with it."""
    prepared = "SELECT %s::int + 1"
    for _ in range(3):
        with database.read() as conn:
            assert fetch_all(conn, "SHOW transaction_isolation", []) == [("repeatable read",)]
            assert fetch_all(conn, "SHOW transaction_read_only", []) == [("on",)]
            for n in range(6):  # psycopg prepares a statement at its fifth run
                assert fetch_all(conn, prepared, [n]) == [(n + 1,)]
        # One connection in this database's pool, used again: its statements are still there.
        with database.read() as conn:
            names = fetch_all(conn, "SELECT count(*) FROM pg_prepared_statements", [])
        assert names[0][0] >= 1  # still prepared after the block ended
