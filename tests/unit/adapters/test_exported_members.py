"""Every adapters package names its public API in ``__all__``, and each name exists."""

from __future__ import annotations

import importlib

import pytest

PACKAGES = ["adapters", "adapters.sdk", "adapters.sink", "adapters.samenwerkplan"]


@pytest.mark.parametrize("name", PACKAGES)
def test_all_names_exist_and_public_names_are_listed(name: str) -> None:
    module = importlib.import_module(name)
    exported = set(module.__all__)
    assert exported, f"{name} exports nothing"
    assert all(hasattr(module, member) for member in exported)
    public = {
        member
        for member, value in vars(module).items()
        if not member.startswith("_") and getattr(value, "__module__", "").startswith(name)
    }
    assert public <= exported, f"{name} does not export {sorted(public - exported)}"
