"""The vault's public addresses: its origin (the OAuth issuer) and the FHIR base URL.

They come from configuration only, never from the request's ``Host`` or
``X-Forwarded-*`` headers, which any client can set: a forged Host must not change the
issuer, the audience a client assertion must name (RFC 7523, section 3, item 3) or the
links in a Bundle. Behind a proxy the address clients use differs from what the process
sees; set ``VAULT_PUBLIC_URL`` (e.g. ``https://vault.example.nl``) and every link, issuer
and audience uses it. Without it they use the address the vault is bound to, as the
socket reports it (``http://127.0.0.1:8000`` for ``vault serve``).
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.types import Scope

from vault.kernel.config import Settings

__all__ = ["bound_origin", "fhir_base", "origin"]


def bound_origin(scope: Scope) -> str:
    """``http://`` plus the local address of the connection, and any ``--root-path``."""
    root = str(scope.get("root_path", "")).rstrip("/")
    server = scope.get("server")
    if not server:
        return f"http://localhost{root}"  # a Unix socket: set VAULT_PUBLIC_URL
    host, port = server
    host = f"[{host}]" if ":" in str(host) else str(host)
    netloc = host if port in (None, 80) else f"{host}:{port}"
    return f"http://{netloc}{root}"


def origin(request: Request, settings: Settings) -> str:
    if settings.public_base_url:
        return settings.public_base_url
    return bound_origin(request.scope)


def fhir_base(request: Request, settings: Settings) -> str:
    return origin(request, settings) + "/fhir"
