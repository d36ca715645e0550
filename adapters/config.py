"""The config file of ``vault-adapter`` (TOML)::

[vault]
url = "https://vault.example.nl"
client_id = "…"                     # printed by `vault client add`
key_file = "mee-private.pem"        # PEM private key; relative to this file
scopes = ["system/CarePlan.rs", "system/Goal.rs", "system/CareTeam.rs", "system/Consent.rs"]

[sync]
types = ["CarePlan", "Goal", "CareTeam"]
patients = "all"                    # or a list of Patient ids

[adapter]
class = "adapters.sink:SinkAdapter" # module:Class of any Adapter subclass

[adapter.settings]                  # handed to the adapter as given
database_url = "sqlite:///partner.db"
"""

from __future__ import annotations

import importlib
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from joserfc.jwk import ECKey, Key, RSAKey

from adapters.base import Adapter
from adapters.sdk.sync import DEFAULT_TYPES

__all__ = ["AdapterConfig", "ConfigError", "load_adapter_class", "load_config", "load_key"]


class ConfigError(ValueError):
    """The config file is missing something or names something that does not exist."""


@dataclass(frozen=True, slots=True)
class AdapterConfig:
    url: str
    client_id: str
    key_file: Path
    scopes: tuple[str, ...]
    types: tuple[str, ...]
    patients: tuple[str, ...] | None  # None: every inwoner that granted access
    adapter_class: str
    adapter_settings: dict[str, Any]


def _require(table: dict[str, Any], name: str, where: str) -> Any:
    if name not in table:
        raise ConfigError(f"[{where}] needs '{name}'")
    return table[name]


def load_config(path: Path) -> AdapterConfig:
    """Read and check a config file."""
    try:
        raw = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"cannot read {path}: {exc}") from exc
    vault = raw.get("vault", {})
    sync = raw.get("sync", {})
    adapter = raw.get("adapter", {})
    patients = sync.get("patients", "all")
    if patients != "all" and not (
        isinstance(patients, list) and all(isinstance(p, str) for p in patients)
    ):
        raise ConfigError('[sync] patients is "all" or a list of Patient ids')
    key_file = Path(str(_require(vault, "key_file", "vault")))
    if not key_file.is_absolute():
        key_file = path.parent / key_file
    scopes = vault.get("scopes", ["system/*.rs"])
    return AdapterConfig(
        url=str(_require(vault, "url", "vault")),
        client_id=str(_require(vault, "client_id", "vault")),
        key_file=key_file,
        scopes=tuple(str(s) for s in scopes),
        types=tuple(str(t) for t in sync.get("types", DEFAULT_TYPES)),
        patients=None if patients == "all" else tuple(patients),
        adapter_class=str(_require(adapter, "class", "adapter")),
        adapter_settings=dict(adapter.get("settings", {})),
    )


def load_key(path: Path) -> Key:
    """A PEM (or JWK JSON) private key: EC for ES384, RSA for RS384."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read the key file {path}: {exc}") from exc
    for key_class in (ECKey, RSAKey):
        try:
            key: Key = key_class.import_key(data)
        except Exception:  # noqa: S112 - try the other key type
            continue
        if not key.is_private:
            raise ConfigError(f"{path} holds a public key; the adapter signs with the private key")
        return key
    raise ConfigError(f"{path} is not an EC or RSA private key")


def load_adapter_class(target: str) -> type[Adapter]:
    """``module:Class`` (or ``module.Class``) of an ``Adapter`` subclass."""
    module_name, sep, class_name = target.partition(":")
    if not sep:
        module_name, _, class_name = target.rpartition(".")
    try:
        found = getattr(importlib.import_module(module_name), class_name)
    except (ImportError, AttributeError, ValueError) as exc:
        raise ConfigError(f"cannot load the adapter '{target}': {exc}") from exc
    if not (isinstance(found, type) and issubclass(found, Adapter)):
        raise ConfigError(f"'{target}' is not a subclass of adapters.base.Adapter")
    return found
