"""Local accounts: who may log in, with a memory-hard password hash (scrypt, RFC 7914).

scrypt comes with Python's hashlib, so no extra dependency is needed for a KDF that is
costly in memory as well as time. Logging in takes the same time whether or not the user
name exists: an unknown name is checked against a dummy hash.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import uuid
from dataclasses import dataclass

from sqlalchemy import Connection, insert, select

from vault.oauth.models import Account

__all__ = ["AccountInfo", "authenticate", "create_account", "hash_password", "verify_password"]

# 16 MiB of memory per hash (128 * r * n bytes); about 50 ms on this class of machine.
SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**14, 8, 1
MIN_PASSWORD_LENGTH = 10


@dataclass(frozen=True, slots=True)
class AccountInfo:
    account_id: str
    username: str
    display_name: str
    patient_id: str | None

    def get_user_id(self) -> str:  # authlib asks the "user" for an id
        return self.account_id


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def hash_password(password: str) -> str:
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(
        password.encode("utf-8"), salt=salt, n=SCRYPT_N, r=SCRYPT_R, p=SCRYPT_P, dklen=32
    )
    return f"scrypt${SCRYPT_N}${SCRYPT_R}${SCRYPT_P}${_b64(salt)}${_b64(digest)}"


def verify_password(password: str, encoded: str) -> bool:
    try:
        scheme, n, r, p, salt, digest = encoded.split("$")
        if scheme != "scrypt":
            return False
        expected = base64.b64decode(digest)
        actual = hashlib.scrypt(
            password.encode("utf-8"),
            salt=base64.b64decode(salt),
            n=int(n),
            r=int(r),
            p=int(p),
            dklen=len(expected),
        )
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(actual, expected)


_DUMMY_HASH = hash_password(secrets.token_urlsafe(16))


def create_account(
    conn: Connection,
    *,
    username: str,
    password: str,
    display_name: str,
    patient_id: str | None,
    now: int,
) -> AccountInfo:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise ValueError(f"a password needs at least {MIN_PASSWORD_LENGTH} characters")
    account_id = str(uuid.uuid4())
    conn.execute(
        insert(Account).values(
            account_id=account_id,
            username=username.strip().lower(),
            password_hash=hash_password(password),
            patient_id=patient_id,
            display_name=display_name,
            created_at=now,
        )
    )
    return AccountInfo(account_id, username.strip().lower(), display_name, patient_id)


def find_account(conn: Connection, account_id: str) -> AccountInfo | None:
    row = conn.execute(select(Account).where(Account.account_id == account_id)).first()
    if row is None:
        return None
    return AccountInfo(row.account_id, row.username, row.display_name, row.patient_id)


def authenticate(conn: Connection, *, username: str, password: str) -> AccountInfo | None:
    row = conn.execute(select(Account).where(Account.username == username.strip().lower())).first()
    if row is None:
        verify_password(password, _DUMMY_HASH)
        return None
    if not verify_password(password, row.password_hash):
        return None
    return AccountInfo(row.account_id, row.username, row.display_name, row.patient_id)
