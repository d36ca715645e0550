"""VAULT_PUBLIC_URL: the one source of the issuer and audiences, so it is checked."""

from __future__ import annotations

import pytest

from vault.kernel.config import public_url


@pytest.mark.parametrize(
    ("value", "kept"),
    [
        ("https://vault.example.nl/", "https://vault.example.nl"),
        ("https://vault.example.nl:8443/regiekluis", "https://vault.example.nl:8443/regiekluis"),
        ("http://127.0.0.1:8000", "http://127.0.0.1:8000"),
        ("http://localhost:8000", "http://localhost:8000"),
        ("", ""),
    ],
)
def test_an_https_or_local_address_is_kept(value: str, kept: str) -> None:
    assert public_url(value) == kept


@pytest.mark.parametrize(
    "value",
    [
        "http://vault.example.nl",
        "vault.example.nl",
        "ftp://vault.example.nl",
        "https://user:pw@vault.example.nl",
        "https://vault.example.nl/?x=1",
        "https://vault.example.nl/#top",
        "https://vault.example.nl:port",
        "https://",
    ],
)
def test_anything_else_is_refused(value: str) -> None:
    with pytest.raises(ValueError, match="VAULT_PUBLIC_URL"):
        public_url(value)
