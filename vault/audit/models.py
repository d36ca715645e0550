"""Tables of the access log's hash chains (``vault/audit/log.py``).

``audit_chain`` links each inwoner's AuditEvents into a hash chain so that a changed,
removed or reordered record is detected; ``audit_chain_head`` holds each chain's newest
link.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, ForeignKey, Integer, String
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
    resource_pk: Mapped[int] = mapped_column(ForeignKey("fhir_resource.pk"))
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))
    recorded: Mapped[Micros]
    version: Mapped[int] = mapped_column(Integer, default=1)
