"""The reports' tests meet the vault as a gemeente's system does: real tokens, real HTTP."""

from __future__ import annotations

from tests.integration.consent.conftest import (  # noqa: F401 - fixtures, shared
    http,
    make_partner,
    operator,
    vault,
)
