"""Outcome reports: the frozen figures of closed periods

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-04 10:40:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

_PK = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "report_frozen",
        sa.Column("id", _PK, autoincrement=True, nullable=False),
        sa.Column("organization", sa.String(length=110), nullable=False),
        sa.Column("period", sa.String(length=16), nullable=False),
        sa.Column("k", sa.Integer(), nullable=False),
        sa.Column("frozen_at", sa.BigInteger(), nullable=False),
        sa.Column("figures", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("organization", "period", name="uq_report_frozen"),
    )


def downgrade() -> None:
    op.drop_table("report_frozen")
