"""The frozen figures of closed periods: one row per (organisation, period).

No personal data: only the published figures (suppressed ones as null), the k they were
suppressed with and when they were frozen. The groups of inwoners behind them are never
stored.
"""

from __future__ import annotations

from sqlalchemy import Integer, LargeBinary, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from vault.kernel.db import Base, BigIntPk, Micros

__all__ = ["FrozenFigures"]


class FrozenFigures(Base):
    __tablename__ = "report_frozen"
    id: Mapped[int] = mapped_column(BigIntPk, primary_key=True, autoincrement=True)
    organization: Mapped[str] = mapped_column(String(110))  # "Organization/x"
    period: Mapped[str] = mapped_column(String(16))
    k: Mapped[int] = mapped_column(Integer)
    frozen_at: Mapped[Micros]
    figures: Mapped[bytes] = mapped_column(LargeBinary)  # JSON: [[domain, measure, value]]

    __table_args__ = (UniqueConstraint("organization", "period", name="uq_report_frozen"),)
