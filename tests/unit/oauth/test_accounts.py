"""The password hash: scrypt at the vault's own work factor, and a check that the hash
carries its factor with it (the in-process tests hash at a lighter one, tests/conftest.py)."""

from __future__ import annotations

import re
import subprocess
import sys

from vault.oauth import accounts


def test_the_vault_hashes_with_16_mib_of_scrypt() -> None:
    # A fresh interpreter: this one runs with the tests' lighter factor.
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            "from vault.oauth.accounts import hash_password; print(hash_password('a' * 12))",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    encoded = done.stdout.strip()
    assert re.fullmatch(r"scrypt\$16384\$8\$1\$[A-Za-z0-9+/=]{24}\$[A-Za-z0-9+/=]{44}", encoded)
    assert accounts.verify_password("a" * 12, encoded)
    assert not accounts.verify_password("a" * 11 + "b", encoded)


def test_a_hash_is_checked_at_the_factor_it_was_made_with() -> None:
    lighter = accounts.hash_password("correct horse")
    assert lighter.startswith(f"scrypt${accounts.SCRYPT_N}$8$1$")
    assert accounts.verify_password("correct horse", lighter)
    assert not accounts.verify_password("correct horsf", lighter)
    # A factor that is not scrypt's (not a power of two) is no match, not an error.
    broken = lighter.replace(f"scrypt${accounts.SCRYPT_N}$", "scrypt$1000$", 1)
    assert not accounts.verify_password("correct horse", broken)
    assert not accounts.verify_password("correct horse", "bcrypt$x")
