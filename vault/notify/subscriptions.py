"""Subscriptions of partner systems: check, store, read back, change, remove.

A Subscription follows the R4 profile of the Subscriptions R5 Backport IG
(``backport-subscription``): ``criteria`` is the topic (this vault has one,
``GRANTED_DATA_TOPIC``), optional ``backport-filter-criteria`` extensions on ``_criteria``
narrow it to resource types (``Goal?``), ``channel.type`` is ``rest-hook``,
``channel.payload`` ``application/fhir+json`` with ``backport-payload-content`` ``id-only``.

A Subscription belongs to the client that created it: another client gets 404, exactly as
for an id that does not exist. Anything the vault cannot honour is refused with an
OperationOutcome (422), never silently ignored.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

import orjson
from sqlalchemy import Connection, delete, insert, select, update

from vault.consent.access import AccessContext, Interaction
from vault.fhir.resources import ID_PATTERN, validate_resource
from vault.kernel.config import Settings
from vault.kernel.crypto import open_body, seal_body
from vault.kernel.errors import BadRequest, Forbidden, NotFound, PreconditionFailed, Unprocessable
from vault.kernel.fhirdata import format_instant, parse_date_range
from vault.kernel.netguard import Refused, check_url
from vault.kernel.runtime import Runtime, now_micros
from vault.notify.models import NotifyDelivery, NotifySubscription
from vault.notify.topic import (
    FILTER_CRITERIA,
    GRANTED_DATA_TOPIC,
    PAYLOAD_CONTENT,
    SUBSCRIPTION_PROFILE,
)
from vault.store.models import SHARED_OWNER, DataKey
from vault.store.registry import RESOURCE_TYPES, SUBSCRIPTION

__all__ = ["Checked", "SubscriptionStore", "check_subscription"]

S = NotifySubscription.__table__.c
K = DataKey.__table__.c
MAX_HEADERS = 5
FHIR_JSON = "application/fhir+json"


@dataclass(frozen=True, slots=True)
class Checked:
    """What the vault takes from a valid Subscription."""

    status: str  # what the client asked for: requested/active, or off
    types: tuple[str, ...]  # empty: every type the client may read
    endpoint: str
    end_at: int | None


def _unprocessable(message: str, element: str) -> Unprocessable:
    return Unprocessable(message, expression=[f"Subscription.{element}"], code="not-supported")


def _extensions(node: Any, url: str) -> list[Any]:
    if not isinstance(node, dict):
        return []
    return [e for e in node.get("extension") or [] if isinstance(e, dict) and e.get("url") == url]


def check_endpoint(endpoint: str, settings: Settings) -> str:
    """https to a public address (vault/kernel/netguard.py); http only to 127.0.0.1 when allowed."""
    try:
        check_url(
            endpoint,
            allow_local_dev=settings.notify_allow_local_http,
            what="channel.endpoint",
        )
    except Refused as exc:
        raise _unprocessable(str(exc), "channel.endpoint") from None
    return endpoint


def check_subscription(body: Any, settings: Settings, *, readable: frozenset[str]) -> Checked:
    """Validate a Subscription as the vault can honour it; raise 400 or 422 otherwise."""
    if not isinstance(body, dict):
        raise BadRequest("The body must be a JSON object (a FHIR resource)")
    if body.get("resourceType") != "Subscription":
        raise BadRequest(
            f"The body is a {str(body.get('resourceType'))[:40]!s}, expected Subscription",
            expression=["resourceType"],
        )
    data = {key: value for key, value in body.items() if key != "meta"}
    validate_resource(SUBSCRIPTION, data)
    status = str(data["status"])
    if status not in ("requested", "active", "off"):
        raise _unprocessable("status must be requested, active or off", "status")
    if data.get("criteria") != GRANTED_DATA_TOPIC:
        raise _unprocessable(
            f"criteria must be the topic {GRANTED_DATA_TOPIC} (the only topic of this vault)",
            "criteria",
        )
    types: list[str] = []
    for ext in _extensions(data.get("_criteria"), FILTER_CRITERIA):
        value = str(ext.get("valueString", ""))
        name = value.removesuffix("?")
        if name not in readable:
            raise _unprocessable(
                f"filter criteria '{value[:60]}' is not a resource type this client may read; "
                "filters are resource types only, such as 'Goal?'",
                "criteria",
            )
        types.append(name)
    channel = data["channel"]
    if channel.get("type") != "rest-hook":
        raise _unprocessable("channel.type must be rest-hook", "channel.type")
    endpoint = channel.get("endpoint")
    if not isinstance(endpoint, str):
        raise _unprocessable("channel.endpoint is required", "channel.endpoint")
    payload = channel.get("payload", FHIR_JSON)
    if payload != FHIR_JSON:
        raise _unprocessable(f"channel.payload must be {FHIR_JSON}", "channel.payload")
    for ext in _extensions(channel.get("_payload"), PAYLOAD_CONTENT):
        if ext.get("valueCode") != "id-only":
            raise _unprocessable(
                "this vault sends id-only notifications: fetch the resource with your token",
                "channel.payload",
            )
    headers = channel.get("header") or []
    if len(headers) > MAX_HEADERS or any(":" not in h or "\n" in h for h in headers):
        raise _unprocessable(
            f"channel.header: at most {MAX_HEADERS} lines of the form 'Name: value'",
            "channel.header",
        )
    end_at = None
    if data.get("end") is not None:
        end_at = parse_date_range(str(data["end"]))[0]
    return Checked(status, tuple(dict.fromkeys(types)), check_endpoint(endpoint, settings), end_at)


def _readable(ctx: AccessContext) -> frozenset[str]:
    return frozenset(name for name in RESOURCE_TYPES if ctx.may_read(name))


class SubscriptionStore:
    """The Subscriptions of the caller, under the caller's ``AccessContext``."""

    def __init__(self, runtime: Runtime, ctx: AccessContext) -> None:
        self._rt = runtime
        self._ctx = ctx

    def _require(self, interaction: Interaction) -> str:
        ctx = self._ctx
        if ctx.kind != "system" or ctx.client_id is None:
            raise Forbidden("Only partner systems (SMART Backend Services) subscribe")
        if not ctx.allows(interaction, "Subscription"):
            raise Forbidden("The access token's scopes do not allow this on Subscription")
        return ctx.client_id

    def _aead(self, conn: Connection) -> Any:
        key = conn.execute(select(K.wrapped, K.master_key_id).where(K.owner == SHARED_OWNER)).one()
        return self._rt.keys.aead(owner=SHARED_OWNER, key_id=key.master_key_id, wrapped=key.wrapped)

    def _seal(self, conn: Connection, sub_id: str, version: int, data: dict[str, Any]) -> bytes:
        return seal_body(
            self._aead(conn),
            resource_type="Subscription",
            resource_id=sub_id,
            version=version,
            plaintext=orjson.dumps(data),
        )

    def _own(self, conn: Connection, sub_id: str, client_id: str) -> Any:
        if not ID_PATTERN.match(sub_id):
            raise _not_found(sub_id)
        row = conn.execute(
            select(NotifySubscription.__table__).where(S.id == sub_id, S.client_id == client_id)
        ).first()
        if row is None:
            raise _not_found(sub_id)
        return row

    def render(self, conn: Connection, row: Any) -> dict[str, Any]:
        """The stored Subscription with the vault's own status, error and meta."""
        data: dict[str, Any] = orjson.loads(
            open_body(
                self._aead(conn),
                resource_type="Subscription",
                resource_id=row.id,
                version=row.version_id,
                sealed=row.body,
            )
        )
        data["status"] = row.status
        if row.error:
            data["error"] = row.error
        else:
            data.pop("error", None)
        data["meta"] = {
            "versionId": str(row.version_id),
            "lastUpdated": format_instant(row.updated_at),
            "profile": [SUBSCRIPTION_PROFILE],
        }
        return data

    def create(self, conn: Connection, body: Any, *, fhir_base: str) -> dict[str, Any]:
        client_id = self._require("c")
        checked = check_subscription(body, self._rt.settings, readable=_readable(self._ctx))
        sub_id = str(uuid.uuid4())
        now = now_micros()
        # No handshake: the vault starts delivering at once (see docs/notifications.md).
        status = "off" if checked.status == "off" else "active"
        data = {**body, "id": sub_id, "status": status}
        data.pop("meta", None)
        conn.execute(
            insert(NotifySubscription).values(
                id=sub_id,
                client_id=client_id,
                status=status,
                topic=GRANTED_DATA_TOPIC,
                types=" ".join(checked.types),
                endpoint=checked.endpoint,
                fhir_base=fhir_base,
                body=self._seal(conn, sub_id, 1, data),
                version_id=1,
                created_at=now,
                updated_at=now,
                end_at=checked.end_at,
                events_since_start=0,
                error=None,
                lease_until=0,
            )
        )
        return self.render(conn, self._own(conn, sub_id, client_id))

    def read(self, conn: Connection, sub_id: str) -> dict[str, Any]:
        client_id = self._require("r")
        return self.render(conn, self._own(conn, sub_id, client_id))

    def search(self, conn: Connection) -> list[dict[str, Any]]:
        client_id = self._require("s")
        rows = conn.execute(
            select(NotifySubscription.__table__)
            .where(S.client_id == client_id)
            .order_by(S.created_at, S.id)
        ).all()
        return [self.render(conn, row) for row in rows]

    def update(
        self, conn: Connection, sub_id: str, body: Any, *, if_match: int | None
    ) -> dict[str, Any]:
        """Change a Subscription; ``active`` again after ``error`` resumes delivery."""
        client_id = self._require("u")
        if isinstance(body, dict) and body.get("id") != sub_id:
            raise BadRequest(
                "The id in the resource must match the id in the URL",
                expression=["Subscription.id"],
            )
        row = self._own(conn, sub_id, client_id)
        if if_match is not None and if_match != row.version_id:
            raise PreconditionFailed(
                f"Version conflict: Subscription/{sub_id} is at version {row.version_id}"
            )
        checked = check_subscription(body, self._rt.settings, readable=_readable(self._ctx))
        status = "off" if checked.status == "off" else "active"
        version = row.version_id + 1
        data = {**body, "status": status}
        data.pop("meta", None)
        conn.execute(
            update(NotifySubscription)
            .where(S.id == sub_id, S.version_id == row.version_id)
            .values(
                status=status,
                types=" ".join(checked.types),
                endpoint=checked.endpoint,
                body=self._seal(conn, sub_id, version, data),
                version_id=version,
                updated_at=max(now_micros(), row.updated_at + 1),
                end_at=checked.end_at,
                error=None,
            )
        )
        return self.render(conn, self._own(conn, sub_id, client_id))

    def delete(self, conn: Connection, sub_id: str) -> None:
        client_id = self._require("d")
        self._own(conn, sub_id, client_id)
        conn.execute(delete(NotifyDelivery).where(NotifyDelivery.subscription_id == sub_id))
        conn.execute(delete(NotifySubscription).where(S.id == sub_id))


def _not_found(sub_id: str) -> NotFound:
    # The same words for a Subscription that does not exist and one of another client.
    return NotFound(f"Subscription/{sub_id[:64]} is not known")
