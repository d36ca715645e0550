"""The family plan: who is a member of which family, and grants that reach a family
compartment (issue 17 item 1, docs/family.md section 6)

Revision ID: 0012_family_plan
Revises: 0011_family
Create Date: 2026-12-04 19:30:00.000000

Existing Groups (none were stored before this revision: Group was not a stored type) need
no rows; existing grants reach no family compartment, so ``family_id`` starts empty.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012_family_plan"
down_revision = "0011_family"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "consent_family_member",
        sa.Column("family_id", sa.String(length=64), nullable=False),
        sa.Column("patient_id", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("family_id", "patient_id"),
    )
    op.create_index(
        "ix_consent_family_member_patient",
        "consent_family_member",
        ["patient_id", "family_id"],
    )
    with op.batch_alter_table("consent_grant") as batch_op:
        batch_op.add_column(sa.Column("family_id", sa.String(length=64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("consent_grant") as batch_op:
        batch_op.drop_column("family_id")
    op.drop_index("ix_consent_family_member_patient", table_name="consent_family_member")
    op.drop_table("consent_family_member")
