"""Settings read from the environment: the SQLite checkpoint interval (docs/operating.md)."""

from __future__ import annotations

from pathlib import Path

import pytest

from vault.kernel.config import Settings

NAME = "VAULT_SQLITE_CHECKPOINT_SECONDS"


def test_the_checkpoint_interval_is_a_second_unless_set(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv(NAME, raising=False)
    assert Settings.from_env(tmp_path).sqlite_checkpoint_interval == 1.0
    monkeypatch.setenv(NAME, "0.25")
    assert Settings.from_env(tmp_path).sqlite_checkpoint_interval == 0.25


@pytest.mark.parametrize("raw", ["0", "-1", "nan", "inf", "soon", ""])
def test_an_interval_that_would_spin_or_never_end_is_refused(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, raw: str
) -> None:
    monkeypatch.setenv(NAME, raw)
    with pytest.raises(ValueError, match=NAME):
        Settings.from_env(tmp_path)
