"""Statements sent through the driver's own cursor, inside a SQLAlchemy transaction.

For the hottest writes (the access log's inserts): SQLAlchemy Core's per-row parameter
processing cost more than the statements themselves (docs/performance.md). The SQL is in
the driver's parameter style (:attr:`vault.kernel.db.Database.paramstyle`), and the values
must be what the driver takes as they are: no type of SQLAlchemy's converts them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from sqlalchemy import Connection

__all__ = ["DRIVER_STATEMENTS", "execute_many", "fetch_all"]

# Observers of the statements ``execute_many`` and ``fetch_all`` send past SQLAlchemy, whose
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


def execute_many(conn: Connection, sql: str, rows: Sequence[Sequence[Any]]) -> None:
    """``sql`` once per row through the driver's own cursor, in ``conn``'s transaction."""
    if not rows:
        return
    for observe in DRIVER_STATEMENTS:
        observe(sql)
    _begun(conn)
    cursor = conn.connection.cursor()
    try:
        cursor.executemany(sql, rows)
    finally:
        cursor.close()


def fetch_all(conn: Connection, sql: str, params: Sequence[Any] | Mapping[str, Any]) -> list[Any]:
    """Every row of one statement through the driver's own cursor (see :func:`execute_many`)."""
    for observe in DRIVER_STATEMENTS:
        observe(sql)
    _begun(conn)
    cursor = conn.connection.cursor()
    try:
        cursor.execute(sql, params)
        return list(cursor.fetchall())
    finally:
        cursor.close()
