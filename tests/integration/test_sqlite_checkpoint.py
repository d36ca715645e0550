"""SQLite's WAL is checkpointed in the background in every process that writes, not only
in `vault serve`: the connections turn SQLite's own checkpoints off, so without the thread
the WAL grew with every commit (14.8 GB in a quarter of an hour of the deep property test,
which runs the app in process, until the machine ran out of memory)."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pytest

from tests.support import PG_URL
from vault.kernel.db import Database

pytestmark = pytest.mark.skipif(
    PG_URL.startswith("postgresql"), reason="SQLite's WAL; PostgreSQL checkpoints itself"
)

MIB = 1024 * 1024


def _write_a_mib(db: Database) -> None:
    with db.write() as conn:
        conn.exec_driver_sql("INSERT INTO blobs (body) VALUES (randomblob(?))", (MIB,))


def _checkpointers() -> int:
    return sum(1 for thread in threading.enumerate() if thread.name == "sqlite-checkpoint")


def test_a_database_without_the_app_checkpoints_and_keeps_its_wal_small(tmp_path: Path) -> None:
    path = tmp_path / "wal.db"
    db = Database(f"sqlite:///{path}", checkpoint_interval=0.05)
    try:
        with db.write() as conn:
            conn.exec_driver_sql("CREATE TABLE blobs (n INTEGER PRIMARY KEY, body BLOB)")
        # 40 commits of 1 MiB with a pause between them, as a busy vault writes.
        for _ in range(40):
            _write_a_mib(db)
            time.sleep(0.06)
        deadline = time.monotonic() + 30
        while os.path.getsize(path) < 40 * MIB and time.monotonic() < deadline:
            time.sleep(0.05)
        # The rows reached the database file itself...
        assert os.path.getsize(path) >= 40 * MIB
        # ...and the WAL was started over instead of growing by every commit.
        assert os.path.getsize(f"{path}-wal") < 20 * MIB
    finally:
        db.dispose()


def test_the_checkpointer_stops_with_the_database_and_starts_again_after(tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'again.db'}", checkpoint_interval=0.05)
    with db.write() as conn:
        conn.exec_driver_sql("CREATE TABLE blobs (n INTEGER PRIMARY KEY, body BLOB)")
    running = _checkpointers()
    assert running >= 1
    db.dispose()
    assert _checkpointers() == running - 1
    _write_a_mib(db)
    assert _checkpointers() == running
    db.dispose()


def test_the_wal_starts_over_while_commits_and_reads_never_pause(tmp_path: Path) -> None:
    """A vault under steady load commits while each checkpoint runs, and its readers never
    all rest at once: a PASSIVE checkpoint then never lets the WAL start over, and it grew
    by every commit (3.4 GB in 80 seconds of partner reads). Past its bound the
    checkpointer restarts it."""
    path = tmp_path / "steady.db"
    db = Database(f"sqlite:///{path}", checkpoint_interval=0.05, wal_restart_frames=256)
    stop = threading.Event()
    reads = [0]

    def read_without_pause() -> None:
        while not stop.is_set():
            with db.read() as conn:
                conn.exec_driver_sql("SELECT count(*) FROM blobs").one()
            reads[0] += 1

    try:
        with db.write() as conn:
            conn.exec_driver_sql("CREATE TABLE blobs (n INTEGER PRIMARY KEY, body BLOB)")
        readers = [threading.Thread(target=read_without_pause) for _ in range(2)]
        for reader in readers:
            reader.start()
        largest, written = 0, 0
        while written < 96 * MIB:  # commits of 64 KiB, one after the other
            with db.write() as conn:
                conn.exec_driver_sql(
                    "INSERT INTO blobs (body) VALUES (randomblob(?))", (64 * 1024,)
                )
            written += 64 * 1024
            largest = max(largest, os.path.getsize(f"{path}-wal"))
        stop.set()
        for reader in readers:
            reader.join()
        assert reads[0] > 100  # the readers were there all along
        # Without the RESTART the WAL held every commit: more than 96 MiB.
        assert largest < 32 * MIB
    finally:
        stop.set()
        db.dispose()
