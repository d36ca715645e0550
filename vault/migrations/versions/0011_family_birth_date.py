"""A child's consent by age: the inwoner's birth date for the age rules (issue 17)

Revision ID: 0011_family
Revises: 0010
Create Date: 2026-12-04 16:00:00.000000

Existing Patients get their row on their next write: their birthDate is sealed under their
own data key, which a migration does not hold (docs/family.md, "What is on paper only").
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011_family"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "consent_birth_date",
        sa.Column("patient_id", sa.String(length=64), nullable=False),
        sa.Column("birth_date", sa.String(length=10), nullable=False),
        sa.PrimaryKeyConstraint("patient_id"),
    )


def downgrade() -> None:
    op.drop_table("consent_birth_date")
