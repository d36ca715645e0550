"""``words``: the access decision's own constants, written into its SQL text.

PostgreSQL's generic plan of a prepared statement cannot see a bound value, so the
decision writes its constants (effects, actions, type names) into the text
(``consent/enforce._word``). Only plain words may go there: anything else is refused, and
what a caller sends (a grantee, a purpose) stays bound.
"""

from __future__ import annotations

import pytest
from sqlalchemy import Column, Dialect, MetaData, String, Table, create_engine, select
from sqlalchemy.dialects import postgresql, sqlite

from vault.consent.enforce import words
from vault.store.registry import RESOURCE_TYPES

grants = Table("grants", MetaData(), Column("effect", String), Column("kind", String))


@pytest.mark.parametrize("dialect", [sqlite.dialect(), postgresql.psycopg.dialect()])
def test_a_word_is_written_into_the_sql_not_bound(dialect: Dialect) -> None:
    deny, permit = words(["deny", "permit"])
    compiled = (
        select(grants.c.kind).where(grants.c.effect.in_([deny, permit])).compile(dialect=dialect)
    )
    assert "IN ('deny', 'permit')" in str(compiled)
    assert compiled.params == {}


def test_a_word_selects_the_rows_it_names() -> None:
    engine = create_engine("sqlite://")
    with engine.begin() as conn:
        grants.create(conn)
        conn.execute(
            grants.insert(), [{"effect": "deny", "kind": "a"}, {"effect": "x", "kind": "b"}]
        )
        (deny,) = words(["deny"])
        assert conn.execute(select(grants.c.kind).where(grants.c.effect == deny)).all() == [("a",)]


@pytest.mark.parametrize(
    "value", ["", "de'ny", "deny'--", "a b", "Organization/x", "ünïcode", "x" * 41, "1=1"]
)
def test_anything_but_a_plain_word_is_refused(value: str) -> None:
    with pytest.raises(ValueError):
        words([value])


def test_every_searchable_type_is_a_word() -> None:
    # A search writes its type into its SQL (``fhir/repository/search.py``): a type the
    # pattern refused would fail every search of it.
    assert [str(w) for w in words(sorted(RESOURCE_TYPES))] == [
        f"'{name}'" for name in sorted(RESOURCE_TYPES)
    ]
