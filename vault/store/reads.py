"""Opening what the store sealed: the one place a version's body is decrypted.

The FHIR layer's repository decides which rows a caller may see and opens them here; the
access log's verification opens its own records here, by row, with no caller at all.
"""

from __future__ import annotations

from typing import Any

import orjson
from sqlalchemy import Connection, func, literal, select

from vault.kernel.crypto import open_body
from vault.kernel.runtime import Runtime
from vault.store.models import SHARED_OWNER, DataKey, ResourceRow, VersionRow

__all__ = ["open_sealed", "open_version", "previous_version"]

R = ResourceRow.__table__.c
V = VersionRow.__table__.c
K = DataKey.__table__.c


def open_sealed(
    runtime: Runtime,
    *,
    resource_type: str,
    resource_id: str,
    version: int,
    patient_id: str | None,
    sealed: bytes,
    wrapped: bytes | None,
    key_id: str | None,
) -> bytes:
    """The JSON of one sealed version, with its owner's data key (``KeyUnavailable`` once
    that key was destroyed)."""
    aead = runtime.keys.aead(owner=patient_id or SHARED_OWNER, key_id=key_id or "", wrapped=wrapped)
    return open_body(
        aead, resource_type=resource_type, resource_id=resource_id, version=version, sealed=sealed
    )


def open_version(runtime: Runtime, conn: Connection, resource_pk: int, version: int) -> bytes:
    """The JSON of version ``version`` of the resource row ``resource_pk``; no access check.

    For the vault's own records only (the access log's verification): a caller's read goes
    through the repository and its access decision.
    """
    row = conn.execute(
        select(R.resource_type, R.resource_id, V.patient_id, V.body, K.wrapped, K.master_key_id)
        .select_from(ResourceRow.__table__)
        .join(VersionRow.__table__, V.resource_pk == R.pk)
        .outerjoin(DataKey.__table__, K.owner == func.coalesce(R.patient_id, literal(SHARED_OWNER)))
        .where(R.pk == resource_pk, V.version_id == version)
    ).one()
    return open_sealed(
        runtime,
        resource_type=row.resource_type,
        resource_id=row.resource_id,
        version=version,
        patient_id=row.patient_id,
        sealed=row.body,
        wrapped=row.wrapped,
        key_id=row.master_key_id,
    )


def previous_version(
    runtime: Runtime, conn: Connection, resource_pk: int, version: int
) -> dict[str, Any] | None:
    """The JSON of the version before ``version`` (None: there is none, or it was a deletion).

    For the vault's own checks of a write inside its transaction (the signatures a child's
    Consent carries over, ``consent/representation.py``); no access check.
    """
    if version <= 1:
        return None
    deleted = conn.execute(
        select(V.deleted).where(V.resource_pk == resource_pk, V.version_id == version - 1)
    ).scalar()
    if deleted is None or deleted:
        return None
    body: dict[str, Any] = orjson.loads(open_version(runtime, conn, resource_pk, version - 1))
    return body
