"""The shared directory of organisations (Organization resources outside any compartment)."""

from __future__ import annotations

import orjson
from sqlalchemy import Connection, select

from vault.consent.access import AccessContext
from vault.fhir.repository import Repository
from vault.kernel.runtime import Runtime
from vault.store.models import ResourceRow

__all__ = ["find_or_create_organization"]


def find_or_create_organization(runtime: Runtime, conn: Connection, name: str) -> str:
    """The id of the Organization called ``name`` (any case), created when there is none."""
    repo = Repository(runtime, AccessContext.full("operator"))
    ids = conn.scalars(
        select(ResourceRow.resource_id).where(
            ResourceRow.resource_type == "Organization", ResourceRow.deleted.is_(False)
        )
    ).all()
    wanted = name.strip().casefold()
    for resource_id in ids:
        body = orjson.loads(repo.read(conn, "Organization", resource_id).body or b"{}")
        if str(body.get("name", "")).strip().casefold() == wanted:
            return str(resource_id)
    stored, _ = repo.create(
        conn, "Organization", {"resourceType": "Organization", "active": True, "name": name}
    )
    return stored.resource_id
