"""Which pages of which tables and indexes the access log writes (SQLite): appending a
group commit of records, and settling them into AuditEvent resources later.

A commit in WAL mode appends every page it changed to the WAL, and a checkpoint writes them
again into the database file: the pages a record dirties are most of what it costs the disk
and the kernel (a fifth of a partner read's CPU is the kernel writing and reading pages:
docs/performance.md), and unlike a time they do not move with other work on the machine.
This script loads ``--inwoners`` inwoners, appends ``--warm`` group commits of 8
partner-read records and settles them (so the tables and indexes have their size), then
appends ``--commits`` more with no checkpoint in between, and reads the WAL: every frame
names its page, and SQLite's ``dbstat`` table names the table or index each page belongs
to. Then it empties the WAL, settles the counted records ``--settle`` per transaction (32,
as the writer thread does; in chain order, as it does) and counts again.

    python benchmarks/access_log_pages.py [--inwoners 200] [--warm 2000] [--commits 200]
    python benchmarks/access_log_pages.py --settle 500    # as a reader of the log settles
    python benchmarks/access_log_pages.py --random-ids    # AuditEvent ids as UUID version 4

A page freed by settling (a link's body) and used again later is named by what it holds at
the end; the totals are exact.

``--random-ids`` names the records as before commit ``e861204`` (random ids instead of ids
in time order), to compare the two in one script.
"""

from __future__ import annotations

import argparse
import shutil
import sqlite3
import struct
import sys
import tempfile
import uuid
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import access_log_cpu
import fhir_read_search as base

import vault.audit.log as audit_log
from vault.audit.runtime import open_runtime
from vault.kernel.config import Settings

_FRAME_HEADER = 24
_WAL_HEADER = 32


def wal_pages(wal: Path) -> list[int]:
    """The page number of every frame in a WAL file, in order."""
    data = wal.read_bytes()
    page_size = struct.unpack(">I", data[8:12])[0]
    pages, offset = [], _WAL_HEADER
    while offset + _FRAME_HEADER + page_size <= len(data):
        pages.append(struct.unpack(">I", data[offset : offset + 4])[0])
        offset += _FRAME_HEADER + page_size
    return pages


def checkpoint(database: Path) -> None:
    with sqlite3.connect(database) as conn:
        busy, _, _ = conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
    if busy:
        raise RuntimeError("the WAL could not be emptied before counting")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--inwoners", type=int, default=200)
    parser.add_argument("--warm", type=int, default=2000, help="group commits before counting")
    parser.add_argument("--commits", type=int, default=200, help="group commits counted")
    parser.add_argument("--settle", type=int, default=32, help="records settled per transaction")
    parser.add_argument("--random-ids", action="store_true")
    args = parser.parse_args(argv)
    if args.random_ids:
        audit_log.record_id = lambda: str(uuid.uuid4())
    data_dir = Path(tempfile.mkdtemp(prefix="rk-access-log-pages-"))
    database = data_dir / "vault.db"
    # The vault's checkpointer waits this long before its first checkpoint: this script
    # checkpoints by itself, and not at all while it counts.
    settings = Settings(
        data_dir=data_dir,
        database_url=f"sqlite:///{database}",
        sqlite_checkpoint_interval=86_400,
    )
    base.initialise(settings)
    runtime = open_runtime(settings)
    try:
        loaded = base.load(runtime, inwoners=args.inwoners)
        log = audit_log.AuditLog(runtime)
        for _ in range(0, args.warm, 100):
            access_log_cpu._batches(runtime, log, loaded, size=8, batches=100)
            log.settle_all(batch=500)
            checkpoint(database)
        # From here on no checkpoint: the WAL holds every page the counted commits wrote.
        wal = database.with_name("vault.db-wal")
        access_log_cpu._batches(runtime, log, loaded, size=8, batches=args.commits)
        appended = wal_pages(wal)
        checkpoint(database)
        records = args.commits * 8
        if log.settle_all(batch=args.settle) != records:
            raise RuntimeError("settling did not store exactly the counted records")
        settled = wal_pages(wal)
        with sqlite3.connect(database) as conn:
            owner = dict(conn.execute("SELECT pageno, name FROM dbstat"))
        print(f"Regiekluis access-log pages, SQLite {sqlite3.sqlite_version}")
        print(f"Revision  {base._vault_revision()}")
        print(f"{args.inwoners} inwoners, {args.warm} group commits of 8 before counting")
        ids = "random (UUID version 4)" if args.random_ids else "in time order (version 7)"
        print(f"AuditEvent ids {ids}; {args.commits} group commits of 8 counted")
        print(f"{len(appended) / args.commits:8.1f} WAL frames per commit of 8 records")
        _by_owner(appended, owner, args.commits)
        print(
            f"{len(settled) / records:8.2f} WAL frames per record settled, {args.settle} per"
            f" transaction ({len(settled) / records * args.settle:.1f} per transaction)"
        )
        _by_owner(settled, owner, records)
    finally:
        runtime.close()
        shutil.rmtree(data_dir, ignore_errors=True)


def _by_owner(pages: list[int], owner: dict[int, str], per: int) -> None:
    for name, count in Counter(owner.get(p, "(free)") for p in pages).most_common():
        print(f"{count / per:8.2f}  {name}")


if __name__ == "__main__":
    main()
