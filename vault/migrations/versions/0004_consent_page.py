"""consent page

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-23 21:57:05.151992
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "web_invitation",
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("patient_id", sa.String(length=64), nullable=False),
        sa.Column("related_person_id", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("expires_at", sa.BigInteger(), nullable=False),
        sa.Column("used_at", sa.BigInteger(), nullable=True),
        sa.PrimaryKeyConstraint("token_hash"),
    )
    with op.batch_alter_table("web_invitation", schema=None) as batch_op:
        batch_op.create_index("ix_web_invitation_patient", ["patient_id"], unique=False)

    op.create_table(
        "web_login_failure",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("username_hash", sa.String(length=64), nullable=False),
        sa.Column("at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("web_login_failure", schema=None) as batch_op:
        batch_op.create_index("ix_web_login_failure_user", ["username_hash", "at"], unique=False)

    op.create_table(
        "web_network_link",
        sa.Column("account_id", sa.String(length=64), nullable=False),
        sa.Column("patient_id", sa.String(length=64), nullable=False),
        sa.Column("related_person_id", sa.String(length=64), nullable=False),
        sa.Column("legal_basis", sa.String(length=32), nullable=True),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("account_id"),
    )
    with op.batch_alter_table("web_network_link", schema=None) as batch_op:
        batch_op.create_index("ix_web_network_link_patient", ["patient_id"], unique=False)

    op.create_table(
        "web_session",
        sa.Column("id_hash", sa.String(length=64), nullable=False),
        sa.Column("account_id", sa.String(length=64), nullable=False),
        sa.Column("csrf_token", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("expires_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id_hash"),
    )
    with op.batch_alter_table("web_session", schema=None) as batch_op:
        batch_op.create_index("ix_web_session_account", ["account_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("web_session", schema=None) as batch_op:
        batch_op.drop_index("ix_web_session_account")

    op.drop_table("web_session")
    with op.batch_alter_table("web_network_link", schema=None) as batch_op:
        batch_op.drop_index("ix_web_network_link_patient")

    op.drop_table("web_network_link")
    with op.batch_alter_table("web_login_failure", schema=None) as batch_op:
        batch_op.drop_index("ix_web_login_failure_user")

    op.drop_table("web_login_failure")
    with op.batch_alter_table("web_invitation", schema=None) as batch_op:
        batch_op.drop_index("ix_web_invitation_patient")

    op.drop_table("web_invitation")
