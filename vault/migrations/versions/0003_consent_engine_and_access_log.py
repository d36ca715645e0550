"""consent engine and access log

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23 21:48:16.287711
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "audit_chain_head",
        sa.Column("chain", sa.String(length=64), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("hash", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("chain"),
    )
    op.create_table(
        "audit_chain",
        sa.Column("chain", sa.String(length=64), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column(
            "resource_pk", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("prev_hash", sa.String(length=64), nullable=False),
        sa.Column("hash", sa.String(length=64), nullable=False),
        sa.Column("recorded", sa.BigInteger(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["resource_pk"],
            ["fhir_resource.pk"],
        ),
        sa.PrimaryKeyConstraint("chain", "seq"),
    )
    op.create_table(
        "consent_grant",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column(
            "consent_pk", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("patient_id", sa.String(length=64), nullable=False),
        sa.Column("effect", sa.String(length=8), nullable=False),
        sa.Column("grantee", sa.String(length=110), nullable=True),
        sa.Column("action", sa.String(length=16), nullable=True),
        sa.Column("resource_type", sa.String(length=40), nullable=False),
        sa.Column("data_type", sa.String(length=40), nullable=True),
        sa.Column("data_id", sa.String(length=64), nullable=True),
        sa.Column("data_meaning", sa.String(length=16), nullable=True),
        sa.Column("label_system", sa.String(length=255), nullable=True),
        sa.Column("label_hash", sa.String(length=32), nullable=True),
        sa.Column("purpose", sa.String(length=64), nullable=True),
        sa.Column("valid_from", sa.BigInteger(), nullable=True),
        sa.Column("valid_until", sa.BigInteger(), nullable=True),
        sa.ForeignKeyConstraint(["consent_pk"], ["fhir_resource.pk"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("consent_grant", schema=None) as batch_op:
        batch_op.create_index("ix_consent_grant_consent", ["consent_pk"], unique=False)
        batch_op.create_index(
            "ix_consent_grant_lookup", ["patient_id", "grantee", "resource_type"], unique=False
        )

    with op.batch_alter_table("oauth_client", schema=None) as batch_op:
        batch_op.add_column(sa.Column("purpose", sa.Text(), server_default="", nullable=False))


def downgrade() -> None:
    with op.batch_alter_table("oauth_client", schema=None) as batch_op:
        batch_op.drop_column("purpose")

    with op.batch_alter_table("consent_grant", schema=None) as batch_op:
        batch_op.drop_index("ix_consent_grant_lookup")
        batch_op.drop_index("ix_consent_grant_consent")

    op.drop_table("consent_grant")
    op.drop_table("audit_chain")
    op.drop_table("audit_chain_head")
