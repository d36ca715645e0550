"""InList: ``column IN (…)`` for any number of values, one prebuilt statement per size."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import Column, Connection, MetaData, String, Table, create_engine, insert, select

from vault.kernel.db import InList

NAMES = Table("names", MetaData(), Column("name", String(10), primary_key=True))
NAMED = InList(lambda names: select(NAMES.c.name).where(NAMES.c.name.in_(names)))


@pytest.fixture
def conn() -> Iterator[Connection]:
    engine = create_engine("sqlite://")
    NAMES.metadata.create_all(engine)
    with engine.begin() as connection:
        connection.execute(insert(NAMES), [{"name": f"n{i}"} for i in range(20)])
        yield connection
    engine.dispose()


@pytest.mark.parametrize("count", [1, 2, 3, 4, 5, 8, 9, 17])
def test_in_list_finds_every_value_whatever_their_number(conn: Connection, count: int) -> None:
    wanted = [f"n{i}" for i in range(count)] + ["absent"]
    found = conn.scalars(*NAMED.bind(wanted)).all()
    assert sorted(found) == sorted(wanted[:-1])


def test_in_list_keeps_one_statement_per_power_of_two_and_ignores_repeats() -> None:
    five, _ = NAMED.bind(["a", "b", "c", "d", "e"])
    eight, params = NAMED.bind(["a", "b", "c", "d", "e", "f", "g", "h", "a"])
    assert five is eight
    assert len(params) == 8
    assert NAMED.bind(["a"])[0] is not five
