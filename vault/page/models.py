"""Tables of the consent page: invitations for someone of the inwoner's network.

Who may see what is never stored here: that lives in Consent resources only (design
section 1). Login sessions are the authorization server's (``vault/oauth/sessions.py``);
network accounts and representation are the consent engine's (``vault/consent/models.py``).
An invitation link is stored only as a SHA-256 hash, so a copy of the database redeems no
invitation.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from vault.kernel.db import Base, Micros

__all__ = ["Invitation"]


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
