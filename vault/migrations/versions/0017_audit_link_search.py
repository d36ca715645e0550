"""An access-log link keeps its record's search index values until it is settled (issue 13)

Revision ID: 0017_audit_link_search
Revises: 0016_audit_event_references
Create Date: 2026-12-07 19:45:00.000000

On PostgreSQL the access log's writer settled each waiting record by opening its sealed body
again, reading its search values out of it and sending its rows back: four fifths of the
writer's busy time under steady load (docs/performance.md). A link now holds those values
(``audit_chain.search``, JSON) from the moment its record is sealed, so PostgreSQL settles a
batch in one statement (``audit/log.py``). Links written before this revision have none and
are settled as before.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0017_audit_link_search"
down_revision = "0016_audit_event_references"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("audit_chain") as batch:
        batch.add_column(sa.Column("search", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("audit_chain") as batch:
        batch.drop_column("search")
