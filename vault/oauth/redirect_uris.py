"""Which redirect URIs an authorization code may be sent to.

RFC 6749, section 3.1.2: an absolute URI without a fragment, over TLS. RFC 8252, section 7.3:
native apps may use plain http to the loopback interface. Everything else (``javascript:``,
``data:``, private-use schemes, a user part that hides the real host) is refused, at
registration (``vault client add``) and again before a code is sent, for clients registered
before these rules.
"""

from __future__ import annotations

from urllib.parse import urlsplit

__all__ = ["LOOPBACK_HOSTS", "check_redirect_uri", "is_safe_redirect_uri"]

LOOPBACK_HOSTS = ("127.0.0.1", "::1", "localhost")
MAX_LENGTH = 2000  # the length of oauth_code.redirect_uri


def check_redirect_uri(uri: str) -> None:
    """Refuse a redirect URI an authorization code must never be sent to (ValueError).

    RFC 6749, section 3.1.2: absolute, without a fragment. Only https, or http to this
    machine for native apps (RFC 8252, section 7.3); ``javascript:``, ``data:`` and other
    schemes are refused, and so is a user part (``https://app.example@evil.example``).
    """
    if not uri or len(uri) > MAX_LENGTH or any(c.isspace() or ord(c) < 32 for c in uri):
        raise ValueError(f"redirect URI {uri!r}: empty, too long or with spaces")
    if "#" in uri:
        raise ValueError(f"redirect URI {uri!r}: a redirect URI may not have a fragment (#)")
    try:
        parts = urlsplit(uri)
        parts.port  # noqa: B018  (raises on a port that is not a number)
    except ValueError:
        raise ValueError(f"redirect URI {uri!r} is not a URL") from None
    loopback = parts.scheme == "http" and parts.hostname in LOOPBACK_HOSTS
    if not (parts.scheme == "https" or loopback) or not parts.hostname:
        where = "127.0.0.1, [::1] or localhost"
        raise ValueError(f"redirect URI {uri!r} must be https:// (or http:// on {where})")
    if parts.username is not None or parts.password is not None:
        raise ValueError(f"redirect URI {uri!r} may not have a user part (user@host)")


def is_safe_redirect_uri(uri: str) -> bool:
    try:
        check_redirect_uri(uri)
    except ValueError:
        return False
    return True
