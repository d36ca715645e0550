"""The access log's compact record: a read's record is its chain link, sealed (issue 13)

Revision ID: 0014_compact_access_log
Revises: 0013_grant_family_index
Create Date: 2026-12-05 12:00:00.000000

A partner's read used to store its AuditEvent as a full resource at once: the resource
row, its version and about a dozen search-index rows, some 14 database pages per record
(docs/performance.md). Now the record is sealed into its chain link (``body``) and becomes
an AuditEvent resource only when someone who may read the log asks, or when the log is
idle (``audit/log.py``, ``AuditLog.settle``). ``resource_pk`` is empty until then, and a
partial index finds the links still waiting.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0014_compact_access_log"
down_revision = "0013_grant_family_index"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("audit_chain") as batch:
        batch.alter_column(
            "resource_pk",
            existing_type=sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            nullable=True,
        )
        batch.add_column(sa.Column("resource_id", sa.String(64), nullable=True))
        batch.add_column(sa.Column("last_updated", sa.BigInteger(), nullable=True))
        batch.add_column(sa.Column("body", sa.LargeBinary(), nullable=True))
    op.create_index(
        "ix_audit_chain_pending",
        "audit_chain",
        ["chain", "seq"],
        sqlite_where=sa.text("resource_pk IS NULL"),
        postgresql_where=sa.text("resource_pk IS NULL"),
    )


def downgrade() -> None:
    # Links still waiting have no AuditEvent to point at: the downgrade needs them settled
    # first (``vault audit settle``), else the NOT NULL below refuses.
    op.drop_index("ix_audit_chain_pending", table_name="audit_chain")
    with op.batch_alter_table("audit_chain") as batch:
        batch.drop_column("body")
        batch.drop_column("last_updated")
        batch.drop_column("resource_id")
        batch.alter_column(
            "resource_pk",
            existing_type=sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            nullable=False,
        )
