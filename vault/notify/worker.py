"""The delivery worker: from the outbox to each subscriber's endpoint, ids only.

Two steps, each in short transactions, so any number of vault processes can run one
(``vault serve --workers N``):

1. **Fan-out.** Outbox events (``notify_event``, written with each change) are taken in
   order by one worker at a time (a PostgreSQL advisory lock; SQLite's ``BEGIN
   IMMEDIATE`` serialises writers anyway). For every active Subscription the subscriber's
   own access decision is asked (``Repository.may_see`` under the client's
   ``AccessContext``: its registered scopes and the inwoner's active grants); only then a
   delivery row is made. A change of a grant goes to the grantee's subscriptions.
2. **Delivery.** A worker claims a Subscription with pending deliveries by setting its
   lease (``FOR UPDATE SKIP LOCKED`` on PostgreSQL), re-asks the access decision just
   before it sends (a grant may have been revoked meanwhile), and POSTs one id-only
   notification per event, in event order. A failure holds the Subscription back for an
   exponentially growing time; after ``notify_max_attempts`` failures it goes to status
   ``error`` (Subscriptions Backport IG, "Subscription status") and waits for its owner.

Delivery is at least once: a crash between the POST and its bookkeeping sends that event
again; partners recognise it by its event number.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

import httpx
import orjson
from sqlalchemy import Connection, delete, exists, insert, select, text, update

from vault.consent.access import AccessContext, registered_purposes
from vault.fhir.repository import Repository
from vault.kernel.crypto import open_body
from vault.kernel.metrics import DELIVERY_FAILURES
from vault.kernel.netguard import Refused, check_url, pinned_request
from vault.kernel.runtime import Runtime, now_micros
from vault.notify.models import NotifyDelivery, NotifySubscription
from vault.notify.payload import Event, notification_bundle
from vault.oauth.models import OAuthClient
from vault.oauth.scopes import permissions_from
from vault.store.models import SHARED_OWNER, DataKey
from vault.store.outbox import NotifyEvent
from vault.store.registry import SCOPE_TYPES

__all__ = ["Notifier", "client_context"]

log = logging.getLogger(__name__)

S = NotifySubscription.__table__.c
E = NotifyEvent.__table__.c
D = NotifyDelivery.__table__.c
FAN_OUT_BATCH = 200
CLAIM_BATCH = 10
PER_CLAIM = 20  # deliveries one claim may send before the lease is given back
FAN_OUT_LOCK = 0x52_4B_4E_4F  # "RKNO": the advisory lock of the fan-out step
MAX_BACKOFF_SECONDS = 3600.0


def client_context(conn: Connection, client_id: str) -> AccessContext | None:
    """The ``AccessContext`` a token of this client would carry at most (its registration)."""
    row = conn.execute(
        select(
            OAuthClient.scope, OAuthClient.organization_id, OAuthClient.purpose, OAuthClient.kind
        ).where(OAuthClient.client_id == client_id, OAuthClient.removed_at.is_(None))
    ).first()
    if row is None or row.kind != "backend":
        return None
    return AccessContext(
        subject=f"client:{client_id}",
        kind="system",
        client_id=client_id,
        organization=f"Organization/{row.organization_id}" if row.organization_id else None,
        permissions=permissions_from(row.scope.split(), context="system", known_types=SCOPE_TYPES),
        purposes=registered_purposes(row.purpose),
        patient_id=None,
        account_id=None,
        practitioner=None,
        representative=None,
    )


class Notifier:
    """Runs fan-out and delivery in a background thread of one vault process."""

    def __init__(self, runtime: Runtime, *, http: httpx.Client | None = None) -> None:
        self._rt = runtime
        settings = runtime.settings
        self._http = http or httpx.Client(
            # No proxy from the environment: a proxy would resolve the name itself and
            # undo the address check (vault/kernel/netguard.py).
            timeout=settings.notify_timeout_seconds,
            follow_redirects=False,
            trust_env=False,
        )
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lease = int(max(60.0, (PER_CLAIM + 1) * settings.notify_timeout_seconds) * 1e6)

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> None:
        if self._thread is None:
            self._stop.clear()
            self._thread = threading.Thread(target=self._loop, name="notify", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
            self._thread = None
        self._http.close()

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                busy = self.run_once()
            except Exception as exc:  # the next round retries; nothing is lost from the outbox
                log.warning("notification round failed: %s", type(exc).__name__)
                busy = 0
            if not busy:
                self._stop.wait(self._rt.settings.notify_poll_seconds)

    def run_once(self) -> int:
        """One round of fan-out and delivery; returns how much it did."""
        return self.fan_out() + self.deliver_due()

    # -- 1. fan-out ------------------------------------------------------------------------

    def fan_out(self) -> int:
        # Long on purpose: one batch under one advisory lock: claim events, decide per subscriber,
        # write deliveries.
        db = self._rt.db
        with db.read() as conn:
            if conn.execute(select(E.id).limit(1)).first() is None:
                return 0
        with db.write() as conn:
            if (
                conn.dialect.name == "postgresql"
                and not conn.execute(
                    text("SELECT pg_try_advisory_xact_lock(:k)"), {"k": FAN_OUT_LOCK}
                ).scalar()
            ):
                return 0
            events = conn.execute(
                select(NotifyEvent.__table__).order_by(E.id).limit(FAN_OUT_BATCH)
            ).all()
            if not events:
                return 0
            subs = conn.execute(
                select(S.id, S.client_id, S.types, S.events_since_start, S.created_at).where(
                    S.status == "active"
                )
            ).all()
            repos: dict[str, Repository | None] = {}
            counters = {sub.id: sub.events_since_start for sub in subs}
            now = now_micros()
            rows: list[dict[str, Any]] = []
            for event in events:
                for sub in subs:
                    if sub.client_id not in repos:
                        ctx = client_context(conn, sub.client_id)
                        repos[sub.client_id] = Repository(self._rt, ctx) if ctx else None
                    repo = repos[sub.client_id]
                    if event.created_at < sub.created_at:
                        continue  # a Subscription hears of changes made after it began
                    if repo is None or not _concerns(conn, repo, sub.types, event):
                        continue
                    counters[sub.id] += 1
                    rows.append(
                        {
                            "subscription_id": sub.id,
                            "event_number": counters[sub.id],
                            "kind": event.kind,
                            "patient_id": event.patient_id,
                            "resource_type": event.resource_type,
                            "resource_id": event.resource_id,
                            "action": event.action,
                            "created_at": event.created_at,
                            "attempts": 0,
                            "next_attempt_at": now,
                        }
                    )
            if rows:
                conn.execute(insert(NotifyDelivery), rows)
            for sub in subs:
                if counters[sub.id] != sub.events_since_start:
                    conn.execute(
                        update(NotifySubscription)
                        .where(S.id == sub.id)
                        .values(events_since_start=counters[sub.id])
                    )
            # By id, not by range: on PostgreSQL an event with a lower id may commit later.
            conn.execute(delete(NotifyEvent).where(E.id.in_([e.id for e in events])))
        return len(events)

    # -- 2. delivery -----------------------------------------------------------------------

    def _due(self, now: int) -> Any:
        return select(S.id).where(
            S.status == "active",
            S.lease_until < now,
            exists(select(D.id).where(D.subscription_id == S.id)),
        )

    def deliver_due(self) -> int:
        db = self._rt.db
        now = now_micros()
        with db.read() as conn:
            if conn.execute(self._due(now).limit(1)).first() is None:
                return 0
        lease = now + self._lease
        with db.write() as conn:
            stmt = self._due(now).limit(CLAIM_BATCH)
            if conn.dialect.name == "postgresql":
                stmt = stmt.with_for_update(skip_locked=True)
            claimed = list(conn.scalars(stmt))
            if claimed:
                conn.execute(
                    update(NotifySubscription).where(S.id.in_(claimed)).values(lease_until=lease)
                )
        return sum(self._deliver_for(sub_id, lease) for sub_id in claimed)

    def _deliver_for(self, sub_id: str, lease: int) -> int:
        sent = 0
        for _ in range(PER_CLAIM):
            outcome = self._deliver_next(sub_id, lease)
            if outcome is None:
                break
            sent += outcome
        # Give the lease back, unless a failure turned it into the retry's hold-back time.
        with self._rt.db.write() as conn:
            conn.execute(
                update(NotifySubscription)
                .where(S.id == sub_id, S.lease_until == lease)
                .values(lease_until=0)
            )
        return sent

    def _deliver_next(self, sub_id: str, lease: int) -> int | None:
        """Send the oldest pending event: 1 sent, 0 skipped, None when done or held back."""
        # Long on purpose: one delivery attempt with its lease, re-decision, send and back-off in
        # order.
        db = self._rt.db
        now = now_micros()
        with db.read() as conn:
            sub = conn.execute(select(NotifySubscription.__table__).where(S.id == sub_id)).first()
            if sub is None or sub.status != "active" or sub.lease_until != lease:
                return None  # deleted, switched off, or another worker holds it now
            item = conn.execute(
                select(NotifyDelivery.__table__)
                .where(D.subscription_id == sub_id)
                .order_by(D.event_number)
                .limit(1)
            ).first()
            if item is None:
                return None
            if sub.end_at is not None and sub.end_at <= now:
                permitted = False
            else:
                ctx = client_context(conn, sub.client_id)
                permitted = ctx is not None and _still_concerns(
                    conn, Repository(self._rt, ctx), item
                )
            headers = self._headers(conn, sub) if permitted else {}
        if sub.end_at is not None and sub.end_at <= now:
            with db.write() as conn:
                conn.execute(
                    update(NotifySubscription)
                    .where(S.id == sub_id)
                    .values(status="off", lease_until=0)
                )
            return None
        if not permitted:
            with db.write() as conn:
                conn.execute(delete(NotifyDelivery).where(D.id == item.id))
            return 0
        bundle = notification_bundle(
            fhir_base=sub.fhir_base,
            subscription_id=sub.id,
            status="active",
            event=Event(
                number=item.event_number,
                timestamp=item.created_at,
                kind=item.kind,
                resource_type=item.resource_type,
                resource_id=item.resource_id,
                action=item.action,
                patient_id=item.patient_id,
            ),
            now=now,
        )
        problem = self._post(sub.endpoint, headers, orjson.dumps(bundle))
        with db.write() as conn:
            if problem is None:
                conn.execute(delete(NotifyDelivery).where(D.id == item.id))
                return 1
            attempts = item.attempts + 1
            DELIVERY_FAILURES.inc()
            settings = self._rt.settings
            delay = min(settings.notify_retry_seconds * 2 ** (attempts - 1), MAX_BACKOFF_SECONDS)
            retry_at = now + int(delay * 1e6)
            conn.execute(
                update(NotifyDelivery)
                .where(D.id == item.id)
                .values(attempts=attempts, next_attempt_at=retry_at)
            )
            if attempts >= settings.notify_max_attempts:
                log.warning("Subscription %s: %d deliveries failed; status error", sub_id, attempts)
                values: dict[str, Any] = {
                    "status": "error",
                    "error": f"delivery failed {attempts} times: {problem}",
                    "lease_until": 0,
                }
            else:
                # Held back until the retry is due: the lease doubles as the backoff.
                values = {"lease_until": retry_at, "error": problem}
            conn.execute(
                update(NotifySubscription)
                .where(S.id == sub_id, S.lease_until == lease)
                .values(**values)
            )
        return None

    def _headers(self, conn: Connection, sub: Any) -> dict[str, str]:
        key = conn.execute(
            select(DataKey.wrapped, DataKey.master_key_id).where(DataKey.owner == SHARED_OWNER)
        ).one()
        aead = self._rt.keys.aead(owner=SHARED_OWNER, key_id=key.master_key_id, wrapped=key.wrapped)
        data = orjson.loads(
            open_body(
                aead,
                resource_type="Subscription",
                resource_id=sub.id,
                version=sub.version_id,
                sealed=sub.body,
            )
        )
        headers = {"content-type": "application/fhir+json"}
        for line in data.get("channel", {}).get("header") or []:
            name, _, value = str(line).partition(":")
            headers[name.strip()] = value.strip()
        return headers

    def _post(self, endpoint: str, headers: dict[str, str], body: bytes) -> str | None:
        """None when the endpoint took it (2xx); else a short reason without any data."""
        try:
            # Checked again now, not only at registration: the name may point elsewhere by
            # now (DNS rebinding); the POST goes to the address this check approved.
            target = check_url(
                endpoint,
                allow_local_dev=self._rt.settings.notify_allow_local_http,
                what="the endpoint",
            )
        except Refused as exc:
            return f"refused: {exc}"
        try:
            response = pinned_request(
                self._http, target, method="POST", headers=headers, content=body
            )
        except httpx.HTTPError as exc:
            return f"no answer ({type(exc).__name__})"
        if 200 <= response.status_code < 300:
            return None
        return f"HTTP {response.status_code}"


def _concerns(conn: Connection, repo: Repository, types: str, event: Any) -> bool:
    """Whether an outbox event is for this subscriber (fan-out)."""
    if event.kind != "change":
        return event.grantee in repo.context.grantees
    wanted = types.split()
    if wanted and event.resource_type not in wanted:
        return False
    return repo.may_see(conn, event.resource_type, event.resource_id)


def _still_concerns(conn: Connection, repo: Repository, item: Any) -> bool:
    """Asked again just before sending: a grant may have ended since the fan-out."""
    if item.kind != "change":
        return True  # the grantee hears that its grant changed, whatever it is now
    return repo.may_see(conn, item.resource_type, item.resource_id)
