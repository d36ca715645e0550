"""``vault report`` as an operator runs it: a real process on a fresh vault."""

from __future__ import annotations

from pathlib import Path

from tests.support import fresh_database, run_vault, vault_env


def test_report_writes_page_and_csv_and_refuses_a_period_that_is_no_period(
    tmp_path: Path,
) -> None:
    data_dir = tmp_path / "vault"
    with fresh_database(tmp_path) as url:
        env = vault_env(url)
        assert run_vault("init", "--data-dir", str(data_dir), env=env).returncode == 0
        wrong = run_vault("report", "--data-dir", str(data_dir), "--period", "2025-Q7", env=env)
        assert wrong.returncode == 1
        assert wrong.stderr.startswith("error: A period is a year (2026) or a quarter")
        out = tmp_path / "out"
        done = run_vault(
            "report",
            "--data-dir",
            str(data_dir),
            "--period",
            "2025",
            "--out",
            str(out),
            env=env,
        )
        assert done.returncode == 0, done.stderr
        page = (out / "regiekluis-cijfers-2025.html").read_text(encoding="utf-8")
        assert "Periode 2025" in page and "Periode 2025-Q4" in page
        rows = (out / "regiekluis-cijfers-2025.csv").read_text(encoding="utf-8").splitlines()
        assert rows[0] == "periode,levensdomein,cijfer,omschrijving,waarde,k"
        assert "2025,alle,inwoners,Inwoners die meetellen,0,10" in rows
