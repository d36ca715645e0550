"""Client authentication with a signed JWT: ``private_key_jwt`` (RFC 7523, section 2.2).

As profiled by SMART Backend Services
(https://hl7.org/fhir/smart-app-launch/backend-services.html#authenticating-to-the-token-endpoint):
the assertion's ``iss`` and ``sub`` are the client_id, ``aud`` is the token endpoint,
``exp`` lies at most five minutes ahead, and ``jti`` is never seen twice. The signature is
checked against the client's registered JWKS only, with an asymmetric algorithm only:
``alg: none`` and HMAC (which would let a public key act as a shared secret) are refused
before any key is touched.

Registered on the authorization server with ``register_client_auth_method``.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from typing import Any

from authlib.oauth2.rfc6749 import InvalidClientError
from joserfc import jws, jwt
from joserfc.errors import JoseError

__all__ = ["ALGORITHMS", "ASSERTION_TYPE", "PrivateKeyJwt"]

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
ALGORITHMS = ("RS384", "ES384", "RS256", "ES256", "RS512", "ES512", "PS384", "PS256")
MAX_LIFETIME_SECONDS = 300
CLOCK_SKEW_SECONDS = 30

log = logging.getLogger(__name__)


class PrivateKeyJwt:
    """Callable in authlib's client-auth registry: returns the client or raises."""

    METHOD = "private_key_jwt"

    def __init__(
        self,
        *,
        audiences: Callable[[Any], list[str]],
        key_set: Callable[[Any, str | None], Any],
        remember_jti: Callable[[str, str, int], bool],
    ) -> None:
        self._audiences = audiences
        self._key_set = key_set
        self._remember_jti = remember_jti

    def __call__(self, query_client: Callable[[str], Any], request: Any) -> Any:
        form = request.form
        if form.get("client_assertion_type") != ASSERTION_TYPE or not form.get("client_assertion"):
            return None
        assertion: str = form["client_assertion"]
        try:
            compact = jws.extract_compact(assertion.encode("ascii"))
            header = compact.headers()
        except (JoseError, UnicodeEncodeError, ValueError):
            raise InvalidClientError(description="The client assertion is not a JWT") from None
        alg = header.get("alg")
        if alg not in ALGORITHMS:
            raise InvalidClientError(
                description=f"Client assertions must be signed with one of {', '.join(ALGORITHMS)}"
            )
        try:
            unverified = json.loads(compact.payload)
        except ValueError:
            raise InvalidClientError(
                description="The client assertion has no JSON claims"
            ) from None
        client_id = unverified.get("sub") if isinstance(unverified, dict) else None
        if not isinstance(client_id, str):
            raise InvalidClientError(description="The client assertion has no 'sub'")
        client = query_client(client_id)
        if client is None or client.kind != "backend":
            raise InvalidClientError(description="Unknown client")
        keys = self._key_set(client, header.get("kid"))
        try:
            token = jwt.decode(assertion, keys, algorithms=[alg])
        except JoseError:
            # Unknown kid, a key of another client, a bad signature: one answer for all.
            raise InvalidClientError(
                description="The client assertion signature does not verify with this "
                "client's registered keys"
            ) from None
        self._check_claims(token.claims, client_id, request)
        request.client = client
        return client

    def _check_claims(self, claims: dict[str, Any], client_id: str, request: Any) -> None:
        if claims.get("iss") != client_id or claims.get("sub") != client_id:
            raise InvalidClientError(description="'iss' and 'sub' must both be the client_id")
        audience = claims.get("aud")
        audiences = audience if isinstance(audience, list) else [audience]
        if not set(self._audiences(request)) & {a for a in audiences if isinstance(a, str)}:
            raise InvalidClientError(description="'aud' must be this vault's token endpoint")
        now = int(time.time())
        exp = claims.get("exp")
        if not isinstance(exp, int | float):
            raise InvalidClientError(description="The client assertion has no 'exp'")
        if exp <= now - CLOCK_SKEW_SECONDS:
            raise InvalidClientError(description="The client assertion has expired")
        if exp > now + MAX_LIFETIME_SECONDS + CLOCK_SKEW_SECONDS:
            raise InvalidClientError(description="'exp' may be at most five minutes in the future")
        jti = claims.get("jti")
        if not isinstance(jti, str) or not jti or len(jti) > 255:
            raise InvalidClientError(description="The client assertion needs a 'jti'")
        if not self._remember_jti(client_id, jti, int(exp) + CLOCK_SKEW_SECONDS):
            raise InvalidClientError(description="This client assertion was used before")
        log.debug("client %s authenticated with private_key_jwt", client_id)
