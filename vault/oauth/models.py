"""Tables of the authorization server: clients, tokens, codes, used assertion ids, keys,
and the login sessions of people (``oauth/sessions.py``) with their failed logins.

Tokens and codes are stored only as SHA-256 hashes: a copy of the database gives no one a
working credential. Sessions, tokens and replay records live in the database, not in a
process, so any number of workers can serve behind a load balancer (design section 6).
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Boolean, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from vault.kernel.db import Base, Micros, Pk

__all__ = [
    "Account",
    "AuthorizationCode",
    "LoginFailure",
    "OAuthClient",
    "Token",
    "UsedJti",
    "WebSession",
]


class OAuthClient(Base):
    __tablename__ = "oauth_client"
    client_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    # "backend" (SMART Backend Services, private_key_jwt) or "public" (App Launch + PKCE).
    kind: Mapped[str] = mapped_column(String(16))
    organization_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    jwks: Mapped[str | None] = mapped_column(Text, nullable=True)
    jwks_uri: Mapped[str | None] = mapped_column(String(2000), nullable=True)
    redirect_uris: Mapped[str] = mapped_column(Text, default="")  # one per line
    scope: Mapped[str] = mapped_column(Text)  # space separated, the registered ceiling
    # Purposes of use (v3 PurposeOfUse codes, space separated) the client works for; a
    # Consent provision limited to a purpose applies only to clients registered for it.
    purpose: Mapped[str] = mapped_column(Text, default="", server_default="")
    created_at: Mapped[Micros]
    removed_at: Mapped[int | None] = mapped_column(BigInteger, nullable=True)


class Token(Base):
    __tablename__ = "oauth_token"
    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    kind: Mapped[str] = mapped_column(String(8))  # "access" | "refresh"
    client_id: Mapped[str] = mapped_column(String(64))
    scope: Mapped[str] = mapped_column(Text)
    patient_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    account_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    # Refresh tokens of one authorization share a family: reuse of a rotated one revokes it.
    family_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    issued_at: Mapped[Micros]
    expires_at: Mapped[Micros]
    revoked: Mapped[bool] = mapped_column(Boolean, default=False)
    rotated: Mapped[bool] = mapped_column(Boolean, default=False)

    __table_args__ = (
        Index("ix_oauth_token_client", "client_id"),
        Index("ix_oauth_token_family", "family_id"),
    )


class AuthorizationCode(Base):
    __tablename__ = "oauth_code"
    code_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    client_id: Mapped[str] = mapped_column(String(64))
    redirect_uri: Mapped[str] = mapped_column(String(2000))
    scope: Mapped[str] = mapped_column(Text)
    account_id: Mapped[str] = mapped_column(String(64))
    patient_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    code_challenge: Mapped[str] = mapped_column(String(128))
    code_challenge_method: Mapped[str] = mapped_column(String(8))
    nonce: Mapped[str | None] = mapped_column(String(255), nullable=True)
    expires_at: Mapped[Micros]
    used: Mapped[bool] = mapped_column(Boolean, default=False)


class UsedJti(Base):
    """Client assertion ids already seen, kept until the assertion would have expired."""

    __tablename__ = "oauth_used_jti"
    client_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    jti: Mapped[str] = mapped_column(String(255), primary_key=True)
    expires_at: Mapped[Micros]


class Account(Base):
    """A person who logs in: the inwoner (patient_id set) or someone of the network."""

    __tablename__ = "account"
    account_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    username: Mapped[str] = mapped_column(String(200), unique=True)
    password_hash: Mapped[str] = mapped_column(String(300))
    patient_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    display_name: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[Micros]


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
