"""FHIR Bulk Data Access 2.0 export (https://hl7.org/fhir/uv/bulkdata/export.html).

Kick-off (``start``) writes a job row and runs the export in a background thread of the
worker that took the request; state and output live in the database (``export_models.py``),
so any worker answers the status poll and the downloads.

Only granted data leaves: every line is produced by ``Repository`` search pages built with
the requesting client's ``AccessContext`` — the same access decision (``_visible``, in SQL)
as every read and search, never a second copy of it. A new repository per page means a
grant revoked during a long export stops it from the next page on. Each page is written to
the access log as interaction ``export``.

Files are ndjson, at most ``FILE_LINES`` resources each, sealed with the job's own data
key; they live ``EXPIRES_SECONDS`` after the job finishes, then any request purges them
(and DELETE on the status URL cancels and purges at once). Group-level export is not
supported: the vault has no Group resource, so ``/Group/{id}/$export`` answers 404 and the
CapabilityStatement does not claim it.
"""

from __future__ import annotations

import logging
import secrets
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import urlencode

from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sqlalchemy import Connection, delete, insert, select, update

from vault.access import AccessContext
from vault.crypto import new_data_key
from vault.errors import BadRequest, Forbidden, NotFound
from vault.fhir.export_models import ExportFile, ExportJob
from vault.fhir.repository import Repository, SearchPage
from vault.fhir.resources import RESOURCE_TYPES, format_instant
from vault.fhir.search import SearchQuery
from vault.runtime import Runtime, now_micros

__all__ = [
    "EXPIRES_SECONDS",
    "FILE_LINES",
    "OUTPUT_FORMATS",
    "ExportRequest",
    "JobView",
    "cancel",
    "export_key_owner",
    "job_view",
    "manifest",
    "open_file",
    "purge_expired",
    "start",
]

log = logging.getLogger(__name__)

Level = Literal["system", "patient"]
OUTPUT_FORMATS = ("application/fhir+ndjson", "application/ndjson", "ndjson")
FILE_LINES = 1000
PAGE_SIZE = 500
EXPIRES_SECONDS = 3600
NONCE_BYTES = 12
# Types a partner never receives in an export, whatever its scopes: the access log is the
# inwoner's own (design section 1).
EXCLUDED = frozenset({"AuditEvent"})


@dataclass(frozen=True, slots=True)
class ExportRequest:
    level: Level
    types: tuple[str, ...]
    since: str | None  # a FHIR instant, as sent


@dataclass(frozen=True, slots=True)
class JobView:
    id: str
    status: str
    request_url: str
    transaction_time: int
    expires_at: int
    progress: str
    error: str | None
    files: tuple[tuple[int, str, int], ...]  # (file pk, resource type, count)


class _ExportRepository(Repository):
    """The repository, with one more read interaction: a page of an export."""

    def export_page(self, conn: Connection, query: SearchQuery) -> SearchPage:
        page = self._search(conn, query)
        self._record("export", page.matches, query=urlencode(query.applied))
        return page


def resolve_types(ctx: AccessContext, level: Level, requested: Sequence[str]) -> tuple[str, ...]:
    """The types to export: those asked for (or all), each readable with the token (403)."""
    candidates = [
        spec.name
        for spec in RESOURCE_TYPES.values()
        if spec.name not in EXCLUDED and (level == "system" or spec.compartment is not None)
    ]
    if not requested:
        return tuple(t for t in candidates if ctx.allows("s", t))
    chosen: list[str] = []
    for name in requested:
        if name not in candidates:
            raise BadRequest(f"'{name}' cannot be exported here", expression=["_type"])
        if not ctx.allows("s", name):
            raise Forbidden(f"The access token's scopes do not allow exporting {name}")
        if name not in chosen:
            chosen.append(name)
    return tuple(chosen)


def start(runtime: Runtime, ctx: AccessContext, request: ExportRequest, *, request_url: str) -> str:
    """Record a new job and start it in a background thread; returns the job id."""
    purge_expired(runtime)
    job_id = secrets.token_urlsafe(24)
    now = now_micros()
    with runtime.db.write() as conn:
        master = runtime.wrapping_key(conn)
        conn.execute(
            insert(ExportJob).values(
                id=job_id,
                owner=ctx.subject,
                status="running",
                request_url=request_url,
                created_at=now,
                transaction_time=now,
                expires_at=now + EXPIRES_SECONDS * 1_000_000,
                progress="",
                wrapped_key=master.wrap(new_data_key(), owner=export_key_owner(job_id)),
                master_key_id=master.key_id,
            )
        )
    thread = threading.Thread(
        target=_run, args=(runtime, ctx, job_id, request, now), name=f"export-{job_id[:8]}"
    )
    thread.daemon = True
    thread.start()
    return job_id


def export_key_owner(job_id: str) -> str:
    return f"export:{job_id}"


def _aead(runtime: Runtime, job_id: str, wrapped: bytes, key_id: str) -> AESGCM:
    return AESGCM(
        runtime.keys.keyring.unwrap(wrapped, owner=export_key_owner(job_id), key_id=key_id)
    )


def _aad(job_id: str, resource_type: str) -> bytes:
    return f"bulk-export\x00{job_id}\x00{resource_type}".encode()


def _status(runtime: Runtime, job_id: str) -> str | None:
    with runtime.db.read() as conn:
        found = conn.scalar(select(ExportJob.status).where(ExportJob.id == job_id))
    return None if found is None else str(found)


def _run(
    runtime: Runtime, ctx: AccessContext, job_id: str, request: ExportRequest, until: int
) -> None:
    try:
        with runtime.db.read() as conn:
            job = conn.execute(
                select(ExportJob.wrapped_key, ExportJob.master_key_id).where(ExportJob.id == job_id)
            ).one()
        aead = _aead(runtime, job_id, job.wrapped_key, job.master_key_id)
        for number, resource_type in enumerate(request.types, start=1):
            if not _export_type(runtime, ctx, job_id, request, resource_type, until, aead):
                return  # cancelled
            _set(runtime, job_id, progress=f"{number} of {len(request.types)} types done")
        _set(runtime, job_id, status="complete", finished_at=now_micros())
    except Exception as exc:
        log.exception("bulk export %s failed", job_id[:8])
        _set(runtime, job_id, status="error", error=type(exc).__name__, finished_at=now_micros())


def _set(runtime: Runtime, job_id: str, **values: Any) -> None:
    if values.get("finished_at") is not None:
        values["expires_at"] = values["finished_at"] + EXPIRES_SECONDS * 1_000_000
    with runtime.db.write() as conn:
        conn.execute(
            update(ExportJob)
            .where(ExportJob.id == job_id, ExportJob.status == "running")
            .values(**values)
        )


def _export_type(
    runtime: Runtime,
    ctx: AccessContext,
    job_id: str,
    request: ExportRequest,
    resource_type: str,
    until: int,
    aead: AESGCM,
) -> bool:
    params = [("_count", str(PAGE_SIZE)), ("_lastUpdated", f"le{format_instant(until)}")]
    if request.since is not None:
        params.append(("_lastUpdated", f"gt{request.since}"))
    lines: list[bytes] = []
    cursor = None
    while True:
        if _status(runtime, job_id) != "running":
            return False
        repo = _ExportRepository(runtime, ctx)
        query = repo.parse(resource_type, params, lenient=False)
        query.total = "none"
        query.cursor = cursor
        with runtime.db.read() as conn:
            page = repo.export_page(conn, query)
        lines.extend(stored.body for stored in page.matches if stored.body is not None)
        while len(lines) >= FILE_LINES:
            _write_file(runtime, job_id, resource_type, lines[:FILE_LINES], aead)
            lines = lines[FILE_LINES:]
        cursor = page.next_cursor
        if cursor is None:
            break
    if lines:
        _write_file(runtime, job_id, resource_type, lines, aead)
    return True


def _write_file(
    runtime: Runtime, job_id: str, resource_type: str, lines: list[bytes], aead: AESGCM
) -> None:
    nonce = secrets.token_bytes(NONCE_BYTES)
    body = b"\n".join(lines) + b"\n"
    sealed = nonce + aead.encrypt(nonce, body, _aad(job_id, resource_type))
    with runtime.db.write() as conn:
        conn.execute(
            insert(ExportFile).values(
                job_id=job_id, resource_type=resource_type, count=len(lines), body=sealed
            )
        )


def _job(conn: Connection, job_id: str, owner: str) -> Any:
    row = conn.execute(select(ExportJob.__table__).where(ExportJob.id == job_id)).first()
    # Another client's job is answered exactly like one that does not exist.
    if row is None or row.owner != owner or row.expires_at <= now_micros():
        raise NotFound("This export is not known (or has expired)")
    return row


def job_view(runtime: Runtime, ctx: AccessContext, job_id: str) -> JobView:
    """The job as its owner may see it; 404 for anyone else."""
    with runtime.db.read() as conn:
        job = _job(conn, job_id, ctx.subject)
        files = conn.execute(
            select(ExportFile.pk, ExportFile.resource_type, ExportFile.count)
            .where(ExportFile.job_id == job_id)
            .order_by(ExportFile.pk)
        ).all()
    return JobView(
        id=job.id,
        status=job.status,
        request_url=job.request_url,
        transaction_time=job.transaction_time,
        expires_at=job.expires_at,
        progress=job.progress,
        error=job.error,
        files=tuple((int(pk), str(kind), int(count)) for pk, kind, count in files),
    )


def manifest(view: JobView, *, file_url: str) -> dict[str, Any]:
    """The complete-status body (Bulk Data 2.0, "Response - Complete Status")."""
    return {
        "transactionTime": format_instant(view.transaction_time),
        "request": view.request_url,
        "requiresAccessToken": True,
        "output": [
            {"type": resource_type, "url": f"{file_url}/{pk}", "count": count}
            for pk, resource_type, count in view.files
        ],
        "error": [],
    }


def open_file(runtime: Runtime, ctx: AccessContext, job_id: str, file_pk: int) -> bytes:
    """The ndjson of one output file, for the job's owner only."""
    with runtime.db.read() as conn:
        job = _job(conn, job_id, ctx.subject)
        row = conn.execute(
            select(ExportFile.resource_type, ExportFile.body).where(
                ExportFile.job_id == job_id, ExportFile.pk == file_pk
            )
        ).first()
    if row is None:
        raise NotFound("This export file is not known")
    aead = _aead(runtime, job_id, job.wrapped_key, job.master_key_id)
    sealed: bytes = row.body
    return aead.decrypt(sealed[:NONCE_BYTES], sealed[NONCE_BYTES:], _aad(job_id, row.resource_type))


def cancel(runtime: Runtime, ctx: AccessContext, job_id: str) -> None:
    """Stop a running export, or delete a finished one's files; 404 for anyone else's."""
    with runtime.db.write() as conn:
        _job(conn, job_id, ctx.subject)
        _purge(conn, [job_id])


def _purge(conn: Connection, job_ids: Sequence[str]) -> None:
    if job_ids:
        conn.execute(delete(ExportFile).where(ExportFile.job_id.in_(job_ids)))
        conn.execute(delete(ExportJob).where(ExportJob.id.in_(job_ids)))


def purge_expired(runtime: Runtime) -> int:
    """Delete jobs (and files) past their expiry; returns how many."""
    now = now_micros()
    with runtime.db.write() as conn:
        expired = list(conn.scalars(select(ExportJob.id).where(ExportJob.expires_at <= now)))
        _purge(conn, expired)
    return len(expired)
