"""Tables of change notifications (``vault/notify``).

``notify_subscription`` holds each partner's Subscription (its body sealed under the
vault's shared data key: channel headers may carry the partner's secret).
The outbox ``notify_event`` lives in ``vault/store/outbox.py``: every write records its
change there. ``notify_delivery``
holds one row per (subscription, event) still to be sent; it carries ids only.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Index, Integer, LargeBinary, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from vault.kernel.db import Base, BigIntPk, Micros

__all__ = ["NotifyDelivery", "NotifySubscription"]


class NotifySubscription(Base):
    __tablename__ = "notify_subscription"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    client_id: Mapped[str] = mapped_column(String(64), index=True)
    status: Mapped[str] = mapped_column(String(16))  # active | error | off
    topic: Mapped[str] = mapped_column(String(255))
    types: Mapped[str] = mapped_column(Text, default="")  # space separated; empty: all
    endpoint: Mapped[str] = mapped_column(String(2000))
    fhir_base: Mapped[str] = mapped_column(String(2000))  # for fullUrls in notifications
    body: Mapped[bytes] = mapped_column(LargeBinary)  # sealed under the shared data key
    version_id: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[Micros]
    updated_at: Mapped[Micros]
    end_at: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    events_since_start: Mapped[int] = mapped_column(BigInteger, default=0)
    error: Mapped[str | None] = mapped_column(String(200), nullable=True)
    # A worker that is delivering for this subscription holds it until then (microseconds).
    lease_until: Mapped[int] = mapped_column(BigInteger, default=0)


class NotifyDelivery(Base):
    __tablename__ = "notify_delivery"
    id: Mapped[int] = mapped_column(BigIntPk, primary_key=True, autoincrement=True)
    subscription_id: Mapped[str] = mapped_column(String(64))
    event_number: Mapped[int] = mapped_column(BigInteger)
    kind: Mapped[str] = mapped_column(String(16))
    patient_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    resource_type: Mapped[str] = mapped_column(String(40))
    resource_id: Mapped[str] = mapped_column(String(64))
    action: Mapped[str] = mapped_column(String(8))
    created_at: Mapped[Micros]
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[Micros]

    __table_args__ = (Index("ix_notify_delivery_due", "subscription_id", "event_number"),)
