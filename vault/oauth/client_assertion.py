"""Client authentication with a signed JWT: ``private_key_jwt`` (RFC 7523, section 2.2).

As profiled by SMART Backend Services
(https://hl7.org/fhir/smart-app-launch/backend-services.html#authenticating-to-the-token-endpoint):
the assertion's ``iss`` and ``sub`` are the client_id, ``aud`` is the token endpoint,
``exp`` lies at most five minutes ahead, and ``jti`` is never seen twice. The signature is
checked against the client's registered JWKS only, with an asymmetric algorithm only:
``alg: none`` and HMAC (which would let a public key act as a shared secret) are refused
before any key is touched.

Clocks differ a little: ``exp``, ``nbf`` and ``iat`` (RFC 7519, section 4.1) are held to
the vault's clock give or take ``CLOCK_SKEW_SECONDS``. An ``iat`` older than the longest
lifetime an assertion may have is refused, as is one in the future.

Order matters for ``jwks_uri`` clients: every check that needs no key (alg, claims, audience,
times, a ``jti`` already seen) runs first, so a forged or stale assertion never makes the
vault fetch the client's keys.

Registered on the authorization server with ``register_client_auth_method``.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from typing import Any

from authlib.oauth2.rfc6749 import InvalidClientError
from joserfc import jwk, jws, jwt
from joserfc.errors import JoseError

from vault.oauth.keys import ALGORITHMS, ClientKeysUnavailable, key_problem

__all__ = ["ALGORITHMS", "ASSERTION_TYPE", "CLOCK_SKEW_SECONDS", "PrivateKeyJwt"]

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
MAX_LIFETIME_SECONDS = 300
CLOCK_SKEW_SECONDS = 60

log = logging.getLogger(__name__)


def _seconds(claims: dict[str, Any], name: str) -> float | None:
    """A NumericDate claim (RFC 7519, section 2), or None when it is absent."""
    value = claims.get(name)
    if value is None:
        return None
    if not isinstance(value, int | float) or isinstance(value, bool):
        raise InvalidClientError(description=f"'{name}' must be a number of seconds")
    return float(value)


class PrivateKeyJwt:
    """Callable in authlib's client-auth registry: returns the client or raises."""

    METHOD = "private_key_jwt"

    def __init__(
        self,
        *,
        audiences: Callable[[Any], list[str]],
        keys: Callable[[Any, str | None], list[dict[str, Any]]],
        jti_seen: Callable[[str, str], bool],
        remember_jti: Callable[[str, str, int], bool],
    ) -> None:
        self._audiences = audiences
        self._keys = keys
        self._jti_seen = jti_seen
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
        # The claims are checked before the signature: they are the same bytes the
        # signature covers, and refusing here costs no key fetch.
        exp, jti = self._check_claims(unverified, client_id, request)
        if self._jti_seen(client_id, jti):
            raise InvalidClientError(description="This client assertion was used before")
        self._verify(assertion, client, header, alg)
        if not self._remember_jti(client_id, jti, int(exp) + CLOCK_SKEW_SECONDS):
            raise InvalidClientError(description="This client assertion was used before")
        log.debug("client %s authenticated with private_key_jwt", client_id)
        request.client = client
        return client

    def _verify(self, assertion: str, client: Any, header: dict[str, Any], alg: str) -> None:
        kid = header.get("kid")
        try:
            published = self._keys(client, kid if isinstance(kid, str) else None)
        except ClientKeysUnavailable:
            raise InvalidClientError(
                description="This client's keys could not be fetched from its jwks_uri; "
                "try again later"
            ) from None
        named = [k for k in published if kid is not None and k.get("kid") == kid]
        for key in named:
            problem = key_problem(key)
            if problem is not None:
                raise InvalidClientError(description=f"The signing key is refused: {problem}")
        usable = [k for k in published if key_problem(k) is None]
        try:
            key_set = jwk.KeySet.import_key_set({"keys": usable})
            jwt.decode(assertion, key_set, algorithms=[alg])
        except (JoseError, ValueError, TypeError):
            # No usable key, an unknown kid, a key of another client, a bad signature:
            # one answer for all.
            raise InvalidClientError(
                description="The client assertion signature does not verify with this "
                "client's registered keys"
            ) from None

    def _check_claims(
        self, claims: dict[str, Any], client_id: str, request: Any
    ) -> tuple[float, str]:
        if claims.get("iss") != client_id or claims.get("sub") != client_id:
            raise InvalidClientError(description="'iss' and 'sub' must both be the client_id")
        audience = claims.get("aud")
        audiences = audience if isinstance(audience, list) else [audience]
        if not set(self._audiences(request)) & {a for a in audiences if isinstance(a, str)}:
            raise InvalidClientError(description="'aud' must be this vault's token endpoint")
        now = time.time()
        exp = _seconds(claims, "exp")
        if exp is None:
            raise InvalidClientError(description="The client assertion has no 'exp'")
        if exp <= now - CLOCK_SKEW_SECONDS:
            raise InvalidClientError(description="The client assertion has expired")
        if exp > now + MAX_LIFETIME_SECONDS + CLOCK_SKEW_SECONDS:
            raise InvalidClientError(description="'exp' may be at most five minutes in the future")
        nbf = _seconds(claims, "nbf")
        if nbf is not None and nbf > now + CLOCK_SKEW_SECONDS:
            raise InvalidClientError(description="The client assertion is not valid yet ('nbf')")
        iat = _seconds(claims, "iat")
        if iat is not None:
            if iat > now + CLOCK_SKEW_SECONDS:
                raise InvalidClientError(description="'iat' lies in the future")
            if iat < now - MAX_LIFETIME_SECONDS - CLOCK_SKEW_SECONDS:
                raise InvalidClientError(description="'iat' is too long ago")
        jti = claims.get("jti")
        if not isinstance(jti, str) or not jti or len(jti) > 255:
            raise InvalidClientError(description="The client assertion needs a 'jti'")
        return exp, jti
