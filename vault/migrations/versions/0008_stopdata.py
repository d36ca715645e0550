"""A related data grant reaches what its resource referred to when the Consent was written

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-04 10:10:00

Adds consent_related and fills it for the Consents already in force from the references
their named resources hold now (the moment of this upgrade stands in for the moment each
Consent was written). It touches nothing else.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "consent_related",
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
        sa.Column("data_type", sa.String(length=40), nullable=False),
        sa.Column("data_id", sa.String(length=64), nullable=False),
        sa.Column("target_type", sa.String(length=40), nullable=False),
        sa.Column("target_id", sa.String(length=64), nullable=False),
        sa.ForeignKeyConstraint(["consent_pk"], ["fhir_resource.pk"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("consent_related", schema=None) as batch_op:
        batch_op.create_index(
            "ix_consent_related_target",
            ["consent_pk", "target_type", "target_id"],
            unique=False,
        )
    op.execute(
        """
        INSERT INTO consent_related
            (consent_pk, patient_id, data_type, data_id, target_type, target_id)
        SELECT DISTINCT g.consent_pk, g.patient_id, g.data_type, g.data_id,
               sr.target_type, sr.target_id
        FROM consent_grant g
        JOIN fhir_resource named
          ON named.resource_type = g.data_type AND named.resource_id = g.data_id
         AND named.deleted = false
        JOIN search_reference sr ON sr.resource_pk = named.pk
        WHERE g.data_meaning = 'related'
        """
    )


def downgrade() -> None:
    with op.batch_alter_table("consent_related", schema=None) as batch_op:
        batch_op.drop_index("ix_consent_related_target")
    op.drop_table("consent_related")
