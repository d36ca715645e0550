"""The vault's id-token signing keys: `vault keys rotate-signing` and what /oauth/jwks shows.

Each test gets a vault of its own (fresh data folder and database), because rotating keys
changes what every other test would see in the JWKS.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from joserfc import jwk, jws, jwt
from joserfc.errors import JoseError
from sqlalchemy import select, update

from tests.conftest import ServerThread, initialise, make_settings
from tests.factories import patient as patient_resource
from tests.support import fresh_database, run_vault, vault_env
from tests.support.smart import App, inwoner_account, register_app
from vault.app.clients import rotate_signing
from vault.app.main import create_app
from vault.audit.runtime import open_runtime
from vault.consent.access import AccessContext
from vault.fhir.repository import Repository
from vault.kernel.runtime import Runtime, now_micros
from vault.store.models import SigningKey


@dataclass
class Vault:
    runtime: Runtime
    server: ServerThread
    app: App
    login: tuple[str, str]

    @property
    def url(self) -> str:
        return self.server.url

    def jwks(self, http: httpx.Client) -> jwk.KeySet:
        response = http.get(f"{self.url}/oauth/jwks")
        assert response.status_code == 200
        return jwk.KeySet.import_key_set(response.json())

    def kids(self, http: httpx.Client) -> set[str]:
        return {k.kid for k in self.jwks(http) if k.kid is not None}

    def id_token(self, http: httpx.Client) -> str:
        username, password = self.login
        token = self.app.full_flow(
            http, username=username, password=password, scope="openid fhirUser launch/patient"
        )
        return str(token["id_token"])


@pytest.fixture
def own_vault(tmp_path: Path) -> Iterator[Vault]:
    with fresh_database(tmp_path) as url:
        settings = make_settings(tmp_path / "vault", url)
        initialise(settings)
        runtime = open_runtime(settings)
        try:
            with runtime.db.write() as conn:
                person, _ = Repository(runtime, AccessContext.full()).create(
                    conn, "Patient", patient_resource()
                )
            with ServerThread(create_app(settings, runtime=runtime)) as server:
                app = register_app(
                    runtime, server.url, scopes=["openid", "fhirUser", "launch/patient"]
                )
                yield Vault(runtime, server, app, inwoner_account(runtime, person.resource_id))
        finally:
            runtime.close()


def kid_of(token: str) -> str:
    return str(jws.extract_compact(token.encode()).headers()["kid"])


def verify(token: str, keys: jwk.KeySet) -> dict[str, Any]:
    claims: dict[str, Any] = jwt.decode(token, keys, algorithms=["RS256"]).claims
    jwt.JWTClaimsRegistry(exp={"essential": True}).validate(claims)
    return claims


def test_rotation_publishes_the_new_key_next_to_the_old_one(
    own_vault: Vault, http: httpx.Client
) -> None:
    (old,) = own_vault.kids(http)

    new = rotate_signing(own_vault.runtime)

    assert new != old
    assert own_vault.kids(http) == {old, new}
    for key in http.get(f"{own_vault.url}/oauth/jwks").json()["keys"]:
        assert "d" not in key


def test_id_token_signed_before_rotation_still_verifies_after_it(
    own_vault: Vault, http: httpx.Client
) -> None:
    (old,) = own_vault.kids(http)
    before = own_vault.id_token(http)
    assert kid_of(before) == old

    rotate_signing(own_vault.runtime)

    claims = verify(before, own_vault.jwks(http))
    assert claims["aud"] == own_vault.app.client_id


def test_new_id_tokens_are_signed_with_the_new_key(own_vault: Vault, http: httpx.Client) -> None:
    (old,) = own_vault.kids(http)

    new = rotate_signing(own_vault.runtime)

    after = own_vault.id_token(http)
    assert kid_of(after) == new
    verify(after, own_vault.jwks(http))
    # The old key alone cannot vouch for it.
    only_old = jwk.KeySet([k for k in own_vault.jwks(http) if k.kid == old])
    with pytest.raises(JoseError):
        jwt.decode(after, only_old, algorithms=["RS256"])


def test_old_key_stays_published_until_every_id_token_it_signed_has_expired(
    own_vault: Vault, http: httpx.Client
) -> None:
    (old,) = own_vault.kids(http)
    before = own_vault.id_token(http)
    expires = verify(before, own_vault.jwks(http))["exp"]

    rotate_signing(own_vault.runtime)

    with own_vault.runtime.db.read() as conn:
        retire_after = conn.execute(
            select(SigningKey.retire_after).where(SigningKey.kid == old)
        ).scalar_one()
    assert retire_after is not None
    assert retire_after >= expires * 1_000_000


def test_a_key_past_its_retire_after_is_no_longer_published(
    own_vault: Vault, http: httpx.Client
) -> None:
    (old,) = own_vault.kids(http)
    new = rotate_signing(own_vault.runtime)
    assert own_vault.kids(http) == {old, new}

    # Time passes: the old key's tokens have all expired.
    with own_vault.runtime.db.write() as conn:
        conn.execute(
            update(SigningKey).where(SigningKey.kid == old).values(retire_after=now_micros() - 1)
        )

    assert own_vault.kids(http) == {new}
    verify(own_vault.id_token(http), own_vault.jwks(http))


@pytest.mark.slow
def test_vault_keys_rotate_signing_command_rotates_the_key(tmp_path: Path) -> None:
    data_dir = tmp_path / "vault"
    with fresh_database(tmp_path) as url:
        env = vault_env(url)
        assert run_vault("init", "--data-dir", str(data_dir), env=env).returncode == 0
        settings = make_settings(data_dir, url)
        runtime = open_runtime(settings)
        try:
            with runtime.db.read() as conn:
                (old,) = conn.execute(select(SigningKey.kid)).scalars()

            result = run_vault("keys", "rotate-signing", "--data-dir", str(data_dir), env=env)

            assert result.returncode == 0, result.stderr
            with runtime.db.read() as conn:
                rows = {r.kid: r.retire_after for r in conn.execute(select(SigningKey))}
        finally:
            runtime.close()
    assert len(rows) == 2
    assert rows[old] is not None and rows[old] > now_micros()
    (new,) = [kid for kid, retire in rows.items() if retire is None]
    assert new in result.stdout
