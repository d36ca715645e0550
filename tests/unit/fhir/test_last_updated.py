"""``_lastUpdated`` as plain bounds on ``last_updated`` answers what the FHIR date prefixes
over ranges answer (``search._compare``), for every prefix and every precision.

A resource's ``last_updated`` is one microsecond, the range ``[t, t+1)``; the general
comparison of ranges is right but its ORs kept SQLite from walking the index by
``last_updated`` (issue 13). Both forms run in SQLite over rows at and around the
boundaries of the searched range.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine, create_engine, insert, select

from vault.fhir.search import DATE_PREFIXES, _compare, _date_on_instant, _range
from vault.store.models import ResourceRow

R = ResourceRow.__table__.c

VALUES = st.builds(
    lambda moment, precision: (
        moment.strftime(precision)[:-3] + "Z"
        if precision.endswith("%f")
        else moment.strftime(precision)
    ),
    st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2099, 12, 31)),
    st.sampled_from(["%Y", "%Y-%m", "%Y-%m-%d", "%Y-%m-%dT%H:%M:%SZ", "%Y-%m-%dT%H:%M:%S.%f"]),
)


@pytest.fixture(scope="module")
def engine() -> Iterator[Engine]:
    made = create_engine("sqlite://")
    ResourceRow.__table__.create(made)
    yield made
    made.dispose()


@settings(max_examples=200, deadline=None)
@given(prefix=st.sampled_from(DATE_PREFIXES), value=VALUES)
def test_bounds_on_the_instant_answer_as_the_ranges_do(
    engine: Engine, prefix: str, value: str
) -> None:
    _, low, high = _range(value, "_lastUpdated")
    moments = sorted({low - 2, low - 1, low, low + 1, high - 1, high, high + 1, high + 2})
    stamp = int(datetime(2050, 1, 1, tzinfo=UTC).timestamp() * 1_000_000)
    searched = prefix + value
    with engine.begin() as conn:
        conn.execute(ResourceRow.__table__.delete())
        conn.execute(
            insert(ResourceRow),
            [
                {
                    "resource_type": "Goal",
                    "resource_id": f"g{n}",
                    "patient_id": "p",
                    "version_id": 1,
                    "last_updated": moment,
                    "deleted": False,
                }
                for n, moment in enumerate([*moments, stamp])
            ],
        )
        plain = set(conn.scalars(select(R.last_updated).where(_date_on_instant(searched))))
        ranges = set(
            conn.scalars(
                select(R.last_updated).where(
                    _compare(prefix, low, high, R.last_updated, R.last_updated + 1)
                )
            )
        )
    assert plain == ranges
