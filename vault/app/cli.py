"""The ``vault`` command line: the operator's tool for clients, keys and migrations.

It manages the vault, never the inwoners' plans (design section 2).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated

import typer
from sqlalchemy import select, update

from vault.app.clients import (
    account_app,
    client_app,
    link_account,
    new_password,
    rotate_signing,
    set_account,
)
from vault.app.demo import DEMO_PATIENT_IDS, demo_parent_logins, load_demo
from vault.app.reports import load_demo_cohort, write_report
from vault.audit.log import verify_chains
from vault.audit.runtime import open_runtime
from vault.fhir.export import export_key_owner
from vault.fhir.export_models import ExportJob
from vault.kernel.config import Settings
from vault.kernel.crypto import MasterKey, MasterKeyring, fsync_dir, pending_key_path
from vault.kernel.db import Database
from vault.kernel.errors import KeyUnavailable
from vault.kernel.runtime import Runtime
from vault.migrations import upgrade
from vault.store.keys import CURRENT_MASTER_KEY, ensure_vault_keys, signing_key_owner
from vault.store.models import DataKey, SigningKey, VaultMeta

__all__ = ["app"]

# Tracebacks never show local variables: in these commands they hold key material.
app = typer.Typer(
    help="Regiekluis: the inwoner's own data vault.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
)
keys_app = typer.Typer(
    help="Master key management.", no_args_is_help=True, pretty_exceptions_show_locals=False
)
app.add_typer(keys_app, name="keys")
app.add_typer(client_app, name="client")
app.add_typer(account_app, name="account")
audit_app = typer.Typer(
    help="The access log.", no_args_is_help=True, pretty_exceptions_show_locals=False
)
app.add_typer(audit_app, name="audit")

DataDir = Annotated[
    Path, typer.Option("--data-dir", help="The vault's data folder.", envvar="VAULT_DATA_DIR")
]


def _fail(message: str) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(code=1)


def _check_master_key(settings: Settings) -> None:
    """Refuse a missing or placeholder master key before the database is touched."""
    try:
        MasterKeyring.load(settings.master_key_path, env_value=os.environ.get("VAULT_MASTER_KEY"))
    except KeyUnavailable as exc:
        raise _fail(str(exc)) from None


def _open(settings: Settings, *, prepare: bool = False) -> Runtime:
    """Open the vault, or stop with one clear line; ``prepare`` migrates and bootstraps."""
    _check_master_key(settings)
    if prepare:
        _migrate(settings)
    try:
        return open_runtime(settings, bootstrap=prepare)
    except KeyUnavailable as exc:
        raise _fail(str(exc)) from None


def _migrate(settings: Settings) -> None:
    db = Database(settings.database_url)
    try:
        upgrade(db.write_engine)
    finally:
        db.dispose()


@app.command()
def init(data_dir: DataDir) -> None:
    """Create the data folder, the master key (0600) and the database at the newest schema."""
    settings = Settings.from_env(data_dir)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    os.chmod(settings.data_dir, 0o700)
    key_path = settings.master_key_path
    if os.environ.get("VAULT_MASTER_KEY"):
        typer.echo("using the master key from VAULT_MASTER_KEY")
    elif key_path.exists():
        typer.echo(f"keeping the existing master key at {key_path}")
    else:
        MasterKey.generate().write(key_path)
        typer.echo(f"created master key {key_path} (mode 0600): keep it safe and backed up")
    _open(settings, prepare=True).close()
    typer.echo(f"vault ready in {settings.data_dir}")


@app.command()
def serve(
    data_dir: DataDir,
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
    workers: Annotated[int, typer.Option(help="Worker processes.")] = 1,
    worker_timeout: Annotated[
        int,
        typer.Option(help="Seconds a worker may not answer the supervisor before it is replaced."),
    ] = 60,
) -> None:
    """Migrate the database to the newest schema, then serve the vault."""
    import uvicorn

    settings = Settings.from_env(data_dir)
    _open(settings, prepare=True).close()
    os.environ["VAULT_DATA_DIR"] = str(settings.data_dir)
    uvicorn.run(
        "vault.app.main:app_from_env",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        # uvicorn's 5 s default killed workers that a busy machine starved for a few seconds
        # (mid-request, and over and over while they imported): replace only a hung one.
        timeout_worker_healthcheck=worker_timeout,
        log_level="info",
        access_log=False,
        proxy_headers=False,
    )


@app.command()
def demo(
    data_dir: DataDir,
    cohort: Annotated[
        bool,
        typer.Option(
            "--cohort", help="Also load 90 fictional inwoners, so `vault report` shows figures."
        ),
    ] = False,
) -> None:
    """Load the demo family (idempotent) and give each inwoner an account to log in with."""

    runtime = _open(Settings.from_env(data_dir), prepare=True)
    logins = []
    try:
        changed = load_demo(runtime)
        if cohort:
            changed += load_demo_cohort(runtime)
        # Fresh passwords on every run: a demo password that was lost is never a dead end.
        for patient_id in DEMO_PATIENT_IDS:
            username, password = patient_id.rsplit("-", 1)[-1], new_password()
            set_account(
                runtime,
                username=username,
                patient_id=patient_id,
                display_name=username.capitalize(),
                password=password,
            )
            logins.append((username, password))
        # Each parent acts for each child with an account of their own for that child.
        for username, patient_id, related_person_id in demo_parent_logins():
            password = new_password()
            set_account(
                runtime,
                username=username,
                patient_id=None,
                display_name=username.split("-", 1)[0].capitalize(),
                password=password,
            )
            link_account(
                runtime,
                username=username,
                patient_id=patient_id,
                related_person_id=related_person_id,
            )
            logins.append((username, password))
    finally:
        runtime.close()
    typer.echo(f"demo loaded: {changed} resources created or changed")
    typer.echo("demo accounts (user name / password), new passwords on every run:")
    for username, password in logins:
        typer.echo(f"  {username:11} {password}")


@app.command()
def report(
    data_dir: DataDir,
    period: Annotated[str, typer.Option(help="A year (2026) or a quarter (2026-Q3).")],
    out: Annotated[Path, typer.Option(help="Folder for the HTML page and the CSV.")] = Path(),
    organization: Annotated[
        str, typer.Option(help="The gemeente, by name; default VAULT_REPORT_ORGANIZATION.")
    ] = "",
) -> None:
    """Write the outcome figures of closed periods as an HTML page with charts, and CSV."""

    settings = Settings.from_env(data_dir)
    runtime = _open(settings)
    try:
        written = write_report(runtime, period=period, out=out, organization=organization or None)
    except ValueError as exc:
        raise _fail(str(exc)) from None
    finally:
        runtime.close()
    for path in written:
        typer.echo(f"wrote {path}")


@keys_app.command("rotate")
def rotate(data_dir: DataDir) -> None:
    """Make a new master key, re-wrap every data key with it, and retire the old one."""
    # Long on purpose: one operator command whose steps must run in this order, each explained where
    # it happens.
    settings = Settings.from_env(data_dir)
    if os.environ.get("VAULT_MASTER_KEY"):
        raise _fail("the master key comes from VAULT_MASTER_KEY; rotate it where it is kept")
    key_path = settings.master_key_path
    pending_path = pending_key_path(key_path)
    try:
        keyring = MasterKeyring.load(key_path)
    except KeyUnavailable as exc:
        raise _fail(str(exc)) from None
    # A pending key left by an interrupted rotation is reused, so rows it already
    # wrapped stay readable; otherwise a fresh one is written before the database changes.
    if pending_path.exists():
        new = MasterKey.read(pending_path)
    else:
        new = MasterKey.generate()
        new.write(pending_path)
    db = Database(settings.database_url)
    try:
        with db.write() as conn:
            ensure_vault_keys(conn, keyring)
            # First, so that writers queue behind this transaction and then wrap new data
            # keys with the new master key (see runtime.wrapping_key).
            conn.execute(
                update(VaultMeta)
                .where(VaultMeta.name == CURRENT_MASTER_KEY)
                .values(value=new.key_id.encode("ascii"))
            )
            count = 0
            for row in conn.execute(
                select(DataKey.owner, DataKey.wrapped, DataKey.master_key_id)
            ).all():
                if row.wrapped is None:
                    continue  # shredded keys stay destroyed
                plain = keyring.unwrap(row.wrapped, owner=row.owner, key_id=row.master_key_id)
                conn.execute(
                    update(DataKey)
                    .where(DataKey.owner == row.owner)
                    .values(wrapped=new.wrap(plain, owner=row.owner), master_key_id=new.key_id)
                )
                count += 1
            for meta in conn.execute(
                select(VaultMeta.name, VaultMeta.value, VaultMeta.master_key_id)
            ).all():
                if meta.master_key_id is None:
                    continue
                plain = keyring.unwrap(meta.value, owner=meta.name, key_id=meta.master_key_id)
                conn.execute(
                    update(VaultMeta)
                    .where(VaultMeta.name == meta.name)
                    .values(value=new.wrap(plain, owner=meta.name), master_key_id=new.key_id)
                )
            for key in conn.execute(select(SigningKey)).all():
                owner = signing_key_owner(key.kid)
                plain = keyring.unwrap(key.private_sealed, owner=owner, key_id=key.master_key_id)
                conn.execute(
                    update(SigningKey)
                    .where(SigningKey.kid == key.kid)
                    .values(private_sealed=new.wrap(plain, owner=owner), master_key_id=new.key_id)
                )
            for job in conn.execute(
                select(ExportJob.id, ExportJob.wrapped_key, ExportJob.master_key_id)
            ).all():
                owner = export_key_owner(job.id)
                plain = keyring.unwrap(job.wrapped_key, owner=owner, key_id=job.master_key_id)
                conn.execute(
                    update(ExportJob)
                    .where(ExportJob.id == job.id)
                    .values(wrapped_key=new.wrap(plain, owner=owner), master_key_id=new.key_id)
                )
    except KeyUnavailable as exc:
        raise _fail(str(exc)) from None
    finally:
        db.dispose()
    # Only now, with every key re-wrapped and committed, does the new key replace the old.
    os.replace(pending_path, key_path)
    fsync_dir(key_path.parent)
    typer.echo(
        f"rotated the master key: {count} data keys re-wrapped, old key retired "
        f"(new key id {new.key_id})"
    )


@keys_app.command("rotate-signing")
def rotate_signing_command(data_dir: DataDir) -> None:
    """New signing key for id tokens; the old public key stays published until its tokens expire."""
    settings = Settings.from_env(data_dir)
    runtime = _open(settings)
    try:
        kid = rotate_signing(runtime)
    finally:
        runtime.close()
    typer.echo(f"new signing key {kid}; the old one stays in /oauth/jwks until its tokens expire")


@audit_app.command("verify")
def audit_verify(data_dir: DataDir) -> None:
    """Check every inwoner's access-log chain; names the first broken link of each."""

    settings = Settings.from_env(data_dir)
    runtime = _open(settings)
    notes: list[str] = []
    try:
        problems = verify_chains(runtime, notes=notes)
    finally:
        runtime.close()
    for note in notes:
        typer.echo(f"erased: {note}")
    if problems:
        for problem in problems:
            typer.echo(f"BROKEN: {problem}", err=True)
        raise typer.Exit(code=1)
    typer.echo("the access log is intact")


@audit_app.command("settle")
def audit_settle(data_dir: DataDir) -> None:
    """Store every waiting access-log record as its AuditEvent now (the vault does this
    itself when idle, and before anyone reads the log; needed before a downgrade past 0014)."""
    settings = Settings.from_env(data_dir)
    runtime = _open(settings)
    try:
        settled = runtime.audit.settle_all()
    finally:
        runtime.close()
    typer.echo(f"{settled} records stored as AuditEvents; none waits")


def main() -> None:  # pragma: no cover - console entry point convenience
    app(prog_name="vault")
    sys.exit(0)
