"""Bulk Data export: a lease per job, so a job whose worker died is taken over

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-24 00:10:00

It touches only bulk_export_job.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("bulk_export_job", schema=None) as batch_op:
        batch_op.add_column(sa.Column("lease_owner", sa.String(length=100), nullable=True))
        batch_op.add_column(sa.Column("lease_expires_at", sa.BigInteger(), nullable=True))
        batch_op.add_column(
            sa.Column("types_done", sa.Integer(), nullable=False, server_default="0")
        )
        batch_op.add_column(sa.Column("access", sa.Text(), nullable=True))
        batch_op.add_column(sa.Column("export_request", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("bulk_export_job", schema=None) as batch_op:
        batch_op.drop_column("export_request")
        batch_op.drop_column("access")
        batch_op.drop_column("types_done")
        batch_op.drop_column("lease_expires_at")
        batch_op.drop_column("lease_owner")
