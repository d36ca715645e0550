"""Tables of the consent engine and the access log.

``consent_grant`` holds the rows compiled from active Consents (``consent/compile.py``),
rewritten in the transaction that writes the Consent, with ``consent_related``: what each
``related`` data grant reaches, fixed when the Consent is written. Every row carries the inwoner's
patient id, the partition key. ``audit_chain`` links each inwoner's AuditEvents into a
hash chain so that a changed, removed or reordered record is detected.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, ForeignKey, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from vault.db import Base, BigIntPk, Micros

__all__ = ["AuditChain", "AuditChainHead", "ConsentGrant", "ConsentRelated"]


class ConsentGrant(Base):
    __tablename__ = "consent_grant"
    id: Mapped[int] = mapped_column(BigIntPk, primary_key=True, autoincrement=True)
    consent_pk: Mapped[int] = mapped_column(ForeignKey("fhir_resource.pk", ondelete="CASCADE"))
    patient_id: Mapped[str] = mapped_column(String(64))
    effect: Mapped[str] = mapped_column(String(8))  # permit | deny
    grantee: Mapped[str | None] = mapped_column(String(110), nullable=True)
    action: Mapped[str | None] = mapped_column(String(16), nullable=True)
    resource_type: Mapped[str] = mapped_column(String(40))  # a type or "*"
    data_type: Mapped[str | None] = mapped_column(String(40), nullable=True)
    data_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    data_meaning: Mapped[str | None] = mapped_column(String(16), nullable=True)
    label_system: Mapped[str | None] = mapped_column(String(255), nullable=True)
    label_hash: Mapped[str | None] = mapped_column(String(32), nullable=True)
    purpose: Mapped[str | None] = mapped_column(String(64), nullable=True)
    valid_from: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    valid_until: Mapped[int | None] = mapped_column(BigInteger, nullable=True)

    __table_args__ = (
        Index("ix_consent_grant_lookup", "patient_id", "grantee", "resource_type"),
        Index("ix_consent_grant_consent", "consent_pk"),
    )


class ConsentRelated(Base):
    """What a ``related`` data grant reaches: the references its named resource held when
    the Consent was written (``consent/service.py``). A later write of the named resource,
    by a partner or anyone, adds nothing here: a write never widens a grant."""

    __tablename__ = "consent_related"
    id: Mapped[int] = mapped_column(BigIntPk, primary_key=True, autoincrement=True)
    consent_pk: Mapped[int] = mapped_column(ForeignKey("fhir_resource.pk", ondelete="CASCADE"))
    patient_id: Mapped[str] = mapped_column(String(64))
    data_type: Mapped[str] = mapped_column(String(40))  # the resource the Consent names
    data_id: Mapped[str] = mapped_column(String(64))
    target_type: Mapped[str] = mapped_column(String(40))  # what it referred to then
    target_id: Mapped[str] = mapped_column(String(64))

    __table_args__ = (Index("ix_consent_related_target", "consent_pk", "target_type", "target_id"),)


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
