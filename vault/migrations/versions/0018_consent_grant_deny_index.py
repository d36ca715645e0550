"""The deny check finds a Consent's deny rows by index, not among all its grant rows (issue 13)

Revision ID: 0018_consent_grant_deny_index
Revises: 0017_audit_link_search
Create Date: 2026-12-07 22:50:00.000000

Every permit a partner's read or search reaches is checked against the deny rows of its own
Consent (``consent/enforce.granted``). ``ix_consent_grant_consent`` held ``consent_pk`` only,
so that check read every grant row of the Consent and dropped the permits: a hundred rows
for a Consent naming a hundred parties, for every row a partner read or searched. With
``effect`` in the index the check reads the deny rows alone, most often none
(docs/performance.md).
"""

from __future__ import annotations

from alembic import op

revision = "0018_consent_grant_deny_index"
down_revision = "0017_audit_link_search"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.drop_index("ix_consent_grant_consent", table_name="consent_grant")
    op.create_index("ix_consent_grant_consent", "consent_grant", ["consent_pk", "effect"])


def downgrade() -> None:
    op.drop_index("ix_consent_grant_consent", table_name="consent_grant")
    op.create_index("ix_consent_grant_consent", "consent_grant", ["consent_pk"])
