"""Questions about registered clients that other layers ask through the app's wiring.

The FHIR layer resumes a Bulk export only for a client that is still registered; it may
not read the authorization server's tables, so the app hands it ``is_registered``.
"""

from __future__ import annotations

from sqlalchemy import Connection, select

from vault.oauth.models import OAuthClient

__all__ = ["is_registered"]


def is_registered(conn: Connection, client_id: str) -> bool:
    """Whether ``client_id`` is registered and not removed."""
    found = conn.execute(
        select(OAuthClient.client_id).where(
            OAuthClient.client_id == client_id, OAuthClient.removed_at.is_(None)
        )
    ).first()
    return found is not None
