"""Settings of one vault: where its data lives and the limits it keeps.

Settings come from the data folder and the environment (``VAULT_*``). The master key is
never a setting with a default: it is a key file created by ``vault init`` (0600) or
``VAULT_MASTER_KEY``; a placeholder value is refused.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

__all__ = ["OidcSettings", "Settings", "public_url"]

DEFAULT_MAX_BODY_BYTES = 1024 * 1024


@dataclass(frozen=True, slots=True)
class OidcSettings:
    """Login through an outside OpenID Connect provider (a DigiD broker in real life).

    The client authenticates with ``client_secret`` (client_secret_basic) or, when
    ``private_key_file`` is set, with a private_key_jwt assertion (RFC 7523) signed by it.
    The claim ``person_claim`` holds the BSN; it is matched through the blind index,
    never stored.
    """

    issuer: str
    client_id: str
    client_secret: str = ""
    private_key_file: str = ""
    person_claim: str = "bsn"
    label: str = "Inloggen met DigiD"
    scope: str = "openid"

    @classmethod
    def from_env(cls) -> OidcSettings | None:
        issuer = os.environ.get("VAULT_OIDC_ISSUER", "").rstrip("/")
        if not issuer:
            return None
        client_id = os.environ.get("VAULT_OIDC_CLIENT_ID", "")
        secret = os.environ.get("VAULT_OIDC_CLIENT_SECRET", "")
        key_file = os.environ.get("VAULT_OIDC_PRIVATE_KEY_FILE", "")
        if not client_id or not (secret or key_file):
            raise ValueError(
                "VAULT_OIDC_ISSUER needs VAULT_OIDC_CLIENT_ID and VAULT_OIDC_CLIENT_SECRET "
                "or VAULT_OIDC_PRIVATE_KEY_FILE"
            )
        if secret.lower() in PLACEHOLDERS:
            raise ValueError("VAULT_OIDC_CLIENT_SECRET is a placeholder; set the real secret")
        local = issuer.startswith(("http://127.0.0.1", "http://localhost"))
        if not issuer.startswith("https://") and not local:
            raise ValueError("VAULT_OIDC_ISSUER must be an https address")
        return cls(
            issuer=issuer,
            client_id=client_id,
            client_secret=secret,
            private_key_file=key_file,
            person_claim=os.environ.get("VAULT_OIDC_BSN_CLAIM", "bsn"),
            label=os.environ.get("VAULT_OIDC_LABEL", "Inloggen met DigiD"),
            scope=os.environ.get("VAULT_OIDC_SCOPE", "openid"),
        )


PLACEHOLDERS = {"changeme", "change-me", "secret", "changethis", "xxx"}


def public_url(value: str) -> str:
    """``VAULT_PUBLIC_URL`` checked: the issuer and every audience are made from it.

    https only (RFC 6749, section 3.1: the endpoints require TLS), except plain http on
    this machine for development; no user, query or fragment, which an issuer may not have
    (RFC 8414, section 2).
    """
    value = value.strip().rstrip("/")
    if not value:
        return ""
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018  (raises on a port that is not a number)
    except ValueError:
        raise ValueError("VAULT_PUBLIC_URL is not a URL") from None
    local = parts.scheme == "http" and parts.hostname in ("127.0.0.1", "::1", "localhost")
    if parts.scheme != "https" and not local:
        raise ValueError("VAULT_PUBLIC_URL must be an https address (http only on 127.0.0.1)")
    if not parts.hostname or parts.username or parts.password or parts.query or parts.fragment:
        raise ValueError("VAULT_PUBLIC_URL must be https://host[:port][/path], nothing more")
    return value


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
    # Seconds between background WAL checkpoints on SQLite (see db.py): shorter gives a
    # shorter tail and fewer requests a second (docs/operating.md, "Disk: SQLite's WAL").
    sqlite_checkpoint_interval: float = 1.0
    # Consent page sessions end after this many minutes without a request, and always
    # after ``session_max_minutes``.
    session_idle_minutes: int = 15
    session_max_minutes: int = 8 * 60
    oidc: OidcSettings | None = None
    # Change notifications (vault/notify): plain http only to this machine, for development
    # and tests; the delivery worker's poll interval; retry backoff (doubling from
    # ``notify_retry_seconds``) and the attempts after which a Subscription goes to error.
    notify_allow_local_http: bool = False
    notify_poll_seconds: float = 1.0
    notify_retry_seconds: float = 5.0
    notify_max_attempts: int = 8
    notify_timeout_seconds: float = 10.0
    # Outcome reports (vault/reports): a figure resting on fewer inwoners is suppressed;
    # the Organization (by name) the consent page asks inwoners to be counted for.
    report_min_cell: int = 10
    report_organization: str = "Gemeente"
    # /metrics is served only when VAULT_METRICS=on (docs/operating.md, "Metrics and health").
    metrics: bool = False
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
            public_base_url=public_url(os.environ.get("VAULT_PUBLIC_URL", "")),
            backend_token_seconds=int(os.environ.get("VAULT_BACKEND_TOKEN_SECONDS", "300")),
            session_idle_minutes=int(os.environ.get("VAULT_SESSION_IDLE_MINUTES", "15")),
            session_max_minutes=int(os.environ.get("VAULT_SESSION_MAX_MINUTES", str(8 * 60))),
            oidc=OidcSettings.from_env(),
            notify_allow_local_http=os.environ.get("VAULT_NOTIFY_ALLOW_LOCAL_HTTP", "") == "1",
            notify_poll_seconds=float(os.environ.get("VAULT_NOTIFY_POLL_SECONDS", "1.0")),
            notify_retry_seconds=float(os.environ.get("VAULT_NOTIFY_RETRY_SECONDS", "5.0")),
            notify_max_attempts=int(os.environ.get("VAULT_NOTIFY_MAX_ATTEMPTS", "8")),
            report_min_cell=max(2, int(os.environ.get("VAULT_REPORT_K", "10"))),
            report_organization=os.environ.get("VAULT_REPORT_ORGANIZATION", "Gemeente"),
            metrics=os.environ.get("VAULT_METRICS", "off").lower() == "on",
            sqlite_checkpoint_interval=_seconds("VAULT_SQLITE_CHECKPOINT_SECONDS", 1.0),
        )

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")


def _seconds(name: str, default: float) -> float:
    """The environment variable ``name`` as seconds (``default`` when unset), refused with
    its name unless it is a finite number above zero: a checkpointer that waited no time
    between rounds would spin."""
    raw = os.environ.get(name)
    try:
        value = default if raw is None else float(raw)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"{name} must be a number of seconds above zero, not {raw!r}")
    return value
