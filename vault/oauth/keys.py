"""Keys of the authorization server: the vault's signing keys and the clients' public keys.

The vault signs id tokens (OpenID Connect Core 1.0, section 2) with its own keys, published
at ``/oauth/jwks``; the keys themselves are made, sealed and rotated by the store
(``vault/store/keys.py``, with the vault's other keys). ``vault keys rotate-signing`` adds a
new key and retires the old one: the old public key stays in the JWKS until every token it
signed has expired.

Clients of SMART Backend Services register a JWKS inline or as a ``jwks_uri``
(https://hl7.org/fhir/smart-app-launch/backend-services.html#registering-a-smart-backend-service).
A fetched JWKS is cached; an assertion with an unknown ``kid`` triggers one refetch, at
most once per ``REFETCH_INTERVAL`` per client, so a client can rotate its keys without
re-registering and nobody can make the vault hammer a client's server. A key may sign
assertions only when ``key_problem`` finds nothing wrong with it: RSA of at least 2048 bits
(NIST SP 800-131A rev. 2) or EC on P-256, P-384 or P-521, for the algorithms that
``ALGORITHMS`` allows.
"""

from __future__ import annotations

import base64
import json
import logging
import threading
import time
from collections.abc import Callable
from contextlib import closing
from dataclasses import dataclass, field
from typing import Any

import httpx
from joserfc import jwk
from sqlalchemy import Connection, select

from vault.kernel.crypto import MasterKeyring
from vault.kernel.netguard import build_pinned_request, check_url
from vault.store.keys import signing_key_owner
from vault.store.models import SigningKey

__all__ = [
    "ALGORITHMS",
    "ClientKeyResolver",
    "ClientKeysUnavailable",
    "SigningKeys",
    "key_problem",
]

# Asymmetric only (SMART Backend Services); HMAC would let a public key act as a secret.
ALGORITHMS = ("RS384", "ES384", "RS256", "ES256", "RS512", "ES512", "PS384", "PS256")
REFETCH_INTERVAL = 60.0
CACHE_SECONDS = 600.0
# A key server gets this long for the whole answer, once per client at a time; after a
# failure it is left alone for BACKOFF_FIRST seconds, doubling up to BACKOFF_MAX.
FETCH_TIMEOUT = 3.0
BACKOFF_FIRST = 30.0
BACKOFF_MAX = 600.0
JWKS_MAX_BYTES = 64 * 1024
MIN_RSA_BITS = 2048
EC_CURVES = ("P-256", "P-384", "P-521")

log = logging.getLogger(__name__)


class SigningKeys:
    def __init__(self, keyring: MasterKeyring) -> None:
        self._keyring = keyring
        # The current key as last parsed: reading an RSA key from PEM checks it, which
        # costs more than signing with it. The row is still read every time, so a key
        # rotated by another process is used at its next token.
        self._parsed: tuple[tuple[str, str, str], jwk.RSAKey] | None = None

    def current(self, conn: Connection) -> jwk.RSAKey:
        row = conn.execute(
            select(SigningKey)
            .where(SigningKey.retire_after.is_(None))
            .order_by(SigningKey.created_at.desc())
            .limit(1)
        ).one()
        which = (row.kid, row.master_key_id, row.algorithm)
        parsed = self._parsed
        if parsed is not None and parsed[0] == which:
            return parsed[1]
        pem = self._keyring.unwrap(
            row.private_sealed, owner=signing_key_owner(row.kid), key_id=row.master_key_id
        )
        key = jwk.RSAKey.import_key(pem, parameters={"kid": row.kid, "alg": row.algorithm})
        self._parsed = (which, key)
        return key

    def published(self, conn: Connection, *, now: int) -> dict[str, Any]:
        rows = conn.execute(
            select(SigningKey.public_jwk)
            .where((SigningKey.retire_after.is_(None)) | (SigningKey.retire_after > now))
            .order_by(SigningKey.created_at.desc())
        ).scalars()
        return {"keys": [json.loads(row) for row in rows]}


class ClientKeysUnavailable(Exception):
    """The client's ``jwks_uri`` gave no usable key set, and none is cached."""


@dataclass
class _Cached:
    """What the vault knows of one client's ``jwks_uri``."""

    uri: str
    lock: threading.Lock = field(default_factory=threading.Lock)
    keys: list[dict[str, Any]] | None = None
    fetched_at: float = 0.0
    failures: int = 0
    retry_at: float = 0.0


class ClientKeyResolver:
    """The public keys of a client, from its inline JWKS or its cached ``jwks_uri``.

    Outbound fetches are bounded, so a forged assertion that names a ``jwks_uri`` client
    cannot make the vault hammer (or wait on) that client's key server: one fetch at a
    time per client, a short overall deadline and size cap, a refetch for an unknown
    ``kid`` at most once per ``REFETCH_INTERVAL``, and after a failure no new attempt
    before a back-off that doubles up to ``BACKOFF_MAX`` (the last good keys stay in use).
    """

    def __init__(
        self,
        *,
        http: httpx.Client | None = None,
        clock: Callable[[], float] = time.monotonic,
        timeout: float = FETCH_TIMEOUT,
        guard: bool = True,
        allow_local_dev: bool = False,
    ) -> None:
        self._http = http or httpx.Client(timeout=timeout, follow_redirects=False)
        # The address guard of vault/kernel/netguard.py, checked at every fetch (DNS rebinding):
        # only tests of the caching rules, on a mock transport, switch it off.
        self._guard = guard
        self._allow_local_dev = allow_local_dev
        self._clock = clock
        self._timeout = timeout
        self._cache: dict[str, _Cached] = {}
        self._lock = threading.Lock()

    def keys(
        self, *, client_id: str, jwks: str | None, jwks_uri: str | None, kid: str | None
    ) -> list[dict[str, Any]]:
        """The client's public keys as JWK dicts; raises ClientKeysUnavailable."""
        if jwks:
            found = json.loads(jwks).get("keys", [])
            return [k for k in found if isinstance(k, dict)]
        if not jwks_uri:
            return []
        with self._lock:
            cached = self._cache.get(client_id)
            if cached is None or cached.uri != jwks_uri:
                cached = self._cache[client_id] = _Cached(uri=jwks_uri)
        # One fetch at a time per client: concurrent assertions wait for it and share it.
        with cached.lock:
            now = self._clock()
            if cached.keys is not None:
                age = now - cached.fetched_at
                known = kid is None or any(k.get("kid") == kid for k in cached.keys)
                if age < CACHE_SECONDS and (known or age < REFETCH_INTERVAL):
                    return cached.keys
            if now < cached.retry_at:
                return self._last_good(cached)
            try:
                cached.keys = self._fetch(jwks_uri)
            except (httpx.HTTPError, ValueError) as exc:
                cached.failures += 1
                backoff = min(BACKOFF_MAX, BACKOFF_FIRST * 2 ** (cached.failures - 1))
                cached.retry_at = self._clock() + backoff
                log.warning(
                    "client %s: its jwks_uri failed (%s); next try in %.0f s",
                    client_id,
                    type(exc).__name__,
                    backoff,
                )
                return self._last_good(cached)
            cached.fetched_at = now
            cached.failures = 0
            cached.retry_at = 0.0
            return cached.keys

    @staticmethod
    def _last_good(cached: _Cached) -> list[dict[str, Any]]:
        if cached.keys is None:
            raise ClientKeysUnavailable
        return cached.keys

    def _fetch(self, uri: str) -> list[dict[str, Any]]:
        deadline = self._clock() + self._timeout
        body = bytearray()
        headers = {"accept": "application/json"}
        if self._guard:
            # Registration checked the address once; the name may point elsewhere by now.
            target = check_url(uri, allow_local_dev=self._allow_local_dev, what="The jwks_uri")
            request = build_pinned_request(
                self._http, target, method="GET", headers=headers, content=b""
            )
        else:
            request = self._http.build_request("GET", uri, headers=headers)
        with closing(self._http.send(request, stream=True)) as response:
            response.raise_for_status()
            # A slow drip of bytes must not hold the request past the deadline either.
            for chunk in response.iter_bytes():
                body += chunk
                if len(body) > JWKS_MAX_BYTES:
                    raise ValueError("JWKS too large")
                if self._clock() > deadline:
                    raise httpx.ReadTimeout("JWKS fetch took too long")
        data = json.loads(body)
        if not isinstance(data, dict) or not isinstance(data.get("keys"), list):
            raise ValueError("not a JWKS")
        # Only public keys belong in a client's JWKS; private members are dropped.
        return [_public_only(k) for k in data["keys"] if isinstance(k, dict)]

    def forget(self, client_id: str) -> None:
        with self._lock:
            self._cache.pop(client_id, None)


def key_problem(key: dict[str, Any]) -> str | None:
    """Why a client's public JWK may not sign assertions here, or None when it may."""
    kty = key.get("kty")
    if key.get("use") not in (None, "sig"):
        return "the key is not a signing key ('use' is not 'sig')"
    alg = key.get("alg")
    if alg is not None and alg not in ALGORITHMS:
        return f"the key's 'alg' must be one of {', '.join(ALGORITHMS)}"
    if kty == "RSA":
        try:
            modulus = base64.urlsafe_b64decode(str(key["n"]) + "==")
        except (KeyError, ValueError):
            return "the RSA key has no valid modulus 'n'"
        if int.from_bytes(modulus, "big").bit_length() < MIN_RSA_BITS:
            return f"RSA keys need at least {MIN_RSA_BITS} bits"
        return None
    if kty == "EC":
        if key.get("crv") not in EC_CURVES:
            return f"EC keys must use one of the curves {', '.join(EC_CURVES)}"
        return None
    return "only RSA and EC public keys can sign client assertions"


_PRIVATE_MEMBERS = {"d", "p", "q", "dp", "dq", "qi", "oth", "k"}


def _public_only(key: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in key.items() if k not in _PRIVATE_MEMBERS}
