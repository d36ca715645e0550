"""fetch_in: ``column IN (…)`` for any number of values, one statement per power of two."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import Column, Connection, MetaData, String, Table, create_engine, insert

from vault.kernel.driver import DRIVER_STATEMENTS, fetch_in

NAMES = Table("names", MetaData(), Column("name", String(10), primary_key=True))
NAMED = "SELECT name FROM names WHERE name IN ({in})"


@pytest.fixture
def conn() -> Iterator[Connection]:
    engine = create_engine("sqlite://")
    NAMES.metadata.create_all(engine)
    with engine.begin() as connection:
        connection.execute(insert(NAMES), [{"name": f"n{i}"} for i in range(20)])
        yield connection
    engine.dispose()


@pytest.mark.parametrize("count", [1, 2, 3, 4, 5, 8, 9, 17])
def test_fetch_in_finds_every_value_whatever_their_number(conn: Connection, count: int) -> None:
    wanted = [f"n{i}" for i in range(count)] + ["absent"]
    found = [name for (name,) in fetch_in(conn, NAMED, wanted)]
    assert sorted(found) == sorted(wanted[:-1])


def test_fetch_in_sends_one_statement_per_power_of_two_and_ignores_repeats(
    conn: Connection,
) -> None:
    sent: list[str] = []
    DRIVER_STATEMENTS.append(sent.append)
    try:
        fetch_in(conn, NAMED, ["n1", "n2", "n3", "n4", "n5"])
        fetch_in(conn, NAMED, ["n1", "n2", "n3", "n4", "n5", "n6", "n7", "n8", "n1"])
        fetch_in(conn, NAMED, ["n1"])
    finally:
        DRIVER_STATEMENTS.remove(sent.append)
    assert sent[0] == sent[1]
    assert sent[0].count("?") == 8
    assert sent[2].endswith("IN (?)")
