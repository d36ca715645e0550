"""SMART Backend Services authorization, the client side.

https://hl7.org/fhir/smart-app-launch/backend-services.html, section "Obtaining an access
token": the client signs a JWT (RFC 7523 client assertion) with its private key — ``iss`` and
``sub`` its client_id, ``aud`` the token endpoint, ``exp`` at most five minutes ahead, a new
``jti`` every time — and trades it at the token endpoint for a bearer token. There is no
refresh token: when the token is about to expire, the client signs a new assertion.

``TokenCache`` keeps one token and says when to renew it; the HTTP exchange itself is the
client's (``client.py``), so it shares the client's retries and injected transport.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from joserfc import jwt
from joserfc.jwk import ECKey, Key, RSAKey

__all__ = [
    "ASSERTION_TYPE",
    "MAX_ASSERTION_SECONDS",
    "ClientAssertionSigner",
    "Token",
    "TokenCache",
    "signing_algorithm",
]

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
MAX_ASSERTION_SECONDS = 300  # SMART: exp no more than five minutes in the future
_EC_ALGORITHMS = {"P-256": "ES256", "P-384": "ES384", "P-521": "ES512"}


def signing_algorithm(key: Key) -> str:
    """The JWS algorithm for ``key``: its own ``alg``, else ES384 / RS384 (SMART's two)."""
    declared = key.get("alg")
    if isinstance(declared, str) and declared:
        return declared
    if isinstance(key, ECKey):
        return _EC_ALGORITHMS.get(str(key.get("crv")), "ES384")
    if isinstance(key, RSAKey):
        return "RS384"
    raise ValueError("Backend Services keys are EC (ES384) or RSA (RS384) private keys")


@dataclass(frozen=True, slots=True)
class ClientAssertionSigner:
    """Signs one fresh client assertion per token request."""

    client_id: str
    key: Key
    lifetime: int = 240
    clock: Callable[[], float] = time.time

    def __post_init__(self) -> None:
        if not 0 < self.lifetime <= MAX_ASSERTION_SECONDS:
            raise ValueError("a client assertion lives at most five minutes")

    @property
    def algorithm(self) -> str:
        return signing_algorithm(self.key)

    def sign(self, token_url: str) -> str:
        """A signed client assertion (RFC 7523) for the token endpoint ``token_url``."""
        now = int(self.clock())
        claims = {
            "iss": self.client_id,
            "sub": self.client_id,
            "aud": token_url,
            "iat": now,
            "exp": now + self.lifetime,
            "jti": uuid.uuid4().hex,  # the vault refuses an assertion it has seen before
        }
        # The kid picks the key in the registered JWKS; without one, the RFC 7638
        # thumbprint is what connect-your-system.md tells partners to publish.
        header = {"alg": self.algorithm, "kid": self.key.kid or self.key.thumbprint(), "typ": "JWT"}
        return jwt.encode(header, claims, self.key, algorithms=[self.algorithm])

    def form(self, token_url: str, scopes: Sequence[str]) -> dict[str, str]:
        """The token request's form body (RFC 6749 section 4.4 with RFC 7523)."""
        return {
            "grant_type": "client_credentials",
            "scope": " ".join(scopes),
            "client_assertion_type": ASSERTION_TYPE,
            "client_assertion": self.sign(token_url),
        }


@dataclass(frozen=True, slots=True)
class Token:
    """A bearer token and when (``time.monotonic`` seconds) it expires."""

    access_token: str
    expires_at: float  # monotonic seconds
    scope: str


class TokenCache:
    """One bearer token, renewed ``margin`` seconds before it expires."""

    def __init__(
        self, *, margin: float = 30.0, monotonic: Callable[[], float] = time.monotonic
    ) -> None:
        self._margin = margin
        self._monotonic = monotonic
        self._token: Token | None = None

    def current(self) -> str | None:
        """The cached token if it is still good for a while, else None."""
        token = self._token
        if token is None or self._monotonic() >= token.expires_at - self._margin:
            return None
        return token.access_token

    def store(self, body: dict[str, Any]) -> Token:
        """Keep the token of a token endpoint's answer (``access_token``, ``expires_in``)."""
        expires_in = float(body.get("expires_in", 300))
        token = Token(
            access_token=str(body["access_token"]),
            expires_at=self._monotonic() + expires_in,
            scope=str(body.get("scope", "")),
        )
        self._token = token
        return token

    def invalidate(self) -> None:
        """Forget the token: the vault refused it, so the next call gets a new one."""
        self._token = None
