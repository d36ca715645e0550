"""Adapters against a real vault: the adapter test kit's throwaway vault, on this suite's
database engine (a new PostgreSQL database when VAULT_DATABASE_URL says so)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from tests.factories import patient
from tests.support import fresh_database
from vault.testing import RegisteredClient, ThrowawayVault, vault_partner

# An adapter's own conftest says ``pytest_plugins = ["vault.testing"]``; pytest allows
# that only in the root conftest, so this suite imports the kit's fixture instead.
__all__ = ["vault_partner"]


@pytest.fixture(scope="session")
def throwaway_vault(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ThrowawayVault]:
    """Overrides the kit's fixture only to honour VAULT_DATABASE_URL."""
    directory = tmp_path_factory.mktemp("throwaway")
    with fresh_database(directory) as url, ThrowawayVault(directory, database_url=url) as vault:
        yield vault


@pytest.fixture
def partner(throwaway_vault: ThrowawayVault) -> RegisteredClient:
    """A partner organisation of its own, so no other test's Consent reaches it."""
    return throwaway_vault.register_client(organization=f"Partner {uuid.uuid4().hex[:10]}")


@pytest.fixture
def inwoner(throwaway_vault: ThrowawayVault) -> str:
    return str(throwaway_vault.write(patient())["id"])
