"""Tables of the FHIR store (design section 4).

A resource is one row in ``fhir_resource`` (its current state) and one row per version in
``fhir_version`` (the sealed body; a deletion is a version without a body). Search
parameters live in three index tables beside the ciphertext: tokens as keyed hashes,
references, and date ranges. Every row of personal data carries the patient id of its
compartment: the partition key when one database is no longer enough. Organization and
Practitioner rows belong to no compartment (patient id NULL) and are sealed with the
vault's shared data key.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from vault.kernel.db import Base, FhirId, Micros, PatientId, Pk

__all__ = [
    "DataKey",
    "ResourceRow",
    "SearchAuditEvent",
    "SearchAuditReference",
    "SearchDate",
    "SearchReference",
    "SearchToken",
    "SigningKey",
    "VaultMeta",
    "VersionRow",
]

SHARED_OWNER = "_shared"  # owner name of the data key for resources outside any compartment


class VaultMeta(Base):
    """Small named values, such as the wrapped blind-index key."""

    __tablename__ = "vault_meta"
    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[bytes] = mapped_column(LargeBinary)
    master_key_id: Mapped[str | None] = mapped_column(String(16), nullable=True)


class DataKey(Base):
    """One inwoner's data key, wrapped by the master key. NULL once crypto-shredded."""

    __tablename__ = "data_key"
    owner: Mapped[str] = mapped_column(String(64), primary_key=True)
    wrapped: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    master_key_id: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[Micros]
    destroyed_at: Mapped[int | None] = mapped_column(BigInteger, nullable=True)


class ResourceRow(Base):
    __tablename__ = "fhir_resource"
    pk: Mapped[Pk]
    resource_type: Mapped[str] = mapped_column(String(40))
    resource_id: Mapped[FhirId]
    patient_id: Mapped[PatientId]
    version_id: Mapped[int] = mapped_column(Integer)
    last_updated: Mapped[Micros]
    deleted: Mapped[bool] = mapped_column(Boolean, default=False)

    __table_args__ = (
        UniqueConstraint("resource_type", "resource_id", name="uq_fhir_resource_type_id"),
        Index("ix_fhir_resource_compartment", "resource_type", "patient_id", "last_updated"),
        Index("ix_fhir_resource_updated", "resource_type", "last_updated"),
    )


class VersionRow(Base):
    __tablename__ = "fhir_version"
    resource_pk: Mapped[int] = mapped_column(
        ForeignKey("fhir_resource.pk", ondelete="CASCADE"), primary_key=True
    )
    version_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    resource_type: Mapped[str] = mapped_column(String(40))
    resource_id: Mapped[FhirId]
    patient_id: Mapped[PatientId]
    last_updated: Mapped[Micros]
    deleted: Mapped[bool] = mapped_column(Boolean, default=False)
    body: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)

    __table_args__ = (Index("ix_fhir_version_type_updated", "resource_type", "last_updated"),)


class SearchToken(Base):
    """A token search value: the system in clear (a URL), the code as a keyed hash."""

    __tablename__ = "search_token"
    id: Mapped[Pk]
    resource_pk: Mapped[int] = mapped_column(ForeignKey("fhir_resource.pk", ondelete="CASCADE"))
    resource_type: Mapped[str] = mapped_column(String(40))
    patient_id: Mapped[PatientId]
    param: Mapped[str] = mapped_column(String(64))
    system: Mapped[str | None] = mapped_column(String(255), nullable=True)
    code_hash: Mapped[str] = mapped_column(String(32))

    __table_args__ = (
        Index("ix_search_token_lookup", "resource_type", "param", "code_hash", "resource_pk"),
        Index("ix_search_token_resource", "resource_pk"),
    )


class _ReferenceRow:
    """The columns of a reference search value: ``search_reference``'s and
    ``search_audit_reference``'s, which differ in their indexes only."""

    id: Mapped[Pk]
    resource_pk: Mapped[int] = mapped_column(ForeignKey("fhir_resource.pk", ondelete="CASCADE"))
    resource_type: Mapped[str] = mapped_column(String(40))
    patient_id: Mapped[PatientId]
    param: Mapped[str] = mapped_column(String(64))
    target_type: Mapped[str] = mapped_column(String(40))
    target_id: Mapped[FhirId]


class SearchReference(_ReferenceRow, Base):
    __tablename__ = "search_reference"

    __table_args__ = (
        Index("ix_search_reference_lookup", "resource_type", "param", "target_id", "target_type"),
        Index("ix_search_reference_resource", "resource_pk", "param"),
    )


class SearchAuditReference(_ReferenceRow, Base):
    """An AuditEvent's references (``patient``, ``entity``, ``agent``): the rows
    ``search_reference`` holds for every other type, without its lookup index.

    That index is ordered by the reference's target, so each record's rows landed on pages
    spread over the whole index, and the cost of a record grew with the log: in group
    commits of 1,000 records naming eight resources each, 222 to 247 µs a record in the
    first 10,000 and 358 to 361 µs in the sixth (``benchmarks/access_log_growth.py``,
    docs/performance.md). Here the only index is by the record's key, so new rows go at
    its end: 166 to 201 µs a record throughout. A search finds the records by
    ``fhir_resource``'s indexes (an inwoner's by her compartment) and checks their rows by
    that key; no search plan starts from a target."""

    __tablename__ = "search_audit_reference"

    __table_args__ = (Index("ix_search_audit_reference_resource", "resource_pk", "param"),)


class SearchDate(Base):
    """A date search value as a half-open range [low, high) in microseconds."""

    __tablename__ = "search_date"
    id: Mapped[Pk]
    resource_pk: Mapped[int] = mapped_column(ForeignKey("fhir_resource.pk", ondelete="CASCADE"))
    resource_type: Mapped[str] = mapped_column(String(40))
    patient_id: Mapped[PatientId]
    param: Mapped[str] = mapped_column(String(64))
    low: Mapped[Micros]
    high: Mapped[Micros]

    __table_args__ = (
        Index("ix_search_date_lookup", "resource_type", "param", "low"),
        Index("ix_search_date_resource", "resource_pk", "param"),
    )


class SearchAuditEvent(Base):
    """An AuditEvent's search values that have one value at most, in one row: ``date``
    (``recorded``, 1..1), ``type`` (a Coding, 0..1), ``action`` and ``outcome`` (codes,
    0..1). The access log writes an AuditEvent for every read by a partner; one row here
    instead of four in ``search_token`` and ``search_date`` (each with two indexes) took
    about a tenth off the CPU of such a read (docs/performance.md). A search finds the
    records by ``fhir_resource``'s indexes (an inwoner's by her compartment) and each row
    here by its resource's key, which is all the index the table has: an index on a value
    would be one more to write for every read, and no search plan starts from it.
    """

    __tablename__ = "search_audit_event"
    # The rowid on SQLite: the row is stored in its key's order, new rows at the end.
    resource_pk: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer(), "sqlite"),
        ForeignKey("fhir_resource.pk", ondelete="CASCADE"),
        primary_key=True,
        autoincrement=False,
    )
    patient_id: Mapped[PatientId]
    date_low: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    date_high: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    type_system: Mapped[str | None] = mapped_column(String(255), nullable=True)
    type_hash: Mapped[str | None] = mapped_column(String(32), nullable=True)
    action_hash: Mapped[str | None] = mapped_column(String(32), nullable=True)
    outcome_hash: Mapped[str | None] = mapped_column(String(32), nullable=True)


class SigningKey(Base):
    """The vault's own signing keys (id tokens). Private halves sealed by the master key."""

    __tablename__ = "oauth_signing_key"
    kid: Mapped[str] = mapped_column(String(64), primary_key=True)
    algorithm: Mapped[str] = mapped_column(String(16))
    private_sealed: Mapped[bytes] = mapped_column(LargeBinary)
    master_key_id: Mapped[str] = mapped_column(String(16))
    public_jwk: Mapped[str] = mapped_column(Text)
    created_at: Mapped[Micros]
    # Set when a newer key takes over; the public key stays published until this passes.
    retire_after: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
