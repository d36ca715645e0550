"""``vault-adapter``: run an adapter against a vault from a config file (see config.py)."""

from __future__ import annotations

import secrets
import signal
import sys
import threading
from pathlib import Path
from typing import Annotated

import typer

from adapters.config import ConfigError, load_adapter_class, load_config, load_key
from adapters.sdk.client import VaultClient
from adapters.sdk.errors import VaultClientError
from adapters.sdk.notifications import (
    Notification,
    NotificationReceiver,
    apply_notification,
    subscription_resource,
)
from adapters.sdk.sync import Synchroniser

__all__ = ["app", "main"]

app = typer.Typer(help="Run a Regiekluis adapter.", no_args_is_help=True, add_completion=False)


@app.callback()
def main() -> None:
    """Keep a partner system in step with what inwoners share with it."""


@app.command()
def sync(
    config: Annotated[Path, typer.Option("--config", help="the adapter's TOML config file")],
    full: Annotated[
        bool, typer.Option("--full", help="compare every id, even if nothing hints at a change")
    ] = False,
) -> None:
    """Run one sync: fetch what changed, remove what is no longer granted."""
    # An adapter module next to the config file is found without installing it.
    sys.path.insert(0, str(config.resolve().parent))
    try:
        settings = load_config(config)
        key = load_key(settings.key_file)
        adapter = load_adapter_class(settings.adapter_class)(settings.adapter_settings)
    except (ConfigError, ValueError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc
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
    sys.path.insert(0, str(config.resolve().parent))
    try:
        settings = load_config(config)
        key = load_key(settings.key_file)
        adapter = load_adapter_class(settings.adapter_class)(settings.adapter_settings)
    except (ConfigError, ValueError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc
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
                    apply_notification(
                        notification,
                        client=client,
                        target=adapter,
                        synchroniser=sync,
                        types=settings.types,
                    )

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
