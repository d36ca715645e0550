"""An AuditEvent's references in a table of their own (issue 13)

Revision ID: 0016_audit_event_references
Revises: 0015_audit_event_single_values
Create Date: 2026-12-07 11:45:00.000000

Every read by a partner stores an AuditEvent, and its ``patient``, ``entity`` and ``agent``
references each took a row of ``search_reference``, whose lookup index is ordered by the
target: each record's rows landed on pages spread over that whole index, and a record cost
more the longer the log grew. They now go to ``search_audit_reference``, indexed by the
record's key only (``store.models.SearchAuditReference``). The upgrade moves the rows of
the AuditEvents stored so far; the downgrade moves them back.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0016_audit_event_references"
down_revision = "0015_audit_event_single_values"
branch_labels = None
depends_on = None

_KEY = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_COLUMNS = "resource_pk, resource_type, patient_id, param, target_type, target_id"


def upgrade() -> None:
    op.create_table(
        "search_audit_reference",
        sa.Column("id", _KEY, autoincrement=True, nullable=False),
        sa.Column("resource_pk", _KEY, nullable=False),
        sa.Column("resource_type", sa.String(40), nullable=False),
        sa.Column("patient_id", sa.String(64), nullable=True),
        sa.Column("param", sa.String(64), nullable=False),
        sa.Column("target_type", sa.String(40), nullable=False),
        sa.Column("target_id", sa.String(64), nullable=False),
        sa.ForeignKeyConstraint(["resource_pk"], ["fhir_resource.pk"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(
        "ix_search_audit_reference_resource",
        "search_audit_reference",
        ["resource_pk", "param"],
    )
    _move("search_reference", "search_audit_reference")


def downgrade() -> None:
    _move("search_audit_reference", "search_reference")
    op.drop_index("ix_search_audit_reference_resource", table_name="search_audit_reference")
    op.drop_table("search_audit_reference")


def _move(source: str, target: str) -> None:
    """Every AuditEvent's reference row from ``source`` to ``target``, in key order."""
    op.execute(
        f"INSERT INTO {target} ({_COLUMNS}) SELECT {_COLUMNS} FROM {source}"  # noqa: S608
        " WHERE resource_type = 'AuditEvent' ORDER BY resource_pk, id"
    )
    op.execute(f"DELETE FROM {source} WHERE resource_type = 'AuditEvent'")  # noqa: S608
