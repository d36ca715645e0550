"""Operator commands for the authorization server: clients, accounts and signing keys.

Registered on the ``vault`` command (``vault client …``, ``vault account add``,
``vault keys rotate-signing``).
"""

from __future__ import annotations

import json
import secrets
import uuid
from pathlib import Path
from typing import Annotated, Any

import typer
from joserfc import jwk
from joserfc.errors import JoseError
from sqlalchemy import delete, insert, select, update

from vault.audit.runtime import open_runtime
from vault.consent.access import AccessContext
from vault.consent.models import NetworkLink
from vault.fhir.directory import find_or_create_organization
from vault.fhir.repository import Repository
from vault.kernel.config import Settings
from vault.kernel.netguard import Refused, check_url
from vault.kernel.runtime import Runtime, now_micros
from vault.oauth.accounts import create_account, hash_password
from vault.oauth.keys import key_problem
from vault.oauth.models import Account, OAuthClient, Token
from vault.oauth.redirect_uris import check_redirect_uri
from vault.oauth.scopes import InvalidScope, ResourceScope, parse_scope
from vault.oauth.server import APP_TOKEN_SECONDS
from vault.store.keys import rotate_signing_key, wrapping_key
from vault.store.registry import SCOPE_TYPES

__all__ = [
    "account_app",
    "check_public_keys",
    "client_app",
    "find_or_create_organization",
    "register_client",
    "rotate_signing",
]

client_app = typer.Typer(
    help="Partner systems and apps that may ask for tokens.", no_args_is_help=True
)
account_app = typer.Typer(
    help="Accounts of inwoners (log in on the page and for apps).", no_args_is_help=True
)

DataDir = Annotated[
    Path, typer.Option("--data-dir", help="The vault's data folder.", envvar="VAULT_DATA_DIR")
]


def _open(data_dir: Path) -> Runtime:
    try:
        return open_runtime(Settings.from_env(data_dir))
    except Exception as exc:
        typer.echo(f"error: cannot open the vault in {data_dir}: {exc}", err=True)
        raise typer.Exit(code=1) from None


def _check_scopes(scopes: list[str], *, public: bool) -> None:
    for text in scopes:
        scope = parse_scope(text, known_types=SCOPE_TYPES)
        if isinstance(scope, ResourceScope):
            wanted = "patient" if public else "system"
            if scope.context != wanted:
                raise InvalidScope(
                    f"'{text}': a {'public app' if public else 'backend'} "
                    f"client gets {wanted}/ scopes"
                )
        elif not public:
            raise InvalidScope(f"'{text}' is for apps that an inwoner logs in to")


def check_public_keys(keys: list[Any]) -> None:
    """Refuse keys that may not sign client assertions: too small, wrong type, unreadable."""
    for key in keys:
        if not isinstance(key, dict):
            raise ValueError("the JWKS holds something that is not a key")
        problem = key_problem(key)
        if problem is not None:
            raise ValueError(f"key {key.get('kid', '(no kid)')}: {problem}")
        try:
            jwk.import_key(key)
        except (JoseError, ValueError, TypeError):
            raise ValueError(f"key {key.get('kid', '(no kid)')} cannot be read") from None


def register_client(
    runtime: Runtime,
    *,
    name: str,
    organization_name: str,
    scopes: list[str],
    jwks: dict[str, Any] | None = None,
    jwks_uri: str | None = None,
    redirect_uris: list[str] | None = None,
) -> str:
    """Register a client and return its client_id. Raises ValueError on bad input."""
    public = redirect_uris is not None
    if public and not redirect_uris:
        raise ValueError("a public app needs at least one --redirect-uri")
    for uri in redirect_uris or []:
        check_redirect_uri(uri)
    if not public and (jwks is None) == (jwks_uri is None):
        raise ValueError("a backend client needs exactly one of --jwks-file or --jwks-uri")
    if jwks is not None:
        keys = jwks.get("keys")
        if not isinstance(keys, list) or not keys:
            raise ValueError("the JWKS has no keys")
        check_public_keys(keys)
        if any(isinstance(k, dict) and ("d" in k or k.get("kty") == "oct") for k in keys):
            raise ValueError("the JWKS holds a private or symmetric key; register public keys only")
    if jwks_uri is not None:
        # The same address check as a Subscription's endpoint (vault/kernel/netguard.py): https to
        # a public address; http://127.0.0.1 only under the operator's development switch.
        try:
            check_url(
                jwks_uri,
                allow_local_dev=runtime.settings.notify_allow_local_http,
                what="--jwks-uri",
            )
        except Refused as exc:
            raise ValueError(str(exc)) from None
    try:
        _check_scopes(scopes, public=public)
    except InvalidScope as exc:
        raise ValueError(str(exc)) from None
    client_id = str(uuid.uuid4())
    with runtime.db.write() as conn:
        organization_id = find_or_create_organization(runtime, conn, organization_name)
        conn.execute(
            insert(OAuthClient).values(
                client_id=client_id,
                name=name,
                kind="public" if public else "backend",
                organization_id=organization_id,
                jwks=json.dumps(jwks) if jwks is not None else None,
                jwks_uri=jwks_uri,
                redirect_uris="\n".join(redirect_uris or []),
                scope=" ".join(scopes),
                created_at=now_micros(),
                removed_at=None,
            )
        )
    return client_id


@client_app.command("add")
def client_add(
    data_dir: DataDir,
    name: Annotated[str, typer.Option(help="The client's name, shown to inwoners.")],
    organization_name: Annotated[str, typer.Option(help="The organisation it acts for.")],
    scope: Annotated[list[str], typer.Option(help="A SMART scope; repeat for more.")],
    jwks_file: Annotated[Path | None, typer.Option(help="Public keys (JWKS JSON).")] = None,
    jwks_uri: Annotated[str | None, typer.Option(help="Where the public keys are.")] = None,
    public: Annotated[bool, typer.Option(help="An app an inwoner logs in to.")] = False,
    redirect_uri: Annotated[list[str] | None, typer.Option(help="Exact redirect URI.")] = None,
) -> None:
    """Register a client; prints its client_id as the last line."""
    jwks = None
    if jwks_file is not None:
        try:
            jwks = json.loads(jwks_file.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            typer.echo(f"error: cannot read the JWKS file: {exc}", err=True)
            raise typer.Exit(code=1) from None
    if public and (jwks_file is not None or jwks_uri is not None):
        typer.echo("error: a public app has no keys; leave out --jwks-file/--jwks-uri", err=True)
        raise typer.Exit(code=1)
    runtime = _open(data_dir)
    try:
        client_id = register_client(
            runtime,
            name=name,
            organization_name=organization_name,
            scopes=scope,
            jwks=jwks,
            jwks_uri=jwks_uri,
            redirect_uris=(redirect_uri or []) if public else None,
        )
    except ValueError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(code=1) from None
    finally:
        runtime.close()
    typer.echo(
        f"registered {'app' if public else 'backend client'} '{name}' for {organization_name}"
    )
    typer.echo(client_id)


@client_app.command("list")
def client_list(data_dir: DataDir) -> None:
    """List registered clients."""
    runtime = _open(data_dir)
    try:
        with runtime.db.read() as conn:
            rows = conn.execute(
                select(OAuthClient)
                .where(OAuthClient.removed_at.is_(None))
                .order_by(OAuthClient.created_at)
            ).all()
    finally:
        runtime.close()
    for row in rows:
        typer.echo(f"{row.client_id}  {row.kind:8}  {row.name}  [{row.scope}]")


@client_app.command("remove")
def client_remove(data_dir: DataDir, client_id: str) -> None:
    """Remove a client; every token it holds stops working at once."""
    runtime = _open(data_dir)
    try:
        with runtime.db.write() as conn:
            found = conn.execute(
                update(OAuthClient)
                .where(OAuthClient.client_id == client_id, OAuthClient.removed_at.is_(None))
                .values(removed_at=now_micros())
            ).rowcount
            conn.execute(update(Token).where(Token.client_id == client_id).values(revoked=True))
    finally:
        runtime.close()
    if not found:
        typer.echo(f"error: no client {client_id}", err=True)
        raise typer.Exit(code=1)
    typer.echo(f"removed {client_id}; its tokens are revoked")


def new_password() -> str:
    return secrets.token_urlsafe(12)


def set_account(
    runtime: Runtime, *, username: str, patient_id: str | None, display_name: str, password: str
) -> None:
    """Create the account, or give an existing one this password."""

    with runtime.db.write() as conn:
        existing = conn.execute(
            select(Account.account_id).where(Account.username == username.lower())
        ).first()
        if existing is None:
            create_account(
                conn,
                username=username,
                password=password,
                display_name=display_name,
                patient_id=patient_id,
                now=now_micros(),
            )
        else:
            conn.execute(
                update(Account)
                .where(Account.account_id == existing.account_id)
                .values(
                    password_hash=hash_password(password),
                    patient_id=patient_id,
                    display_name=display_name,
                )
            )


def link_account(
    runtime: Runtime, *, username: str, patient_id: str, related_person_id: str
) -> None:
    """Tie an account without a vault of its own to someone of an inwoner's network (the
    link an accepted invitation makes); their role comes from ``web_representation``."""
    with runtime.db.write() as conn:
        account_id = conn.execute(
            select(Account.account_id).where(Account.username == username.lower())
        ).scalar_one()
        conn.execute(delete(NetworkLink).where(NetworkLink.account_id == account_id))
        conn.execute(
            insert(NetworkLink).values(
                account_id=account_id,
                patient_id=patient_id,
                related_person_id=related_person_id,
                legal_basis=None,
                created_at=now_micros(),
            )
        )


@account_app.command("add")
def account_add(
    data_dir: DataDir,
    username: Annotated[str, typer.Option(help="The name to log in with.")],
    patient_id: Annotated[str, typer.Option(help="The inwoner's Patient id.")],
    name: Annotated[str, typer.Option(help="How the page greets them.")] = "",
) -> None:
    """Create an account for an inwoner; prints a new password."""
    runtime = _open(data_dir)
    password = new_password()
    try:
        with runtime.db.read() as conn:
            Repository(runtime, AccessContext.full("operator")).read(conn, "Patient", patient_id)
        set_account(
            runtime,
            username=username,
            patient_id=patient_id,
            display_name=name or username,
            password=password,
        )
    except Exception as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(code=1) from None
    finally:
        runtime.close()
    typer.echo(f"account {username}: password {password}")


def rotate_signing(runtime: Runtime) -> str:
    with runtime.db.write() as conn:
        # Keep the old public key published for as long as a token it signed may live.
        return rotate_signing_key(
            conn,
            wrapping_key(conn, runtime.keys.keyring),
            now=now_micros(),
            keep_public_for=(APP_TOKEN_SECONDS + 300) * 1_000_000,
        )
