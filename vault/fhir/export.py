"""FHIR Bulk Data Access 2.0 export (https://hl7.org/fhir/uv/bulkdata/export.html).

Kick-off (``start``) writes a job row and runs the export in a background thread of the
worker that took the request; state and output live in the database (``export_models.py``),
so any worker answers the status poll and the downloads.

**A worker that dies does not strand its jobs.** The running worker holds a lease on the
job (``LEASE_SECONDS``) and renews it as it goes; every output file is written only in a
transaction that proves the lease is still its own (a fence: a stalled worker that lost its
job cannot add lines to it). A job whose lease ran out is taken over (``reclaim``) by the
next worker that starts (``reclaim_stranded``, from the app's lifespan) or that answers a
status poll for it: the new worker deletes the files of the types not yet done and goes on
from there, with the same transaction time, the caller's stored ``AccessContext`` (scopes,
not grants: every page still asks the consent engine), and only while the client that asked
is still registered.

Only granted data leaves: every line is produced by ``Repository`` search pages built with
the requesting client's ``AccessContext``: the same access decision
(``consent/decision.py``, in SQL) as every read and search, never a second copy of it. A
new repository per page means a grant revoked during a long export stops it from the next
page on. Each page is written to the access log as interaction ``export``.

Files are ndjson, at most ``FILE_LINES`` resources each, sealed with the job's own data
key; they live ``EXPIRES_SECONDS`` after the job finishes, then any request purges them
(and DELETE on the status URL cancels and purges at once). Group-level export is not
supported: ``/Group/{id}/$export`` answers the same 404 for every id (a family's Group
included; a Patient-level export carries the family compartments the client may see) and
the CapabilityStatement does not claim it.

Over 500 lines: Bulk Data export is one job's life (kick-off, worker, lease, files, status,
download, purge), and its parts share the job's state.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import socket
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sqlalchemy import Connection, delete, insert, select, update

from vault.consent.access import AccessContext, Permissions
from vault.fhir.export_models import ExportFile, ExportJob
from vault.fhir.repository import Repository
from vault.kernel.crypto import new_data_key
from vault.kernel.errors import BadRequest, Forbidden, NotFound
from vault.kernel.fhirdata import format_instant
from vault.kernel.runtime import Runtime, now_micros
from vault.store.keys import wrapping_key
from vault.store.registry import RESOURCE_TYPES

__all__ = [
    "EXPIRES_SECONDS",
    "FILE_LINES",
    "LEASE_SECONDS",
    "OUTPUT_FORMATS",
    "ExportRequest",
    "JobView",
    "cancel",
    "export_key_owner",
    "job_view",
    "manifest",
    "open_file",
    "purge_expired",
    "reclaim",
    "reclaim_stranded",
    "start",
    "worker_id",
]

log = logging.getLogger(__name__)

Level = Literal["system", "patient"]
OUTPUT_FORMATS = ("application/fhir+ndjson", "application/ndjson", "ndjson")
FILE_LINES = 1000
PAGE_SIZE = 500
EXPIRES_SECONDS = 3600
LEASE_SECONDS = 30  # a job whose worker has not renewed it for this long is taken over
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


class _LeaseLost(Exception):
    """This worker no longer holds the job: it was cancelled or taken over."""


_worker: tuple[int, str] | None = None


def worker_id() -> str:
    """This process's name as a lease owner (new after a fork: a child is another worker)."""
    global _worker
    if _worker is None or _worker[0] != os.getpid():
        _worker = (os.getpid(), f"{socket.gethostname()[:60]}:{os.getpid()}:{secrets.token_hex(4)}")
    return _worker[1]


def _lease_until() -> int:
    return now_micros() + LEASE_SECONDS * 1_000_000


def _context_json(ctx: AccessContext) -> str:
    permissions = {
        "letters": {t: sorted(ls) for t, ls in ctx.permissions.letters.items()},
        "queries": {
            t: [list(map(list, q)) for q in qs] for t, qs in ctx.permissions.queries.items()
        },
    }
    return json.dumps(
        {
            "subject": ctx.subject,
            "kind": ctx.kind,
            "patient_id": ctx.patient_id,
            "organization": ctx.organization,
            "client_id": ctx.client_id,
            "account_id": ctx.account_id,
            "permissions": permissions,
            "purposes": sorted(ctx.purposes),
            "practitioner": ctx.practitioner,
            "representative": ctx.representative,
        }
    )


def _context_from(text: str) -> AccessContext:
    data = json.loads(text)
    stored = data.pop("permissions")
    purposes = frozenset(data.pop("purposes", []))
    # A job stored before permissions were always explicit has null: that meant everything.
    permissions = Permissions.everything()
    if stored is not None:
        permissions = Permissions(
            {t: frozenset(ls) for t, ls in stored["letters"].items()},
            {
                t: tuple(tuple((str(k), str(v)) for k, v in q) for q in qs)
                for t, qs in stored["queries"].items()
            },
        )
    return AccessContext(**data, permissions=permissions, purposes=purposes)


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
        master = wrapping_key(conn, runtime.keys.keyring)
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
                lease_owner=worker_id(),
                lease_expires_at=_lease_until(),
                types_done=0,
                access=_context_json(ctx),
                export_request=json.dumps(
                    {"level": request.level, "types": list(request.types), "since": request.since}
                ),
            )
        )
    _launch(runtime, ctx, job_id, request, now, 0)
    return job_id


def _launch(
    runtime: Runtime,
    ctx: AccessContext,
    job_id: str,
    request: ExportRequest,
    until: int,
    types_done: int,
) -> None:
    thread = threading.Thread(
        target=_run,
        args=(runtime, ctx, job_id, request, until, types_done),
        name=f"export-{job_id[:8]}",
    )
    thread.daemon = True
    thread.start()


# Whether a client is still registered: the authorization server's answer, which the app
# registers (``vault.oauth.clients.is_registered``); this layer cannot read client tables.
ClientRegistered = Callable[[Connection, str], bool]


def reclaim(runtime: Runtime, job_id: str, *, client_registered: ClientRegistered) -> bool:
    """Take over ``job_id`` if it is running and its lease ran out; True if this worker now
    runs it. Safe when many workers try at once: one compare-and-set wins. A job whose
    client was removed meanwhile ends with the error ``ClientRemoved``."""
    # Long on purpose: one compare-and-set transaction that must stay whole: read the lease, take
    # it, check, clean.
    now = now_micros()
    me = worker_id()
    with runtime.db.write() as conn:
        job = conn.execute(
            select(ExportJob.__table__).where(
                ExportJob.id == job_id,
                ExportJob.status == "running",
                (ExportJob.lease_expires_at.is_(None)) | (ExportJob.lease_expires_at < now),
            )
        ).first()
        if job is None:
            return False
        took = conn.execute(
            update(ExportJob)
            .where(
                ExportJob.id == job_id,
                ExportJob.status == "running",
                # the lease seen above, unchanged: no other worker took it meanwhile
                ExportJob.lease_owner.is_(None)
                if job.lease_owner is None
                else ExportJob.lease_owner == job.lease_owner,
                ExportJob.lease_expires_at.is_(None)
                if job.lease_expires_at is None
                else ExportJob.lease_expires_at == job.lease_expires_at,
            )
            .values(lease_owner=me, lease_expires_at=_lease_until())
        )
        if took.rowcount != 1:
            return False
        reason = _unresumable(conn, job, client_registered)
        if reason is not None:
            conn.execute(
                update(ExportJob)
                .where(ExportJob.id == job_id)
                .values(
                    status="error",
                    error=reason,
                    finished_at=now,
                    expires_at=now + EXPIRES_SECONDS * 1_000_000,
                )
            )
            log.warning("bulk export %s cannot be resumed: %s", job_id[:8], reason)
            return False
        stored = json.loads(job.export_request)
        request = ExportRequest(stored["level"], tuple(stored["types"]), stored["since"])
        # Lines of a type the dead worker had not finished are written again from the start.
        conn.execute(
            delete(ExportFile).where(
                ExportFile.job_id == job_id,
                ExportFile.resource_type.in_(request.types[job.types_done :]),
            )
        )
    log.info("bulk export %s taken over after its worker stopped", job_id[:8])
    _launch(
        runtime, _context_from(job.access), job_id, request, job.transaction_time, job.types_done
    )
    return True


def _unresumable(conn: Connection, job: Any, client_registered: ClientRegistered) -> str | None:
    if job.access is None or job.export_request is None:
        return "WorkerLost"  # started by a version that stored no context to resume with
    client_id = json.loads(job.access).get("client_id")
    if client_id is not None and not client_registered(conn, client_id):
        return "ClientRemoved"
    return None


def reclaim_stranded(runtime: Runtime, *, client_registered: ClientRegistered) -> int:
    """Take over every running job whose lease ran out (at start-up); returns how many."""
    now = now_micros()
    with runtime.db.read() as conn:
        stranded = list(
            conn.scalars(
                select(ExportJob.id).where(
                    ExportJob.status == "running",
                    (ExportJob.lease_expires_at.is_(None)) | (ExportJob.lease_expires_at < now),
                )
            )
        )
    return sum(reclaim(runtime, job_id, client_registered=client_registered) for job_id in stranded)


def export_key_owner(job_id: str) -> str:
    return f"export:{job_id}"


def _aead(runtime: Runtime, job_id: str, wrapped: bytes, key_id: str) -> AESGCM:
    return AESGCM(
        runtime.keys.keyring.unwrap(wrapped, owner=export_key_owner(job_id), key_id=key_id)
    )


def _aad(job_id: str, resource_type: str) -> bytes:
    return f"bulk-export\x00{job_id}\x00{resource_type}".encode()


class _Lease:
    """This worker's hold on one job: renewed while it works, checked on every write."""

    def __init__(self, runtime: Runtime, job_id: str) -> None:
        self.runtime = runtime
        self.job_id = job_id
        self.owner = worker_id()
        self._renewed = time.monotonic()

    def hold(self, conn: Connection) -> None:
        """Renew the lease inside ``conn``'s write transaction, or raise ``_LeaseLost``."""
        renewed = conn.execute(
            update(ExportJob)
            .where(
                ExportJob.id == self.job_id,
                ExportJob.status == "running",
                ExportJob.lease_owner == self.owner,
            )
            .values(lease_expires_at=_lease_until())
        )
        if renewed.rowcount != 1:
            raise _LeaseLost
        self._renewed = time.monotonic()

    def renew_if_due(self) -> None:
        """Renew when a third of the lease has passed (a write per page would be waste);
        otherwise only check, so a cancel stops the export at the next page."""
        if time.monotonic() - self._renewed >= LEASE_SECONDS / 3:
            with self.runtime.db.write() as conn:
                self.hold(conn)
            return
        with self.runtime.db.read() as conn:
            owner = conn.scalar(
                select(ExportJob.lease_owner).where(
                    ExportJob.id == self.job_id, ExportJob.status == "running"
                )
            )
        if owner != self.owner:
            raise _LeaseLost

    def set(self, **values: Any) -> None:
        """Change the job, only while this worker holds it."""
        if values.get("finished_at") is not None:
            values["expires_at"] = values["finished_at"] + EXPIRES_SECONDS * 1_000_000
        with self.runtime.db.write() as conn:
            self.hold(conn)
            conn.execute(update(ExportJob).where(ExportJob.id == self.job_id).values(**values))


def _run(
    runtime: Runtime,
    ctx: AccessContext,
    job_id: str,
    request: ExportRequest,
    until: int,
    types_done: int = 0,
) -> None:
    lease = _Lease(runtime, job_id)
    try:
        with runtime.db.read() as conn:
            job = conn.execute(
                select(ExportJob.wrapped_key, ExportJob.master_key_id).where(ExportJob.id == job_id)
            ).one()
        aead = _aead(runtime, job_id, job.wrapped_key, job.master_key_id)
        for number, resource_type in enumerate(request.types, start=1):
            if number <= types_done:
                continue  # finished by the worker this job was taken over from
            _export_type(runtime, ctx, lease, request, resource_type, until, aead)
            lease.set(progress=f"{number} of {len(request.types)} types done", types_done=number)
        lease.set(status="complete", finished_at=now_micros(), lease_expires_at=None)
    except _LeaseLost:
        return  # cancelled, or another worker runs it now
    except Exception as exc:
        log.exception("bulk export %s failed", job_id[:8])
        try:
            lease.set(status="error", error=type(exc).__name__, finished_at=now_micros())
        except _LeaseLost:
            return


def _export_type(
    runtime: Runtime,
    ctx: AccessContext,
    lease: _Lease,
    request: ExportRequest,
    resource_type: str,
    until: int,
    aead: AESGCM,
) -> None:
    # In order of the last change: the pages walk the type's (resource_type, last_updated)
    # index from where the last one ended (docs/performance.md, export).
    params = [
        ("_count", str(PAGE_SIZE)),
        ("_sort", "_lastUpdated"),
        ("_lastUpdated", f"le{format_instant(until)}"),
    ]
    if request.since is not None:
        params.append(("_lastUpdated", f"gt{request.since}"))
    lines: list[bytes] = []
    cursor = None
    while True:
        lease.renew_if_due()
        repo = Repository(runtime, ctx)
        query = repo.parse(resource_type, params, lenient=False)
        query.total = "none"
        query.cursor = cursor
        with runtime.db.read() as conn:
            page = repo.export_page(conn, query)
        lines.extend(stored.body for stored in page.matches if stored.body is not None)
        while len(lines) >= FILE_LINES:
            _write_file(lease, resource_type, lines[:FILE_LINES], aead)
            lines = lines[FILE_LINES:]
        cursor = page.next_cursor
        if cursor is None:
            break
    if lines:
        _write_file(lease, resource_type, lines, aead)


def _write_file(lease: _Lease, resource_type: str, lines: list[bytes], aead: AESGCM) -> None:
    job_id = lease.job_id
    nonce = secrets.token_bytes(NONCE_BYTES)
    body = b"\n".join(lines) + b"\n"
    sealed = nonce + aead.encrypt(nonce, body, _aad(job_id, resource_type))
    with lease.runtime.db.write() as conn:
        lease.hold(conn)  # the fence: no file for a job this worker no longer holds
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


def job_view(
    runtime: Runtime, ctx: AccessContext, job_id: str, *, client_registered: ClientRegistered
) -> JobView:
    """The job as its owner may see it; 404 for anyone else. A poll of a running job whose
    worker stopped renewing its lease takes the job over in this worker."""
    with runtime.db.read() as conn:
        job = _job(conn, job_id, ctx.subject)
    if job.status == "running" and (job.lease_expires_at or 0) < now_micros():
        reclaim(runtime, job_id, client_registered=client_registered)
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
    body = aead.decrypt(sealed[:NONCE_BYTES], sealed[NONCE_BYTES:], _aad(job_id, row.resource_type))
    # The file was made under the grants of its transaction time; it is served under
    # the grants of now (issue 11: a revoked or narrowed grant holds for files too).
    repo = Repository(runtime, ctx)
    with runtime.db.read() as conn:
        kept = repo.still_granted(
            conn,
            str(row.resource_type),
            [line for line in body.split(b"\n") if line.strip()],
            file_url=f"$export-file/{job_id[:8]}/{file_pk}",
        )
    return b"".join(line + b"\n" for line in kept)


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
