"""The vault's public addresses: its origin (the OAuth issuer) and the FHIR base URL.

Behind a proxy the address clients use differs from what the process sees; set
``VAULT_PUBLIC_URL`` (e.g. ``https://vault.example.nl``) and every link, issuer and
audience uses it. Without it the address is taken from the request.
"""

from __future__ import annotations

from starlette.requests import Request

from vault.config import Settings

__all__ = ["fhir_base", "origin"]


def origin(request: Request, settings: Settings) -> str:
    if settings.public_base_url:
        return settings.public_base_url
    return str(request.base_url).rstrip("/")


def fhir_base(request: Request, settings: Settings) -> str:
    return origin(request, settings) + "/fhir"
