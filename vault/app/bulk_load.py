"""Load many inwoners at once: the rows the API would write, in batches (issue 13).

A benchmark of 100,000 inwoners needs millions of resources and access-log records; written
one request at a time that takes hours. This loader writes the same rows in a fixed number
of statements per batch of inwoners, with the vault's own functions, so nothing here is a
second copy of how a row is made:

- a Patient (its data key made first) and a Consent (compiled into ``consent_grant`` rows)
  go through the repository's own write, as ``PUT`` with the operator's access would;
- every other resource is validated and placed in its compartment by the repository
  (``prepare_many``), then sealed with the inwoner's data key and indexed (blind tokens,
  references, dates) by the store's ``insert_records``, many per statement;
- access-log records are appended by the vault's ``AuditLog.append``: sealed AuditEvents,
  hash-chained per inwoner exactly as a partner's reads chain them, and stored at once as
  AuditEvent resources (``settled=True``, as the SQLite writer stores them under steady
  load), as a vault that has run for a while has them: only the newest records of a
  running vault wait in their links.

Consents are written after the batch's other resources: a grant on ``related`` data
records what the named resource references at the moment the Consent is written.

What it does not write: a change-notification outbox row for each resource other than
the Patient and Consent. A bulk load fills a vault before anyone subscribes to it; nobody
could have been notified.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from vault.audit.log import AuditRecord
from vault.consent.access import AccessContext
from vault.fhir.repository import Repository
from vault.kernel.runtime import Runtime
from vault.store.registry import RESOURCE_TYPES
from vault.store.writes import insert_records

__all__ = ["Inwoner", "Loaded", "bulk_load"]

# Resource types whose write has a side effect beyond its own rows (a data key, grants):
# these go through the repository's write one at a time.
_ONE_BY_ONE = frozenset({"Patient", "Consent"})


@dataclass(frozen=True, slots=True)
class Inwoner:
    """One inwoner's data: the Patient, everything else (each with its ``id``), and the
    access-log records about her, chained in this order after the data is written."""

    patient: dict[str, Any]
    resources: Sequence[dict[str, Any]] = ()
    access: Sequence[AuditRecord] = ()


@dataclass
class Loaded:
    inwoners: int = 0
    resources: int = 0
    access_records: int = 0
    seconds: float = 0.0
    batches: list[float] = field(default_factory=list)  # seconds per batch, in order


def _chunks(items: Iterable[Inwoner], size: int) -> Iterator[list[Inwoner]]:
    iterator = iter(items)
    while chunk := list(itertools.islice(iterator, size)):
        yield chunk


def bulk_load(
    runtime: Runtime,
    inwoners: Iterable[Inwoner],
    *,
    batch: int = 100,
    shared: Sequence[dict[str, Any]] = (),
) -> Loaded:
    """Write ``shared`` resources (Organizations, Practitioners) and then the inwoners,
    ``batch`` inwoners per transaction. Every body needs its ``id``. Returns counts."""
    repo = Repository(runtime, AccessContext.full("bulk-load"))
    loaded = Loaded()
    started = time.perf_counter()
    if shared:
        with runtime.db.write() as conn:
            for body in shared:
                repo.update(conn, body["resourceType"], body["id"], body)
        loaded.resources += len(shared)
    for chunk in _chunks(inwoners, batch):
        begun = time.perf_counter()
        with runtime.db.write() as conn:
            for inwoner in chunk:
                repo.update(conn, "Patient", inwoner.patient["id"], inwoner.patient)
            bodies = [body for inwoner in chunk for body in inwoner.resources]
            later = [body for body in bodies if body["resourceType"] in _ONE_BY_ONE]
            prepared = repo.prepare_many(
                conn,
                [
                    (RESOURCE_TYPES[body["resourceType"]], body, body["id"])
                    for body in bodies
                    if body["resourceType"] not in _ONE_BY_ONE
                ],
            )
            insert_records(runtime, conn, prepared, None)
            for body in later:
                repo.update(conn, body["resourceType"], body["id"], body)
            records = [record for inwoner in chunk for record in inwoner.access]
            runtime.audit.append(conn, records, settled=True)
        loaded.inwoners += len(chunk)
        loaded.resources += len(chunk) + len(prepared) + len(later)
        loaded.access_records += len(records)
        loaded.batches.append(time.perf_counter() - begun)
    loaded.seconds = time.perf_counter() - started
    return loaded
