"""A write on SQLite keeps its statement journals in memory (``kernel/db.py``).

SQLite journals the pages a statement changes while it runs, so that a failing statement
undoes only itself. Past 64 KiB that journal went to a temporary file, opened, written and
unlinked in every such transaction: for the access log, every group commit (its resources
are one INSERT). A file unlinked while open still shows among the process's descriptors
(``/proc/self/fd``, "(deleted)"), so a test can see one while the transaction is open.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import sqlite_database
from vault.kernel.db import Database

pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="reads the process's descriptors in /proc"
)

_ROWS = 2_000


@pytest.fixture
def database(tmp_path: Path) -> Iterator[Database]:
    with sqlite_database(
        tmp_path / "journal.db",
        "CREATE TABLE t (n INTEGER PRIMARY KEY, word TEXT UNIQUE)",
        "INSERT INTO t VALUES " + ",".join(f"({n}, '{'w' * 200}{n}')" for n in range(_ROWS)),
    ) as db:
        yield db


def _temporary_files() -> list[str]:
    """SQLite's temporary files this process holds open (named ``etilqs_…``)."""
    found = []
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:  # closed meanwhile (the listing's own descriptor)
            continue
        if "etilqs_" in target:
            found.append(target)
    return found


# One statement that changes every page of ``t`` and its index, about 200 of them: its
# journal is far past 64 KiB. The UNIQUE index makes it one that may fail half-way, which is
# when SQLite journals a statement inside a transaction.
_CHANGE_EVERY_PAGE = "UPDATE t SET word = word || 'x'"


def test_a_write_keeps_its_statement_journal_in_memory(database: Database) -> None:
    with database.write() as conn:
        conn.exec_driver_sql(_CHANGE_EVERY_PAGE)
        assert _temporary_files() == []
        assert conn.exec_driver_sql("PRAGMA temp_store").scalar() == 2  # MEMORY
    with database.write() as conn:
        assert conn.exec_driver_sql("SELECT count(*) FROM t WHERE word LIKE '%x'").scalar() == (
            _ROWS
        )


def test_without_it_sqlite_would_have_written_a_file(database: Database) -> None:
    """The test above can fail: the same statement on one of the write engine's connections
    set back to SQLite's default does open a temporary file (the 64 KiB are passed, and the
    descriptor is seen). SQLite takes the setting as a transaction begins."""
    raw = database.write_engine.raw_connection()
    try:
        cursor = raw.cursor()
        cursor.execute("PRAGMA temp_store=DEFAULT")
        cursor.execute("BEGIN IMMEDIATE")
        cursor.execute(_CHANGE_EVERY_PAGE)
        assert _temporary_files() != []
        cursor.execute("ROLLBACK")
        cursor.execute("PRAGMA temp_store=MEMORY")
        cursor.close()
    finally:
        raw.close()
    assert _temporary_files() == []
