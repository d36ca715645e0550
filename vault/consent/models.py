"""Tables of the consent engine: grants, and who may act for the inwoner.

``consent_grant`` holds the rows compiled from active Consents (``consent/compile.py``),
rewritten in the transaction that writes the Consent, with ``consent_related``: what each
``related`` data grant reaches, fixed when the Consent is written. Every row carries the
inwoner's patient id, the partition key. ``web_network_link`` ties an account to the
RelatedPerson it is, and ``web_representation`` says who may act for the inwoner and from
when until when (``consent/representation.py``). The table names keep their ``web_``
prefix from when the consent page held them: renaming tables buys nothing.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, ForeignKey, Index, String, text
from sqlalchemy.orm import Mapped, mapped_column

from vault.kernel.db import Base, BigIntPk, Micros, Pk

__all__ = [
    "BirthDate",
    "ConsentGrant",
    "ConsentRelated",
    "FamilyMember",
    "NetworkLink",
    "Representation",
]


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
    # Set when ``data`` names a resource of a family compartment (docs/family.md section 6):
    # the Group id whose rows this grant reaches besides ``patient_id``'s own, for as long
    # as ``patient_id`` is a member of that family (``consent_family_member``).
    family_id: Mapped[str | None] = mapped_column(String(64), nullable=True)

    __table_args__ = (
        Index("ix_consent_grant_lookup", "patient_id", "grantee", "resource_type"),
        # The deny check of every permit (``consent/enforce.granted``) asks for the deny rows
        # of the permit's own Consent: by ``consent_pk`` alone it read every grant row of that
        # Consent, a hundred for a Consent naming a hundred parties (migration 0018).
        Index("ix_consent_grant_consent", "consent_pk", "effect"),
        # The family half of the permit's compartment (``consent/enforce._compartment``:
        # ``patient_id = row`` or ``family_id = row``): without it the OR could use neither
        # index and every row of a search or an export scanned every grant of the vault.
        # Partial: most grants reach no family compartment.
        Index(
            "ix_consent_grant_family",
            "family_id",
            "grantee",
            "resource_type",
            sqlite_where=text("family_id IS NOT NULL"),
            postgresql_where=text("family_id IS NOT NULL"),
        ),
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


class NetworkLink(Base):
    """The account of someone of an inwoner's network, and the RelatedPerson it is.

    ``legal_basis`` set: a representative (machtiging, mentor, curator, ouder met gezag)
    who may manage the inwoner's grants; what they do is logged as them acting for the
    inwoner.
    """

    __tablename__ = "web_network_link"
    account_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    patient_id: Mapped[str] = mapped_column(String(64))
    related_person_id: Mapped[str] = mapped_column(String(64))
    legal_basis: Mapped[str | None] = mapped_column(String(32), nullable=True)
    created_at: Mapped[Micros]

    __table_args__ = (Index("ix_web_network_link_patient", "patient_id"),)


class Representation(Base):
    """Someone of the network acting for the inwoner, and from when until when.

    The one place the right to act for the inwoner comes from (``consent/representation.py``
    reads it on every page request). Rows are never changed back: a role that ends gets
    ``ended_at``, so the access log can say what someone's role was at any past instant.
    """

    __tablename__ = "web_representation"
    id: Mapped[Pk]
    patient_id: Mapped[str] = mapped_column(String(64))
    related_person_id: Mapped[str] = mapped_column(String(64))
    legal_basis: Mapped[str] = mapped_column(String(32))
    started_at: Mapped[Micros]
    ended_at: Mapped[int | None] = mapped_column(BigInteger, nullable=True)

    __table_args__ = (Index("ix_web_representation_patient", "patient_id", "related_person_id"),)


class BirthDate(Base):
    """The inwoner's ``Patient.birthDate`` (a full date), for the age rules of a child's
    consent (``consent/representation.py``, docs/family.md).

    Written in the transaction of every Patient write, so the rules read one row at request
    time instead of opening the sealed Patient. A Patient without a full birthDate has no
    row, and no age rule applies to her.
    """

    __tablename__ = "consent_birth_date"
    patient_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    birth_date: Mapped[str] = mapped_column(String(10))  # YYYY-MM-DD


class FamilyMember(Base):
    """Who is a member of which family: ``Group.member.entity`` of every family Group.

    Written in the transaction of every Group write (``consent/family.py``), like the birth
    date, so the access decision reads one indexed row instead of opening the sealed Group:
    a member sees the family compartment, and a member's Consent that names the family plan
    reaches it, only while this row exists.
    """

    __tablename__ = "consent_family_member"
    family_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    patient_id: Mapped[str] = mapped_column(String(64), primary_key=True)

    __table_args__ = (Index("ix_consent_family_member_patient", "patient_id", "family_id"),)
