"""An index for the family half of a permit's compartment (issue 13)

Revision ID: 0013_grant_family_index
Revises: 0012_family_plan
Create Date: 2026-12-05 08:30:00.000000

``consent/enforce._compartment`` matches a grant by ``patient_id = row`` or by
``family_id = row``. Only the first had an index, so neither SQLite nor PostgreSQL could
use one for the OR: every row of a partner's search or ``$export`` scanned every grant of
the vault (an export page of 501 rows took 103 ms at 300 inwoners, growing with them).
With this partial index both halves are index searches (8 ms for the same page).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0013_grant_family_index"
down_revision = "0012_family_plan"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index(
        "ix_consent_grant_family",
        "consent_grant",
        ["family_id", "grantee", "resource_type"],
        sqlite_where=sa.text("family_id IS NOT NULL"),
        postgresql_where=sa.text("family_id IS NOT NULL"),
    )


def downgrade() -> None:
    op.drop_index("ix_consent_grant_family", table_name="consent_grant")
