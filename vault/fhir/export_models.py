"""Tables of Bulk Data export jobs (``fhir/export.py``).

A job and its output live in the database, not in one worker's memory, so whichever
worker a status poll or a download reaches can answer it. The worker running a job holds a
lease on it (``lease_owner`` until ``lease_expires_at``) and renews it while it works; a job
whose lease ran out is taken over by another worker (``export.reclaim``), which goes on
from the first type not yet done (``types_done``) with the context and request stored in
``access`` and ``export_request``. The ndjson output is sealed
(AES-256-GCM) under a data key of the job's own, wrapped by the master key: deleting the
job's row destroys the only way to read its files.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, ForeignKey, Index, Integer, LargeBinary, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from vault.kernel.db import Base, Micros, Pk

__all__ = ["ExportFile", "ExportJob"]


class ExportJob(Base):
    __tablename__ = "bulk_export_job"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    owner: Mapped[str] = mapped_column(String(200))  # AccessContext.subject of the kick-off
    status: Mapped[str] = mapped_column(String(16))  # running, complete, error, cancelled
    request_url: Mapped[str] = mapped_column(Text)
    created_at: Mapped[Micros]
    transaction_time: Mapped[Micros]
    expires_at: Mapped[Micros]
    finished_at: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    progress: Mapped[str] = mapped_column(String(200), default="")
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    wrapped_key: Mapped[bytes] = mapped_column(LargeBinary)
    master_key_id: Mapped[str] = mapped_column(String(16))
    lease_owner: Mapped[str | None] = mapped_column(String(100), nullable=True)
    lease_expires_at: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    types_done: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    access: Mapped[str | None] = mapped_column(Text, nullable=True)  # the AccessContext, JSON
    export_request: Mapped[str | None] = mapped_column(Text, nullable=True)  # JSON

    __table_args__ = (Index("ix_bulk_export_job_expires", "expires_at"),)


class ExportFile(Base):
    __tablename__ = "bulk_export_file"
    pk: Mapped[Pk]
    job_id: Mapped[str] = mapped_column(
        String(64), ForeignKey("bulk_export_job.id", ondelete="CASCADE"), index=True
    )
    resource_type: Mapped[str] = mapped_column(String(40))
    count: Mapped[int] = mapped_column(Integer)
    body: Mapped[bytes] = mapped_column(LargeBinary)  # sealed ndjson
