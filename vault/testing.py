"""The adapter test kit: a throwaway vault with demo data and a registered client.

Nothing is mocked: a real vault (SQLite in a temporary folder, or any database URL you
give) serves HTTP on 127.0.0.1 with its real token endpoint, and the client signs real
client assertions with a key made for the test. Use it as a pytest plugin::

    # conftest.py of your adapter
    pytest_plugins = ["vault.testing"]

    def test_my_adapter_syncs(vault_partner):          # a VaultClient of MEE Voorbeeldregio
        ...

or directly, with ``ThrowawayVault(directory)`` as a context manager.

The demo family is loaded (``vault demo``): Daan (``demo-inwoner-daan``) shares his
CarePlan, Goals and CareTeam with MEE Voorbeeldregio; Sanne and Erik share nothing with it.
``ThrowawayVault.write`` / ``set_consent_status`` change data as the vault's operator does,
through the same repository as the FHIR API, so a test can revoke a grant and watch the
adapter forget.
"""

from __future__ import annotations

import json
import socket
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import uvicorn
from joserfc.jwk import ECKey, Key, RSAKey
from sqlalchemy import select

from adapters.sdk.client import VaultClient
from vault.app.clients import register_client
from vault.app.demo import load_demo
from vault.app.main import create_app
from vault.audit.runtime import open_runtime
from vault.consent.access import AccessContext
from vault.fhir.repository import Repository
from vault.kernel.config import Settings
from vault.kernel.crypto import MasterKey
from vault.kernel.db import Database
from vault.kernel.runtime import Runtime
from vault.migrations import upgrade
from vault.oauth.models import OAuthClient

__all__ = [
    "DEMO_PARTNER",
    "DEMO_SCOPES",
    "RegisteredClient",
    "ThrowawayVault",
    "throwaway_vault",
    "vault_partner",
]

DEMO_PARTNER = "MEE Voorbeeldregio"
DEMO_SCOPES = (
    "system/CarePlan.rs",
    "system/Goal.rs",
    "system/CareTeam.rs",
    "system/Consent.rs",
)


@dataclass(frozen=True, slots=True)
class RegisteredClient:
    """A partner system registered in the throwaway vault, with its private key."""

    client_id: str
    key: Key
    scopes: tuple[str, ...]
    organization: str  # the organisation's name
    organization_ref: str  # "Organization/<id>": the actor an inwoner's Consent names

    def write_config(
        self,
        directory: Path,
        *,
        vault_url: str,
        adapter_class: str,
        adapter_settings: dict[str, str],
        types: Sequence[str],
        patients: Sequence[str] = (),
    ) -> Path:
        """An ``adapter.toml`` for ``vault-adapter sync|listen`` as this client, with its key
        file beside it (0600), in ``directory``."""
        if not isinstance(self.key, ECKey | RSAKey):
            raise TypeError("a client assertion key is an EC or RSA key pair")
        key_file = directory / "partner-private.pem"
        key_file.write_bytes(self.key.as_pem(private=True))
        key_file.chmod(0o600)
        lines = [
            "[vault]",
            f"url = {_toml(vault_url)}",
            f"client_id = {_toml(self.client_id)}",
            f"key_file = {_toml(key_file.name)}",
            f"scopes = [{', '.join(_toml(s) for s in self.scopes)}]",
            "",
            "[sync]",
            f"types = [{', '.join(_toml(t) for t in types)}]",
        ]
        if patients:
            lines.append(f"patients = [{', '.join(_toml(p) for p in patients)}]")
        lines += ["", "[adapter]", f"class = {_toml(adapter_class)}", "", "[adapter.settings]"]
        lines += [f"{name} = {_toml(value)}" for name, value in adapter_settings.items()]
        config = directory / "adapter.toml"
        config.write_text("\n".join(lines) + "\n")
        return config


def _toml(value: str) -> str:
    # JSON string escaping is valid TOML basic-string escaping.
    return json.dumps(value)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class ThrowawayVault:
    """A vault for one test session: initialised, demo loaded, served on 127.0.0.1."""

    def __init__(
        self, directory: Path, *, database_url: str | None = None, demo: bool = True
    ) -> None:
        self.settings = Settings(
            data_dir=directory,
            database_url=database_url or f"sqlite:///{directory / 'vault.db'}",
            sqlite_checkpoint_interval=0.2,
        )
        self._demo = demo
        self.runtime: Runtime | None = None
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> ThrowawayVault:
        """Create the folder, key and database, load the demo, serve; returns self."""
        settings = self.settings
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        if not settings.master_key_path.exists():
            MasterKey.generate().write(settings.master_key_path)
        db = Database(settings.database_url)
        try:
            upgrade(db.write_engine)
        finally:
            db.dispose()
        self.runtime = open_runtime(settings, bootstrap=True)
        if self._demo:
            load_demo(self.runtime)
        self.port = _free_port()
        config = uvicorn.Config(
            create_app(settings, runtime=self.runtime),
            host="127.0.0.1",
            port=self.port,
            log_level="warning",
            access_log=False,
            lifespan="on",
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 15
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                self.stop()
                raise RuntimeError("the throwaway vault did not start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        """Stop serving and close the runtime; safe to call twice."""
        if self._server is not None and self._thread is not None:
            self._server.should_exit = True
            self._thread.join(timeout=10)
        self._server = self._thread = None
        if self.runtime is not None:
            self.runtime.close()
            self.runtime = None

    def __enter__(self) -> ThrowawayVault:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()

    def _runtime(self) -> Runtime:
        if self.runtime is None:
            raise RuntimeError("start the vault first")
        return self.runtime

    # -- clients ---------------------------------------------------------------------------

    def register_client(
        self, *, organization: str = DEMO_PARTNER, scopes: Sequence[str] = DEMO_SCOPES
    ) -> RegisteredClient:
        """A partner system with a fresh ES384 key, as ``vault client add`` registers it."""
        key = ECKey.generate_key("P-384", parameters={"alg": "ES384", "use": "sig"})
        jwks = {"keys": [key.as_dict(private=False) | {"kid": key.thumbprint()}]}
        client_id = register_client(
            self._runtime(),
            name=f"{organization} systeem",
            organization_name=organization,
            scopes=list(scopes),
            jwks=jwks,
        )
        with self._runtime().db.read() as conn:
            organization_id = conn.scalar(
                select(OAuthClient.organization_id).where(OAuthClient.client_id == client_id)
            )
        return RegisteredClient(
            client_id, key, tuple(scopes), organization, f"Organization/{organization_id}"
        )

    def client(
        self, registered: RegisteredClient, *, http: httpx.Client | None = None
    ) -> VaultClient:
        """A ``VaultClient`` for ``registered``."""
        return VaultClient(
            self.url, registered.client_id, registered.key, scopes=registered.scopes, http=http
        )

    # -- the operator's hand ---------------------------------------------------------------

    def _repository(self) -> Repository:
        return Repository(self._runtime(), AccessContext.full("adapter-test-kit"))

    def write(self, resource: dict[str, Any]) -> dict[str, Any]:
        """Create (no id) or update (with id) a resource as the operator; returns it."""
        runtime = self._runtime()
        with runtime.db.write() as conn:
            if "id" in resource:
                stored, _ = self._repository().update(
                    conn, resource["resourceType"], resource["id"], resource
                )
            else:
                stored, _ = self._repository().create(conn, resource["resourceType"], resource)
        body: dict[str, Any] = orjson.loads(stored.body or b"{}")
        return body

    def read(self, resource_type: str, resource_id: str) -> dict[str, Any]:
        """The current version of a resource as JSON, read as the operator."""
        with self._runtime().db.read() as conn:
            stored = self._repository().read(conn, resource_type, resource_id)
        body: dict[str, Any] = orjson.loads(stored.body or b"{}")
        return body

    def delete(self, resource_type: str, resource_id: str) -> None:
        """Delete a resource as the operator (a versioned tombstone)."""
        with self._runtime().db.write() as conn:
            self._repository().delete(conn, resource_type, resource_id)

    def set_consent_status(self, consent_id: str, status: str) -> None:
        """Revoke (``inactive``) or restore (``active``) a Consent, as the inwoner would."""
        consent = self.read("Consent", consent_id)
        consent["status"] = status
        self.write(consent)


@pytest.fixture(scope="session")
def throwaway_vault() -> Iterator[ThrowawayVault]:
    """A vault with the demo family, served for the whole test session."""
    with (
        tempfile.TemporaryDirectory(prefix="throwaway-vault-") as directory,
        ThrowawayVault(Path(directory)) as vault,
    ):
        yield vault


@pytest.fixture
def vault_partner(throwaway_vault: ThrowawayVault) -> Iterator[VaultClient]:
    """A new client of MEE Voorbeeldregio (Daan shares his plan with it)."""
    with throwaway_vault.client(throwaway_vault.register_client()) as client:
        yield client
