"""Representation: who acts for an inwoner, from when until when

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-04 10:45:00

Adds web_representation. ``web_network_link.legal_basis`` is no longer read; a role that
was set there is carried over as starting when the link was made (the moment it was set
was not kept), so nobody gains or loses a role by the upgrade.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "web_representation",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("patient_id", sa.String(length=64), nullable=False),
        sa.Column("related_person_id", sa.String(length=64), nullable=False),
        sa.Column("legal_basis", sa.String(length=32), nullable=False),
        sa.Column("started_at", sa.BigInteger(), nullable=False),
        sa.Column("ended_at", sa.BigInteger(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(
        "ix_web_representation_patient",
        "web_representation",
        ["patient_id", "related_person_id"],
        unique=False,
    )
    op.execute(
        "INSERT INTO web_representation (patient_id, related_person_id, legal_basis, started_at)"
        " SELECT patient_id, related_person_id, legal_basis, created_at FROM web_network_link"
        " WHERE legal_basis IS NOT NULL"
    )


def downgrade() -> None:
    op.drop_index("ix_web_representation_patient", table_name="web_representation")
    op.drop_table("web_representation")
