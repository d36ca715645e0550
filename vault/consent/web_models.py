"""Tables of the consent page: sessions, login throttling, invitations, network accounts.

Who may see what is never stored here: that lives in Consent resources only (design
section 1). These tables say who is logged in and which account belongs to which person
of an inwoner's network. Secrets (session ids, invitation links) are stored only as
SHA-256 hashes, so a copy of the database opens no session and redeems no invitation.
Everything is in the database, not in a process, so any worker serves any request.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from vault.db import Base, Micros, Pk

__all__ = ["Invitation", "LoginFailure", "NetworkLink", "Representation", "WebSession"]


class WebSession(Base):
    __tablename__ = "web_session"
    id_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    account_id: Mapped[str] = mapped_column(String(64))
    csrf_token: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[Micros]
    expires_at: Mapped[Micros]

    __table_args__ = (Index("ix_web_session_account", "account_id"),)


class LoginFailure(Base):
    """One failed login, by a keyed hash of the user name (which need not exist)."""

    __tablename__ = "web_login_failure"
    id: Mapped[Pk]
    username_hash: Mapped[str] = mapped_column(String(64))
    at: Mapped[Micros]

    __table_args__ = (Index("ix_web_login_failure_user", "username_hash", "at"),)


class Invitation(Base):
    """A link for someone of the network; works once, until ``expires_at``."""

    __tablename__ = "web_invitation"
    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    patient_id: Mapped[str] = mapped_column(String(64))
    related_person_id: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[Micros]
    expires_at: Mapped[Micros]
    used_at: Mapped[int | None] = mapped_column(BigInteger, nullable=True)

    __table_args__ = (Index("ix_web_invitation_patient", "patient_id"),)


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
