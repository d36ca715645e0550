"""Tables of the access log's hash chains (``vault/audit/log.py``).

``audit_chain`` links each inwoner's AuditEvents into a hash chain so that a changed,
removed or reordered record is detected; ``audit_chain_head`` holds each chain's newest
link.

A link is written with its record, sealed (``body``): the compact record of a read, one
row instead of a resource with its versions and search index. The record becomes an
AuditEvent resource (``resource_pk``, ``body`` emptied) when someone who may read the log
asks, or when the access log is idle (``AuditLog.settle``). On PostgreSQL it also holds
the record's search values until then (``search``), so that settling needs no opening.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, ForeignKey, Index, Integer, LargeBinary, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column

from vault.kernel.db import Base, Micros

__all__ = ["AuditChain", "AuditChainHead"]


class AuditChainHead(Base):
    """The newest link of each chain; locking this row serialises appends to a chain."""

    __tablename__ = "audit_chain_head"
    chain: Mapped[str] = mapped_column(String(64), primary_key=True)
    seq: Mapped[int] = mapped_column(BigInteger)
    hash: Mapped[str] = mapped_column(String(64))


class AuditChain(Base):
    __tablename__ = "audit_chain"
    chain: Mapped[str] = mapped_column(String(64), primary_key=True)  # patient id or "_vault"
    seq: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    # None until the record is stored as an AuditEvent resource (settled).
    resource_pk: Mapped[int | None] = mapped_column(ForeignKey("fhir_resource.pk"), nullable=True)
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))
    recorded: Mapped[Micros]
    version: Mapped[int] = mapped_column(Integer, default=1)
    # The AuditEvent's id and its meta.lastUpdated (None on links older than migration 0014).
    resource_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    last_updated: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    # The record sealed as its AuditEvent's version 1 will be, until it is settled.
    body: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    # On PostgreSQL, until it is settled: the record's search index values as JSON, read
    # from the record when it is sealed, so that PostgreSQL settles it in one statement
    # without the vault opening it again (``audit/log.py``, ``_SETTLE_SQL``). The values the
    # search tables hold in clear: times, keyed hashes of codes, references.
    search: Mapped[str | None] = mapped_column(Text, nullable=True)

    __table_args__ = (
        Index(
            "ix_audit_chain_pending",
            "chain",
            "seq",
            sqlite_where=text("resource_pk IS NULL"),
            postgresql_where=text("resource_pk IS NULL"),
        ),
    )
