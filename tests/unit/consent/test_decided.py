"""``Decided``: a cached access condition keyed by what it was built from, not by its tree.

It must render exactly the SQL of the condition it wraps, keep an OR together inside an
AND, and take the instant of each execution even when SQLAlchemy reuses the compiled form.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import (
    Column,
    Connection,
    Integer,
    MetaData,
    String,
    Table,
    create_engine,
    func,
    or_,
    select,
)
from sqlalchemy.exc import StatementError

from vault.consent.enforce import NOW, Decided

metadata = MetaData()
grants = Table(
    "grants",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("kind", String),
    Column("who", String),
    Column("until", Integer),
)


@pytest.fixture
def conn() -> Iterator[Connection]:
    engine = create_engine("sqlite://")
    metadata.create_all(engine)
    with engine.begin() as connection:
        connection.execute(
            grants.insert(),
            [
                {"kind": "a", "who": "x", "until": 10},
                {"kind": "a", "who": "y", "until": 20},
                {"kind": "b", "who": "x", "until": 30},
            ],
        )
        yield connection
    engine.dispose()


def condition() -> Decided:
    c = grants.c
    return Decided(or_(c.who == "x", c.until > NOW), ("test", "x"))


def count(conn: Connection, decided: Decided, now: int) -> int:
    stmt = select(func.count()).select_from(grants).where(grants.c.kind == "a", decided)
    return int(conn.execute(stmt, {NOW.key: now}).scalar_one())


def test_it_renders_the_sql_of_its_condition_kept_together_inside_an_and() -> None:
    c = grants.c
    plain = or_(c.who == "x", c.until > NOW)
    wrapped = select(c.id).where(c.kind == "a", condition())
    expected = select(c.id).where(c.kind == "a", plain)
    assert str(wrapped) == str(expected)
    assert "(grants.who = :who_1 OR grants.until > :rk_now)" in str(wrapped)


def test_each_execution_takes_its_own_instant_from_the_cached_statement(
    conn: Connection,
) -> None:
    decided = condition()
    assert count(conn, decided, now=0) == 2  # x by name, y until 20
    assert count(conn, decided, now=15) == 2  # y still valid
    assert count(conn, decided, now=25) == 1  # only x: the instant was not kept
    assert count(conn, condition(), now=25) == 1  # a new object, the same cached SQL


def test_an_execution_without_the_instant_fails_instead_of_reusing_one(
    conn: Connection,
) -> None:
    decided = condition()
    assert count(conn, decided, now=0) == 2
    stmt = select(func.count()).select_from(grants).where(decided)
    with pytest.raises(StatementError):
        conn.execute(stmt)


def test_different_decisions_are_different_statements(conn: Connection) -> None:
    c = grants.c
    for_x = Decided(c.who == "x", ("test", "x"))
    for_y = Decided(c.who == "y", ("test", "y"))
    assert count(conn, for_x, now=0) == 1
    assert count(conn, for_y, now=0) == 1
    stmt = select(c.who).where(for_y)
    assert [row.who for row in conn.execute(stmt, {NOW.key: 0})] == ["y"]
