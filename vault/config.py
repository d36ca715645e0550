"""Settings of one vault: where its data lives and the limits it keeps.

Settings come from the data folder and the environment (``VAULT_*``). The master key is
never a setting with a default: it is a key file created by ``vault init`` (0600) or
``VAULT_MASTER_KEY``; a placeholder value is refused.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["Settings"]

DEFAULT_MAX_BODY_BYTES = 1024 * 1024


@dataclass(frozen=True, slots=True)
class Settings:
    data_dir: Path
    database_url: str
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    # The vault's public address as clients see it (behind a proxy), e.g.
    # https://vault.example.nl; the FHIR base is that plus /fhir. Empty: from each request.
    public_base_url: str = ""
    # Lifetime of access tokens of backend clients (SMART Backend Services).
    backend_token_seconds: int = 300
    default_page_size: int = 20
    max_page_size: int = 500
    # Seconds between background WAL checkpoints on SQLite (see db.py).
    sqlite_checkpoint_interval: float = 1.0
    # Change notifications (vault/notify): plain http only to this machine, for development
    # and tests; the delivery worker's poll interval; retry backoff (doubling from
    # ``notify_retry_seconds``) and the attempts after which a Subscription goes to error.
    notify_allow_local_http: bool = False
    notify_poll_seconds: float = 1.0
    notify_retry_seconds: float = 5.0
    notify_max_attempts: int = 8
    notify_timeout_seconds: float = 10.0
    extra: dict[str, str] = field(default_factory=dict)

    @property
    def master_key_path(self) -> Path:
        return self.data_dir / "master.key"

    @classmethod
    def from_env(cls, data_dir: Path | str | None = None) -> Settings:
        """Read settings for ``data_dir`` (or ``VAULT_DATA_DIR``) and ``VAULT_*`` variables."""
        raw_dir = data_dir if data_dir is not None else os.environ.get("VAULT_DATA_DIR", "data")
        directory = Path(raw_dir).resolve()
        url = os.environ.get("VAULT_DATABASE_URL") or f"sqlite:///{directory / 'vault.db'}"
        return cls(
            data_dir=directory,
            database_url=url,
            max_body_bytes=int(os.environ.get("VAULT_MAX_BODY_BYTES", DEFAULT_MAX_BODY_BYTES)),
            public_base_url=os.environ.get("VAULT_PUBLIC_URL", "").rstrip("/"),
            backend_token_seconds=int(os.environ.get("VAULT_BACKEND_TOKEN_SECONDS", "300")),
            notify_allow_local_http=os.environ.get("VAULT_NOTIFY_ALLOW_LOCAL_HTTP", "") == "1",
            notify_poll_seconds=float(os.environ.get("VAULT_NOTIFY_POLL_SECONDS", "1.0")),
            notify_retry_seconds=float(os.environ.get("VAULT_NOTIFY_RETRY_SECONDS", "5.0")),
            notify_max_attempts=int(os.environ.get("VAULT_NOTIFY_MAX_ATTEMPTS", "8")),
        )

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")
