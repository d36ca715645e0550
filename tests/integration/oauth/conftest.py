"""A vault served with its real access resolver: bearer tokens from its own token endpoint."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from tests.conftest import ServerThread, create
from tests.factories import patient as patient_resource
from vault.app.main import create_app
from vault.kernel.config import Settings
from vault.kernel.runtime import Runtime


@pytest.fixture(scope="session")
def vault(settings: Settings, runtime: Runtime) -> Iterator[ServerThread]:
    with ServerThread(create_app(settings, runtime=runtime)) as running:
        yield running


@pytest.fixture
def http() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=30, follow_redirects=False) as client:
        yield client


@pytest.fixture
def inwoner(client: httpx.Client) -> str:
    """A fresh inwoner's Patient id, created with operator access."""
    return str(create(client, patient_resource())["id"])
