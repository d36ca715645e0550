"""Query plans for the vault's main tables hash-partitioned by inwoner (docs/scaling.md).

    .venv/bin/python benchmarks/scaling_plans.py \\
        --database-url postgresql+psycopg://postgres@127.0.0.1:5432/test

Citus cannot be installed here, so this stands in for it on one PostgreSQL: a new scratch
database next to the one named (dropped afterwards), the vault's main tables created
``PARTITION BY HASH (patient_id)`` the way Citus would distribute them by the inwoner, filled
with ``--inwoners`` inwoners of ``--goals`` Goals each, then ``EXPLAIN`` for the statements
behind a partner read, a grant check, a partner search and an ``$export``. A partition here
is what a shard is there: the script prints how many partitions each plan touches. The
tables carry the columns the plans need, not every column of the real schema.
"""

from __future__ import annotations

import argparse
import re
import uuid

from sqlalchemy import create_engine, text
from sqlalchemy.engine import Connection, make_url

SCHEMA = """
CREATE TABLE fhir_resource (
    patient_id varchar(64) NOT NULL, resource_type varchar(40) NOT NULL,
    resource_id varchar(64) NOT NULL, version_id int NOT NULL, last_updated bigint NOT NULL,
    body bytea, PRIMARY KEY (patient_id, resource_type, resource_id)
) PARTITION BY HASH (patient_id);
CREATE INDEX ON fhir_resource (patient_id, resource_type, last_updated);
-- A unique key on a distributed table must hold the distribution column, so (type, id) is
-- unique through this locator, distributed by the resource id (a read by id knows no inwoner).
CREATE TABLE resource_locator (
    resource_type varchar(40) NOT NULL, resource_id varchar(64) NOT NULL,
    patient_id varchar(64) NOT NULL, PRIMARY KEY (resource_id, resource_type)
) PARTITION BY HASH (resource_id);
CREATE TABLE consent_grant (
    patient_id varchar(64) NOT NULL, grantee varchar(110), resource_type varchar(40) NOT NULL,
    effect varchar(8) NOT NULL
) PARTITION BY HASH (patient_id);
CREATE INDEX ON consent_grant (patient_id, grantee);
CREATE INDEX ON consent_grant (grantee, patient_id);
CREATE TABLE audit_chain (
    chain varchar(64) NOT NULL, seq bigint NOT NULL, entry_hash varchar(64) NOT NULL,
    PRIMARY KEY (chain, seq)
) PARTITION BY HASH (chain);
"""

STATEMENTS = {
    "read by id, inwoner unknown (as the API is called today)": (
        "SELECT body FROM fhir_resource WHERE resource_type = 'Goal' AND resource_id = :rid"
    ),
    "read by id: 1. the locator": (
        "SELECT patient_id FROM resource_locator WHERE resource_type = 'Goal' "
        "AND resource_id = :rid"
    ),
    "read by id: 2. the row, inwoner known": (
        "SELECT body FROM fhir_resource WHERE patient_id = :pid AND resource_type = 'Goal' "
        "AND resource_id = :rid"
    ),
    "grant check for one inwoner": (
        "SELECT effect, resource_type FROM consent_grant WHERE patient_id = :pid "
        "AND grantee = :grantee"
    ),
    "partner search Goal?patient=X": (
        "SELECT body FROM fhir_resource WHERE patient_id = :pid AND resource_type = 'Goal' "
        "ORDER BY last_updated DESC LIMIT 50"
    ),
    "access-log append (chain head of one inwoner)": (
        "SELECT max(seq) FROM audit_chain WHERE chain = :pid"
    ),
    "partner search Goal (all its inwoners)": (
        "SELECT r.body FROM fhir_resource r JOIN consent_grant g ON g.patient_id = r.patient_id "
        "WHERE g.grantee = :grantee AND r.resource_type = 'Goal' LIMIT 50"
    ),
    "$export for a partner": (
        "SELECT r.body FROM fhir_resource r WHERE r.patient_id IN "
        "(SELECT patient_id FROM consent_grant WHERE grantee = :grantee)"
    ),
}


def create(conn: Connection, *, partitions: int) -> None:
    for statement in SCHEMA.split(";"):
        if statement.strip():
            conn.execute(text(statement))
    for table in ("fhir_resource", "resource_locator", "consent_grant", "audit_chain"):
        for number in range(partitions):
            conn.execute(
                text(
                    f"CREATE TABLE {table}_p{number} PARTITION OF {table} "
                    f"FOR VALUES WITH (MODULUS {partitions}, REMAINDER {number})"
                )
            )


def load(conn: Connection, *, inwoners: int, goals: int) -> tuple[str, str, str]:
    conn.execute(
        text(
            "INSERT INTO fhir_resource SELECT 'p' || i, 'Goal', 'g' || i || '-' || j, 1, "
            "i * 100 + j, decode(repeat('ab', 300), 'hex') "
            "FROM generate_series(1, :n) i, generate_series(1, :g) j"
        ),
        {"n": inwoners, "g": goals},
    )
    conn.execute(
        text(
            "INSERT INTO resource_locator SELECT resource_type, resource_id, patient_id "
            "FROM fhir_resource"
        )
    )
    # Ten partners; each inwoner shares with two of them.
    conn.execute(
        text(
            "INSERT INTO consent_grant SELECT 'p' || i, 'Organization/o' || ((i + k) % 10), "
            "'Goal', 'permit' FROM generate_series(1, :n) i, generate_series(0, 1) k"
        ),
        {"n": inwoners},
    )
    conn.execute(
        text(
            "INSERT INTO audit_chain SELECT 'p' || i, s, md5(i || '-' || s) "
            "FROM generate_series(1, :n) i, generate_series(1, 5) s"
        ),
        {"n": inwoners},
    )
    conn.execute(text("ANALYZE"))
    return "p7", "g7-3", "Organization/o3"


def partitions_in(plan: str) -> int:
    """The most partitions of any one table the plan reads (each table has its own shards)."""
    by_table: dict[str, set[str]] = {}
    for table, number in re.findall(r"\b(\w+)_p(\d+)\b", plan):
        by_table.setdefault(table, set()).add(number)
    return max((len(numbers) for numbers in by_table.values()), default=0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--database-url", required=True, help="a PostgreSQL URL (psycopg)")
    parser.add_argument("--partitions", type=int, default=8)
    parser.add_argument("--inwoners", type=int, default=20_000)
    parser.add_argument("--goals", type=int, default=10)
    args = parser.parse_args()
    name = f"rk_scaling_{uuid.uuid4().hex[:8]}"
    admin = create_engine(args.database_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    engine = create_engine(make_url(args.database_url).set(database=name))
    try:
        with engine.begin() as conn:
            create(conn, partitions=args.partitions)
            pid, rid, grantee = load(conn, inwoners=args.inwoners, goals=args.goals)
        params = {"pid": pid, "rid": rid, "grantee": grantee}
        summary = []
        with engine.connect() as conn:
            version = conn.scalar(text("SHOW server_version"))
            print(f"PostgreSQL {version}; {args.inwoners} inwoners x {args.goals} Goals; "
                  f"{args.partitions} hash partitions per table\n")  # fmt: skip
            for label, sql in STATEMENTS.items():
                rows = conn.execute(text(f"EXPLAIN (COSTS OFF) {sql}"), params).scalars()
                plan = "\n".join(rows)
                touched = partitions_in(plan)
                summary.append((label, touched))
                print(f"-- {label}: {touched} of {args.partitions} partitions\n{plan}\n")
        print("| statement | partitions (shards) touched |\n|---|---:|")
        for label, touched in summary:
            print(f"| {label} | {touched} of {args.partitions} |")
    finally:
        engine.dispose()
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


if __name__ == "__main__":
    main()
