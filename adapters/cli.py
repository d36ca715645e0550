"""``vault-adapter``: run an adapter against a vault from a config file (see config.py)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from adapters.config import ConfigError, load_adapter_class, load_config, load_key
from adapters.sdk.client import VaultClient
from adapters.sdk.errors import VaultClientError
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
