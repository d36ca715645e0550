"""An AuditEvent's single search values in one row (issue 13)

Revision ID: 0015_audit_event_single_values
Revises: 0014_compact_access_log
Create Date: 2026-12-06 16:00:00.000000

Every read by a partner stores an AuditEvent, and its ``date``, ``type``, ``action`` and
``outcome`` each took a row of ``search_token`` or ``search_date`` with two indexes. Each
has one value at most (R4: ``recorded`` 1..1, the others 0..1), so they now share one row
of ``search_audit_event``, keyed by the resource (``store.models.SearchAuditEvent``). The
upgrade moves the rows of the AuditEvents stored so far; the downgrade moves them back.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0015_audit_event_single_values"
down_revision = "0014_compact_access_log"
branch_labels = None
depends_on = None

_KEY = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "search_audit_event",
        sa.Column("resource_pk", _KEY, autoincrement=False, nullable=False),
        sa.Column("patient_id", sa.String(64), nullable=True),
        sa.Column("date_low", sa.BigInteger(), nullable=True),
        sa.Column("date_high", sa.BigInteger(), nullable=True),
        sa.Column("type_system", sa.String(255), nullable=True),
        sa.Column("type_hash", sa.String(32), nullable=True),
        sa.Column("action_hash", sa.String(32), nullable=True),
        sa.Column("outcome_hash", sa.String(32), nullable=True),
        sa.ForeignKeyConstraint(["resource_pk"], ["fhir_resource.pk"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("resource_pk"),
    )
    # One value each (a record the vault wrote never has two); MIN picks it.
    op.execute(
        """
        INSERT INTO search_audit_event (resource_pk, patient_id, date_low, date_high,
                                        type_system, type_hash, action_hash, outcome_hash)
        SELECT r.pk, r.patient_id,
          (SELECT MIN(d.low) FROM search_date d WHERE d.resource_pk = r.pk AND d.param = 'date'),
          (SELECT MIN(d.high) FROM search_date d WHERE d.resource_pk = r.pk AND d.param = 'date'),
          (SELECT MIN(t.system) FROM search_token t
            WHERE t.resource_pk = r.pk AND t.param = 'type'),
          (SELECT MIN(t.code_hash) FROM search_token t
            WHERE t.resource_pk = r.pk AND t.param = 'type'),
          (SELECT MIN(t.code_hash) FROM search_token t
            WHERE t.resource_pk = r.pk AND t.param = 'action'),
          (SELECT MIN(t.code_hash) FROM search_token t
            WHERE t.resource_pk = r.pk AND t.param = 'outcome')
        FROM fhir_resource r
        WHERE r.resource_type = 'AuditEvent' AND r.deleted = false
        """
    )
    op.execute(
        "DELETE FROM search_token WHERE resource_type = 'AuditEvent'"
        " AND param IN ('type', 'action', 'outcome')"
    )
    op.execute("DELETE FROM search_date WHERE resource_type = 'AuditEvent' AND param = 'date'")


def downgrade() -> None:
    op.execute(
        """
        INSERT INTO search_token (resource_pk, resource_type, patient_id, param, system, code_hash)
        SELECT resource_pk, 'AuditEvent', patient_id, 'type', type_system, type_hash
        FROM search_audit_event WHERE type_hash IS NOT NULL
        UNION ALL
        SELECT resource_pk, 'AuditEvent', patient_id, 'action', NULL, action_hash
        FROM search_audit_event WHERE action_hash IS NOT NULL
        UNION ALL
        SELECT resource_pk, 'AuditEvent', patient_id, 'outcome', NULL, outcome_hash
        FROM search_audit_event WHERE outcome_hash IS NOT NULL
        """
    )
    op.execute(
        "INSERT INTO search_date (resource_pk, resource_type, patient_id, param, low, high)"
        " SELECT resource_pk, 'AuditEvent', patient_id, 'date', date_low, date_high"
        " FROM search_audit_event WHERE date_low IS NOT NULL"
    )
    op.drop_table("search_audit_event")
