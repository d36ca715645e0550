"""Keys of the authorization server: the vault's signing keys and the clients' public keys.

The vault signs id tokens (OpenID Connect Core 1.0, section 2) with its own keys, published
at ``/oauth/jwks``. ``vault keys rotate-signing`` adds a new key and retires the old one: the
old public key stays in the JWKS until every token it signed has expired.

Clients of SMART Backend Services register a JWKS inline or as a ``jwks_uri``
(https://hl7.org/fhir/smart-app-launch/backend-services.html#registering-a-smart-backend-service).
A fetched JWKS is cached; an assertion with an unknown ``kid`` triggers one refetch, at
most once per ``REFETCH_INTERVAL`` per client, so a client can rotate its keys without
re-registering and nobody can make the vault hammer a client's server.
"""

from __future__ import annotations

import json
import secrets
import threading
import time
from typing import Any

import httpx
from joserfc import jwk
from sqlalchemy import Connection, insert, select, update

from vault.crypto import MasterKey, MasterKeyring
from vault.oauth.models import SigningKey

__all__ = [
    "ClientKeyResolver",
    "SigningKeys",
    "ensure_signing_key",
    "rotate_signing_key",
    "signing_key_owner",
]

SIGNING_ALGORITHM = "RS256"  # what OpenID Connect relying parties must support
REFETCH_INTERVAL = 60.0
CACHE_SECONDS = 600.0


def signing_key_owner(kid: str) -> str:
    return f"signing-key/{kid}"


def create_signing_key(conn: Connection, master: MasterKey, *, now: int) -> str:
    kid = secrets.token_hex(8)
    key = jwk.RSAKey.generate_key(
        2048, parameters={"kid": kid, "alg": SIGNING_ALGORITHM, "use": "sig"}
    )
    private_pem = key.as_pem(private=True)
    conn.execute(
        insert(SigningKey).values(
            kid=kid,
            algorithm=SIGNING_ALGORITHM,
            private_sealed=master.wrap(private_pem, owner=signing_key_owner(kid)),
            master_key_id=master.key_id,
            public_jwk=json.dumps(key.as_dict(private=False)),
            created_at=now,
            retire_after=None,
        )
    )
    return kid


def ensure_signing_key(conn: Connection, master: MasterKey, *, now: int) -> None:
    active = conn.execute(select(SigningKey.kid).where(SigningKey.retire_after.is_(None))).first()
    if active is None:
        create_signing_key(conn, master, now=now)


def rotate_signing_key(
    conn: Connection, master: MasterKey, *, now: int, keep_public_for: int
) -> str:
    """New signing key; the old ones stay published for ``keep_public_for`` microseconds."""
    conn.execute(
        update(SigningKey)
        .where(SigningKey.retire_after.is_(None))
        .values(retire_after=now + keep_public_for)
    )
    return create_signing_key(conn, master, now=now)


class SigningKeys:
    def __init__(self, keyring: MasterKeyring) -> None:
        self._keyring = keyring

    def current(self, conn: Connection) -> jwk.RSAKey:
        row = conn.execute(
            select(SigningKey)
            .where(SigningKey.retire_after.is_(None))
            .order_by(SigningKey.created_at.desc())
            .limit(1)
        ).one()
        pem = self._keyring.unwrap(
            row.private_sealed, owner=signing_key_owner(row.kid), key_id=row.master_key_id
        )
        return jwk.RSAKey.import_key(pem, parameters={"kid": row.kid, "alg": row.algorithm})

    def published(self, conn: Connection, *, now: int) -> dict[str, Any]:
        rows = conn.execute(
            select(SigningKey.public_jwk)
            .where((SigningKey.retire_after.is_(None)) | (SigningKey.retire_after > now))
            .order_by(SigningKey.created_at.desc())
        ).scalars()
        return {"keys": [json.loads(row) for row in rows]}


class ClientKeyResolver:
    """The public keys of a client, from its inline JWKS or its cached ``jwks_uri``."""

    def __init__(self, *, http: httpx.Client | None = None) -> None:
        self._http = http or httpx.Client(timeout=5.0, follow_redirects=False)
        self._cache: dict[str, tuple[float, dict[str, Any]]] = {}
        self._last_forced: dict[str, float] = {}
        self._lock = threading.Lock()

    def key_set(
        self, *, client_id: str, jwks: str | None, jwks_uri: str | None, kid: str | None
    ) -> jwk.KeySet:
        if jwks:
            return jwk.KeySet.import_key_set(json.loads(jwks))
        if not jwks_uri:
            return jwk.KeySet([])
        data = self._fetch(client_id, jwks_uri, force=False)
        if kid is not None and not any(k.get("kid") == kid for k in data.get("keys", [])):
            data = self._fetch(client_id, jwks_uri, force=True)
        return jwk.KeySet.import_key_set(data)  # type: ignore[arg-type]

    def _fetch(self, client_id: str, uri: str, *, force: bool) -> dict[str, Any]:
        now = time.monotonic()
        with self._lock:
            cached = self._cache.get(client_id)
            if cached is not None and not force and now - cached[0] < CACHE_SECONDS:
                return cached[1]
            if force and cached is not None:
                # An unknown kid may mean the client rotated its keys: fetch again, but at
                # most once per interval, so unknown kids cannot make us hammer its server.
                if now - self._last_forced.get(client_id, -1e9) < REFETCH_INTERVAL:
                    return cached[1]
                self._last_forced[client_id] = now
        try:
            response = self._http.get(uri, headers={"accept": "application/json"})
            response.raise_for_status()
            data = response.json()
            if not isinstance(data, dict) or not isinstance(data.get("keys"), list):
                raise ValueError("not a JWKS")
            # Only public keys belong in a client's JWKS; private members are dropped.
            data = {"keys": [_public_only(k) for k in data["keys"] if isinstance(k, dict)]}
        except (httpx.HTTPError, ValueError):
            return cached[1] if cached is not None else {"keys": []}
        with self._lock:
            self._cache[client_id] = (now, data)
        return data

    def forget(self, client_id: str) -> None:
        with self._lock:
            self._cache.pop(client_id, None)
            self._last_forced.pop(client_id, None)


_PRIVATE_MEMBERS = {"d", "p", "q", "dp", "dq", "qi", "oth", "k"}


def _public_only(key: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in key.items() if k not in _PRIVATE_MEMBERS}
