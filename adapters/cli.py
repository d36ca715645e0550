"""``vault-adapter``: run an adapter against a vault from a config file (see config.py), or
import an inwoner's samenwerkplan on the inwoner's own authority (``import-plan``)."""

from __future__ import annotations

import secrets
import signal
import sys
import threading
import webbrowser
from pathlib import Path
from typing import Annotated

import typer
from joserfc.jwk import Key

from adapters.base import Adapter
from adapters.config import (
    AdapterConfig,
    ConfigError,
    load_adapter_class,
    load_config,
    load_key,
)
from adapters.samenwerkplan import IMPORT_SCOPES, PlanError, PlanImporter, read_plan
from adapters.sdk.app_launch import AppLaunchAuth, TokenFile
from adapters.sdk.client import VaultClient
from adapters.sdk.errors import AuthenticationFailed, VaultClientError
from adapters.sdk.notifications import (
    Notification,
    NotificationReceiver,
    apply_notification,
    describe_notification,
    subscription_resource,
)
from adapters.sdk.sync import Synchroniser

DEFAULT_TOKEN_FILE = Path.home() / ".regiekluis" / "plan-import-token.json"

__all__ = ["app", "main"]

app = typer.Typer(help="Run a Regiekluis adapter.", no_args_is_help=True, add_completion=False)


@app.callback()
def main() -> None:
    """Keep a partner system in step with what inwoners share with it."""


def _load(config: Path) -> tuple[AdapterConfig, Key, Adapter]:
    """The config, the client's key and the adapter it names; exit 2 on any mistake."""
    # An adapter module next to the config file is found without installing it.
    sys.path.insert(0, str(config.resolve().parent))
    try:
        settings = load_config(config)
        key = load_key(settings.key_file)
        adapter = load_adapter_class(settings.adapter_class)(settings.adapter_settings)
    except (ConfigError, ValueError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc
    return settings, key, adapter


@app.command()
def sync(
    config: Annotated[Path, typer.Option("--config", help="the adapter's TOML config file")],
    full: Annotated[
        bool, typer.Option("--full", help="compare every id, even if nothing hints at a change")
    ] = False,
) -> None:
    """Run one sync: fetch what changed, remove what is no longer granted."""
    settings, key, adapter = _load(config)
    try:
        with VaultClient(settings.url, settings.client_id, key, scopes=settings.scopes) as client:
            result = Synchroniser(
                client, adapter, types=settings.types, patients=settings.patients
            ).sync(full=full)
    except VaultClientError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from exc
    finally:
        adapter.close()
    typer.echo(f"upserted {len(result.upserted)}, removed {len(result.removed)}")
    for reference in result.removed:
        typer.echo(f"removed {reference} (no longer granted)")


@app.command()
def listen(
    config: Annotated[Path, typer.Option("--config", help="the adapter's TOML config file")],
    host: Annotated[str, typer.Option(help="address to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="port to listen on")] = 8081,
    public_url: Annotated[
        str, typer.Option(help="this receiver's https address as the vault reaches it")
    ] = "",
) -> None:
    """Sync once, subscribe, then apply every change notification until stopped."""
    settings, key, adapter = _load(config)
    stop = threading.Event()
    for stop_signal in (signal.SIGINT, signal.SIGTERM):
        signal.signal(stop_signal, lambda *_: stop.set())
    secret = secrets.token_urlsafe(32)
    try:
        with VaultClient(settings.url, settings.client_id, key, scopes=settings.scopes) as client:
            sync = Synchroniser(client, adapter, types=settings.types, patients=settings.patients)
            lock = threading.Lock()  # one notification at a time: the adapter is not shared

            def handle(notification: Notification) -> None:
                with lock:
                    applied = apply_notification(
                        notification,
                        client=client,
                        target=adapter,
                        synchroniser=sync,
                        types=settings.types,
                    )
                    # One line per event: what arrived and what it changed here.
                    typer.echo(f"{describe_notification(notification)}: {applied}")

            with NotificationReceiver(handle, secret=secret, host=host, port=port) as receiver:
                subscription = client.subscribe(
                    subscription_resource(
                        public_url or receiver.url, secret=secret, types=settings.types
                    )
                )
                receiver.subscriptions.add(str(subscription["id"]))
                try:
                    with lock:
                        sync.sync()  # what changed before the subscription began
                    typer.echo(f"listening on {receiver.url}; Ctrl-C stops")
                    stop.wait()
                finally:
                    client.unsubscribe(str(subscription["id"]))
    except VaultClientError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from exc
    finally:
        adapter.close()


@app.command("import-plan")
def import_plan(
    plan_file: Annotated[Path, typer.Argument(help="the samenwerkplan (Markdown)")],
    vault: Annotated[str, typer.Option("--vault", help="the vault's address")] = "",
    client_id: Annotated[str, typer.Option("--client-id", help="the import tool's client_id")] = "",
    redirect_uri: Annotated[
        str, typer.Option(help="the loopback redirect URI the client was registered with")
    ] = "http://127.0.0.1:8976/callback",
    token_file: Annotated[
        Path, typer.Option(help="where the refresh token is kept between runs (0600)")
    ] = DEFAULT_TOKEN_FILE,
    open_browser: Annotated[
        bool, typer.Option("--open-browser/--no-open-browser", help="open the login page")
    ] = True,
    check: Annotated[
        bool, typer.Option("--check", help="only read the file and report errors")
    ] = False,
) -> None:
    """Import a samenwerkplan into the inwoner's vault, after the inwoner logs in."""
    try:
        plan = read_plan(plan_file)
    except (PlanError, OSError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc
    if check:
        typer.echo(
            f"{plan_file.name}: {len(plan.wishes)} wishes, {len(plan.activities)} activities, "
            f"{len(plan.participants)} participants"
        )
        return
    if not vault or not client_id:
        typer.echo("error: --vault and --client-id are needed to import", err=True)
        raise typer.Exit(2)

    def show(url: str) -> None:
        typer.echo("Log in and approve on this page (the inwoner themself):", err=True)
        typer.echo(url, err=True)
        if open_browser:
            webbrowser.open(url)

    auth = AppLaunchAuth(client_id, redirect_uri, IMPORT_SCOPES, store=TokenFile(token_file))
    try:
        with VaultClient(vault, client_id, auth=auth) as client:
            try:
                patient = auth.patient_id if auth.logged_in else None
                if patient is not None:
                    client.access_token()  # refresh now, so a dead token means a new login
            except AuthenticationFailed:
                patient = None
            if patient is None:
                patient = auth.login(client, show)
            result = PlanImporter(client, patient).run(plan)
    except VaultClientError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from exc
    typer.echo(
        f"{result.plan}: created {len(result.created)}, updated {len(result.updated)}, "
        f"unchanged {len(result.unchanged)}"
    )
