"""`vault client add|list|remove` and `vault account add` as an operator runs them.

Each test runs the installed console script against a fresh data folder and database
(PostgreSQL when the suite runs with VAULT_DATABASE_URL).
"""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from sqlalchemy import select

from tests.conftest import initialise
from tests.factories import organization
from tests.factories import patient as patient_resource
from tests.support import ServerProcess, fresh_database, vault, vault_command, vault_env
from tests.support.smart import BackendClient, inwoner_account, make_key, public_jwks
from vault.audit.runtime import open_runtime
from vault.consent.access import AccessContext
from vault.fhir.repository import Repository
from vault.kernel.config import Settings
from vault.kernel.runtime import Runtime
from vault.oauth.accounts import authenticate
from vault.oauth.models import Account, OAuthClient
from vault.store.models import ResourceRow

pytestmark = pytest.mark.slow


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "vault"


@pytest.fixture
def database_url(data_dir: Path) -> Iterator[str]:
    """A fresh database for each test (this overrides the suite's per-process one)."""
    with fresh_database(data_dir) as url:
        yield url


@pytest.fixture
def env(database_url: str) -> dict[str, str]:
    return vault_env(database_url)


@pytest.fixture
def settings(data_dir: Path, database_url: str) -> Settings:
    result = Settings(data_dir=data_dir, database_url=database_url)
    initialise(result)
    return result


@pytest.fixture
def runtime(settings: Settings) -> Iterator[Runtime]:
    rt = open_runtime(settings)
    yield rt
    rt.close()


def jwks_file(directory: Path, keys: dict[str, Any]) -> Path:
    path = directory / f"jwks-{uuid.uuid4().hex[:6]}.json"
    path.write_text(json.dumps(keys))
    return path


def add_backend(
    data_dir: Path,
    env: dict[str, str],
    *,
    jwks: Path,
    organization_name: str = "MEE",
    scopes: tuple[str, ...] = ("system/Organization.rs", "system/Goal.rs"),
) -> str:
    out, _ = vault(
        "client",
        "add",
        "--data-dir",
        str(data_dir),
        "--name",
        "MEE systeem",
        "--organization-name",
        organization_name,
        "--jwks-file",
        str(jwks),
        *[arg for scope in scopes for arg in ("--scope", scope)],
        env=env,
    )
    return out.strip().splitlines()[-1]


def client_row(runtime: Runtime, client_id: str) -> Any:
    with runtime.db.read() as conn:
        return conn.execute(select(OAuthClient).where(OAuthClient.client_id == client_id)).one()


def client_count(runtime: Runtime) -> int:
    with runtime.db.read() as conn:
        return len(conn.execute(select(OAuthClient.client_id)).all())


def organizations(runtime: Runtime) -> dict[str, str]:
    """Every Organization: id -> name."""
    repo = Repository(runtime, AccessContext.full())
    with runtime.db.read() as conn:
        ids = conn.scalars(
            select(ResourceRow.resource_id).where(ResourceRow.resource_type == "Organization")
        ).all()
        return {
            i: orjson.loads(repo.read(conn, "Organization", i).body or b"{}")["name"] for i in ids
        }


# -- client add --------------------------------------------------------------------------------


def test_client_add_prints_the_client_id_as_the_last_line(
    data_dir: Path, env: dict[str, str], runtime: Runtime, tmp_path: Path
) -> None:
    key = make_key("ES384")
    client_id = add_backend(data_dir, env, jwks=jwks_file(tmp_path, public_jwks(key)))

    uuid.UUID(client_id)
    row = client_row(runtime, client_id)
    assert row.kind == "backend"
    assert row.scope == "system/Organization.rs system/Goal.rs"
    assert json.loads(row.jwks)["keys"][0]["kid"] == key.kid
    out, _ = vault("client", "list", "--data-dir", str(data_dir), env=env)
    assert client_id in out
    assert "MEE systeem" in out


def test_client_add_links_an_existing_organization_whatever_the_case(
    data_dir: Path, env: dict[str, str], runtime: Runtime, tmp_path: Path
) -> None:
    with runtime.db.write() as conn:
        existing, _ = Repository(runtime, AccessContext.full()).create(
            conn, "Organization", organization(name="MEE Oost")
        )

    client_id = add_backend(
        data_dir,
        env,
        jwks=jwks_file(tmp_path, public_jwks(make_key())),
        organization_name="mee oost",
    )

    assert client_row(runtime, client_id).organization_id == existing.resource_id
    assert list(organizations(runtime).values()) == ["MEE Oost"]


def test_client_add_creates_an_organization_it_does_not_know(
    data_dir: Path, env: dict[str, str], runtime: Runtime, tmp_path: Path
) -> None:
    client_id = add_backend(
        data_dir,
        env,
        jwks=jwks_file(tmp_path, public_jwks(make_key())),
        organization_name="Buurtteam Noord",
    )

    linked = client_row(runtime, client_id).organization_id
    assert organizations(runtime) == {linked: "Buurtteam Noord"}


def test_client_add_registers_a_public_app_with_its_redirect_uri(
    data_dir: Path, env: dict[str, str], runtime: Runtime
) -> None:
    out, _ = vault(
        "client",
        "add",
        "--data-dir",
        str(data_dir),
        "--name",
        "Mijn Plan app",
        "--organization-name",
        "Mijn Plan BV",
        "--public",
        "--redirect-uri",
        "https://app.example/callback",
        "--scope",
        "launch/patient",
        "--scope",
        "patient/Goal.rs",
        env=env,
    )
    row = client_row(runtime, out.strip().splitlines()[-1])
    assert row.kind == "public"
    assert row.redirect_uris == "https://app.example/callback"
    assert row.jwks is None


def small_rsa_jwks() -> dict[str, Any]:
    """A public RSA key of 1024 bits, as a JWKS (written out by hand: joserfc warns)."""
    numbers = rsa.generate_private_key(public_exponent=65537, key_size=1024).public_key()
    n, e = numbers.public_numbers().n, numbers.public_numbers().e

    def b64(value: int) -> str:
        raw = value.to_bytes((value.bit_length() + 7) // 8, "big")
        return base64.urlsafe_b64encode(raw).decode().rstrip("=")

    return {"keys": [{"kty": "RSA", "n": b64(n), "e": b64(e), "kid": "small", "alg": "RS384"}]}


REFUSALS = {
    "an RSA key under 2048 bits": (
        lambda d: ["--jwks-file", str(jwks_file(d, small_rsa_jwks()))],
        ["--scope", "system/Goal.rs"],
        "2048 bits",
    ),
    "a javascript: redirect URI": (
        lambda d: ["--public", "--redirect-uri", "javascript:alert(1)"],
        ["--scope", "launch/patient", "--scope", "patient/Goal.rs"],
        "must be https://",
    ),
    "a JWKS with a private key": (
        lambda d: ["--jwks-file", str(jwks_file(d, {"keys": [make_key().as_dict(private=True)]}))],
        ["--scope", "system/Goal.rs"],
        "private",
    ),
    "a backend client with patient/ scopes": (
        lambda d: ["--jwks-file", str(jwks_file(d, public_jwks(make_key())))],
        ["--scope", "patient/Goal.rs"],
        "system/",
    ),
    "a public app without a redirect URI": (
        lambda d: ["--public"],
        ["--scope", "launch/patient", "--scope", "patient/Goal.rs"],
        "redirect",
    ),
    "a public app with keys": (
        lambda d: [
            "--public",
            "--redirect-uri",
            "https://app.example/cb",
            "--jwks-uri",
            "https://x",
        ],
        ["--scope", "patient/Goal.rs"],
        "public app has no keys",
    ),
    "a backend client without keys": (
        lambda d: [],
        ["--scope", "system/Goal.rs"],
        "jwks",
    ),
    "a scope outside the SMART grammar": (
        lambda d: ["--jwks-file", str(jwks_file(d, public_jwks(make_key())))],
        ["--scope", "system/Goal.everything"],
        "not a SMART scope",
    ),
    "a plain-http jwks_uri": (
        lambda d: ["--jwks-uri", "http://keys.example/jwks.json"],
        ["--scope", "system/Goal.rs"],
        "https",
    ),
    # Issue 12 B5: the address check of Subscription endpoints (vault/kernel/netguard.py).
    "a jwks_uri with userinfo": (
        lambda d: ["--jwks-uri", "http://localhost@evil.example/jwks.json"],
        ["--scope", "system/Goal.rs"],
        "user name or password",
    ),
    "a jwks_uri at the cloud metadata address": (
        lambda d: ["--jwks-uri", "https://169.254.169.254/latest/meta-data"],
        ["--scope", "system/Goal.rs"],
        "non-public address",
    ),
    "a jwks_uri that only starts like 127.0.0.1": (
        lambda d: ["--jwks-uri", "http://127.0.0.1.evil.example/jwks.json"],
        ["--scope", "system/Goal.rs"],
        "https",
    ),
    "a jwks_uri on a loopback spelling": (
        lambda d: ["--jwks-uri", "https://0x7f000001/jwks.json"],
        ["--scope", "system/Goal.rs"],
        "non-public address",
    ),
}


@pytest.mark.parametrize("case", sorted(REFUSALS))
def test_client_add_refuses(
    case: str, data_dir: Path, env: dict[str, str], runtime: Runtime, tmp_path: Path
) -> None:
    keys, scopes, message = REFUSALS[case]
    _, err = vault(
        "client",
        "add",
        "--data-dir",
        str(data_dir),
        "--name",
        "Iets",
        "--organization-name",
        "MEE",
        *keys(tmp_path),
        *scopes,
        env=env,
        ok=False,
    )
    assert err.startswith("error:")
    assert message.lower() in err.lower()
    assert client_count(runtime) == 0
    assert organizations(runtime) == {}


# -- client remove -----------------------------------------------------------------------------


@pytest.fixture
def served(
    data_dir: Path, env: dict[str, str], settings: Settings, tmp_path: Path
) -> Iterator[str]:
    """`vault serve` on a free port of 127.0.0.1; its URL."""

    def command(port: int) -> list[str]:
        return [*vault_command(), "serve", "--data-dir", str(data_dir), "--port", str(port)]

    with ServerProcess(command, env=env, log_path=tmp_path / "serve.log") as server:
        yield server.url


def test_client_remove_revokes_its_tokens_at_once(
    data_dir: Path, env: dict[str, str], served: str, tmp_path: Path
) -> None:
    key = make_key("RS384")
    client_id = add_backend(data_dir, env, jwks=jwks_file(tmp_path, public_jwks(key)))
    partner = BackendClient(served, client_id, key, ["system/Organization.rs"])
    with httpx.Client(timeout=30) as http:
        token = partner.token(http)
        headers = {"authorization": f"Bearer {token}"}
        assert http.get(f"{served}/fhir/Organization", headers=headers).status_code == 200

        out, _ = vault("client", "remove", "--data-dir", str(data_dir), client_id, env=env)

        assert "revoked" in out
        refused = http.get(f"{served}/fhir/Organization", headers=headers)
        assert refused.status_code == 401
        assert "invalid_token" in refused.headers["www-authenticate"]
        again = partner.token_request(http)
        assert again.status_code in (400, 401)
        assert again.json()["error"] == "invalid_client"
    listed, _ = vault("client", "list", "--data-dir", str(data_dir), env=env)
    assert client_id not in listed


def test_client_remove_of_an_unknown_client_fails(data_dir: Path, env: dict[str, str]) -> None:
    initialise(Settings(data_dir=data_dir, database_url=env["VAULT_DATABASE_URL"]))
    _, err = vault(
        "client", "remove", "--data-dir", str(data_dir), str(uuid.uuid4()), env=env, ok=False
    )
    assert "no client" in err


# -- account add -------------------------------------------------------------------------------


def test_account_add_prints_a_password_that_logs_the_inwoner_in(
    data_dir: Path, env: dict[str, str], runtime: Runtime
) -> None:
    with runtime.db.write() as conn:
        person, _ = Repository(runtime, AccessContext.full()).create(
            conn, "Patient", patient_resource()
        )

    out, _ = vault(
        "account",
        "add",
        "--data-dir",
        str(data_dir),
        "--username",
        "Sanne",
        "--patient-id",
        person.resource_id,
        "--name",
        "Sanne Jansen",
        env=env,
    )

    password = out.strip().splitlines()[-1].rsplit(" ", 1)[-1]
    with runtime.db.read() as conn:
        account = authenticate(conn, username="sanne", password=password)
        assert authenticate(conn, username="sanne", password=password + "x") is None
    assert account is not None
    assert account.patient_id == person.resource_id
    assert account.display_name == "Sanne Jansen"


def test_account_add_again_gives_a_new_password_and_the_old_one_stops_working(
    data_dir: Path, env: dict[str, str], runtime: Runtime
) -> None:
    with runtime.db.write() as conn:
        person, _ = Repository(runtime, AccessContext.full()).create(
            conn, "Patient", patient_resource()
        )
    username, old_password = inwoner_account(runtime, person.resource_id)

    out, _ = vault(
        "account",
        "add",
        "--data-dir",
        str(data_dir),
        "--username",
        username,
        "--patient-id",
        person.resource_id,
        env=env,
    )

    new_password = out.strip().splitlines()[-1].rsplit(" ", 1)[-1]
    with runtime.db.read() as conn:
        assert authenticate(conn, username=username, password=old_password) is None
        assert authenticate(conn, username=username, password=new_password) is not None


def test_account_add_for_an_unknown_patient_is_refused(
    data_dir: Path, env: dict[str, str], runtime: Runtime
) -> None:
    _, err = vault(
        "account",
        "add",
        "--data-dir",
        str(data_dir),
        "--username",
        "niemand",
        "--patient-id",
        "no-such-patient",
        env=env,
        ok=False,
    )
    assert err.startswith("error:")
    with runtime.db.read() as conn:
        assert conn.execute(select(Account.account_id)).first() is None
