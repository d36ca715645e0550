"""pairs_in: ``(type, id)`` is one of many pairs, answered from the index on SQLite.

A row value ``IN`` a list of two or more pairs makes SQLite scan the whole table (the bulk
loader checks the owners of a batch of 100 inwoners at once); one ``type = … AND id IN (…)``
per type searches the unique index instead.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import (
    Column,
    Connection,
    MetaData,
    String,
    Table,
    UniqueConstraint,
    create_engine,
    insert,
    select,
)

from vault.kernel.db import pairs_in

ROWS = Table(
    "rows",
    MetaData(),
    Column("kind", String(20)),
    Column("ident", String(20)),
    Column("extra", String(20)),
    UniqueConstraint("kind", "ident"),
)


@pytest.fixture
def conn() -> Iterator[Connection]:
    engine = create_engine("sqlite://")
    ROWS.metadata.create_all(engine)
    with engine.begin() as connection:
        connection.execute(
            insert(ROWS),
            [
                {"kind": kind, "ident": f"{kind[0]}{i}", "extra": "x"}
                for kind in ("Patient", "Group", "Goal")
                for i in range(200)
            ],
        )
        connection.exec_driver_sql("ANALYZE")
        yield connection
    engine.dispose()


@pytest.mark.parametrize(
    "pairs",
    [
        [("Patient", "P1")],
        [("Patient", "P1"), ("Patient", "P2"), ("Patient", "absent")],
        [("Patient", "P3"), ("Group", "G4"), ("Goal", "G4"), ("Group", "P3")],
        [],
    ],
)
def test_pairs_in_finds_exactly_the_pairs_by_the_index(
    conn: Connection, pairs: list[tuple[str, str]]
) -> None:
    query = select(ROWS.c.kind, ROWS.c.ident).where(pairs_in(ROWS.c.kind, ROWS.c.ident, pairs))
    found = {(row.kind, row.ident) for row in conn.execute(query)}
    assert found == {p for p in pairs if p[1] != "absent" and p[1][0] == p[0][0]}
    if not pairs:
        return
    compiled = query.compile(conn, compile_kwargs={"literal_binds": True})
    plan = [row[-1] for row in conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {compiled}")]
    assert not [step for step in plan if step.startswith("SCAN rows")], plan
