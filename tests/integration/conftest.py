"""Fixtures the adapter and notification tests share."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from adapters.sink import SinkAdapter


@pytest.fixture
def sink(tmp_path: Path) -> Iterator[SinkAdapter]:
    """The partner's own database, as the sink adapter keeps it (SQLite in ``tmp_path``)."""
    adapter = SinkAdapter({"database_url": f"sqlite:///{tmp_path / 'partner.db'}"})
    yield adapter
    adapter.close()
