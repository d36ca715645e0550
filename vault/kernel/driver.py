"""Statements sent through the driver's own cursor, inside a SQLAlchemy transaction.

For the hottest writes (the access log's inserts): SQLAlchemy Core's per-row parameter
processing cost more than the statements themselves (docs/performance.md). The SQL is in
the driver's parameter style (:attr:`vault.kernel.db.Database.paramstyle`), and the values
must be what the driver takes as they are: no type of SQLAlchemy's converts them. A batch
of rows (:func:`insert_rows`, :func:`update_rows`) is one statement per row on SQLite and
one statement for all of them on PostgreSQL.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Connection

__all__ = [
    "DRIVER_STATEMENTS",
    "execute_many",
    "fetch_all",
    "fetch_in",
    "insert_rows",
    "update_rows",
]

# Observers of the statements this module sends past SQLAlchemy, whose
# ``before_cursor_execute`` event does not see them: tests count a batch's statements.
DRIVER_STATEMENTS: list[Callable[[str], None]] = []


def _begun(conn: Connection) -> None:
    """SQLAlchemy begins a connection's transaction at its own first statement. A statement
    sent on the driver's cursor before that ran in a transaction the driver began and
    SQLAlchemy did not know of: on PostgreSQL the read block's ``COMMIT`` then did nothing,
    the pool's ``ROLLBACK`` ended it, and psycopg dropped every prepared statement of the
    connection with it (a search's backends then cost three times the CPU)."""
    if not conn.in_transaction():
        conn.begin()


@contextmanager
def _cursor(conn: Connection, sql: str) -> Iterator[Any]:
    """The driver's own cursor for ``sql``, in ``conn``'s transaction; observed, closed after."""
    for observe in DRIVER_STATEMENTS:
        observe(sql)
    _begun(conn)
    cursor = conn.connection.cursor()
    try:
        yield cursor
    finally:
        cursor.close()


def execute_many(conn: Connection, sql: str, rows: Sequence[Sequence[Any]]) -> None:
    """``sql`` once per row through the driver's own cursor, in ``conn``'s transaction."""
    if not rows:
        return
    with _cursor(conn, sql) as cursor:
        cursor.executemany(sql, rows)


def fetch_all(conn: Connection, sql: str, params: Sequence[Any] | Mapping[str, Any]) -> list[Any]:
    """Every row of one statement through the driver's own cursor (see :func:`execute_many`)."""
    with _cursor(conn, sql) as cursor:
        cursor.execute(sql, params)
        return list(cursor.fetchall())


def fetch_in(conn: Connection, template: str, values: Iterable[Any]) -> list[Any]:
    """Every row of ``template`` with its one ``{in}`` written as a list of these values'
    marks (``IN ({in})``), through the driver's own cursor.

    The values are sorted and their repeats dropped; the list is padded with the last one to
    a power of two (a repeat changes nothing in IN), so a database prepares a few statements,
    not one per length. At least one value; ``template`` is the caller's own SQL, never
    input."""
    distinct = sorted(set(values))
    size = 1 << (len(distinct) - 1).bit_length()
    last = len(distinct) - 1
    sql = _in_sql(template, conn.dialect.paramstyle == "qmark", size)
    return fetch_all(conn, sql, [distinct[min(i, last)] for i in range(size)])


@functools.cache
def _in_sql(template: str, qmark: bool, size: int) -> str:
    return template.replace("{in}", ", ".join(["?" if qmark else "%s"] * size))


@functools.cache
def _insert_sql(table: str, columns: tuple[str, ...]) -> str:
    marks = ", ".join("?" * len(columns))
    return f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks})"  # noqa: S608 (callers' names)


def insert_rows(
    conn: Connection, table: str, columns: tuple[str, ...], rows: Sequence[Sequence[Any]]
) -> None:
    """Insert ``rows`` (values in the order of ``columns``) into ``table``, in ``conn``'s
    transaction. SQLite runs one INSERT per row: in process, a row costs little more than
    its B-tree pages. PostgreSQL takes them all in one ``COPY``: an INSERT per row cost its
    backend an executor start and end each, most of what settling a record cost there
    (docs/performance.md). ``table`` and ``columns`` are the caller's own names, never input."""
    if not rows:
        return
    if conn.dialect.name != "postgresql":
        execute_many(conn, _insert_sql(table, columns), rows)
        return
    sql = f"COPY {table} ({', '.join(columns)}) FROM STDIN"
    with _cursor(conn, sql) as cursor, cursor.copy(sql) as copy:
        for row in rows:
            copy.write_row(row)


def update_rows(
    conn: Connection,
    table: str,
    columns: tuple[tuple[str, str], ...],
    keys: tuple[tuple[str, str], ...],
    rows: Sequence[Sequence[Any]],
    *,
    also: str = "",
) -> None:
    """Set ``columns`` of the rows of ``table`` that match ``keys``: each of ``rows`` holds
    the new values, then the keys' values; ``also`` is a further fixed assignment
    (``body = NULL``). Columns and keys are (name, PostgreSQL type) pairs, the caller's own
    names. SQLite runs one UPDATE per row; PostgreSQL one UPDATE over the rows as arrays
    (``unnest``), for the reason of :func:`insert_rows`."""
    if not rows:
        return
    sql = _update_sql(conn.dialect.name == "postgresql", table, columns, keys, also)
    if conn.dialect.name != "postgresql":
        execute_many(conn, sql, rows)
        return
    with _cursor(conn, sql) as cursor:
        cursor.execute(sql, [list(values) for values in zip(*rows, strict=True)])


@functools.cache
def _update_sql(
    postgres: bool,
    table: str,
    columns: tuple[tuple[str, str], ...],
    keys: tuple[tuple[str, str], ...],
    also: str,
) -> str:
    assignments = [f"{name} = {'v.' + name if postgres else '?'}" for name, _ in columns]
    assignments += [also] if also else []
    if not postgres:
        where = " AND ".join(f"{name} = ?" for name, _ in keys)
        return f"UPDATE {table} SET {', '.join(assignments)} WHERE {where}"  # noqa: S608
    every = (*columns, *keys)
    arrays = ", ".join(f"%s::{kind}[]" for _, kind in every)
    names = ", ".join(name for name, _ in every)
    where = " AND ".join(f"{table}.{name} = v.{name}" for name, _ in keys)
    return (
        f"UPDATE {table} SET {', '.join(assignments)}"  # noqa: S608 (the caller's names)
        f" FROM unnest({arrays}) AS v({names}) WHERE {where}"
    )
