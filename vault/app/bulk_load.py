"""Load many inwoners at once: the rows the API would write, in batches (issue 13).

A benchmark of 100,000 inwoners needs millions of resources and access-log records; written
one request at a time that takes hours. This loader writes the same rows in a fixed number
of statements per batch of inwoners, with the vault's own functions, so nothing here is a
second copy of how a row is made:

- a Patient (its data key made first) and a Consent (compiled into ``consent_grant`` rows)
  go through the repository's own write, as ``PUT`` with the operator's access would;
- every other resource is checked (``checked``: valid R4) and placed in its compartment
  by the repository (``place_many``), then sealed with the inwoner's data key and indexed
  (blind tokens, references, dates) by the store's ``insert_records``, many per statement;
- access-log records are appended by the vault's ``AuditLog.append``: sealed AuditEvents,
  hash-chained per inwoner exactly as a partner's reads chain them, and stored at once as
  AuditEvent resources (``settled=True``, as the SQLite writer stores them under steady
  load), as a vault that has run for a while has them: only the newest records of a
  running vault wait in their links.

Checking a body against its R4 model is about half the loader's work on SQLite
(docs/performance.md), and needs no database. Given a process pool (``checker``), the
loader checks the next batch's bodies there while it writes this one: SQLite takes one
writer at a time, so otherwise the machine's other cores stand idle.

Consents are written after the batch's other resources: a grant on ``related`` data
records what the named resource references at the moment the Consent is written.

What it does not write: a change-notification outbox row for each resource other than
the Patient and Consent. A bulk load fills a vault before anyone subscribes to it; nobody
could have been notified.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass, field
from typing import Any, TypeVar

from vault.audit.log import AuditRecord
from vault.consent.access import AccessContext
from vault.fhir.repository import Repository
from vault.fhir.repository.writes import Checked, checked
from vault.kernel.runtime import Runtime
from vault.store.writes import insert_records

__all__ = ["Inwoner", "Loaded", "bulk_load"]

_T = TypeVar("_T")

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
    checker: Executor | None = None,
) -> Loaded:
    """Write ``shared`` resources (Organizations, Practitioners) and then the inwoners,
    ``batch`` inwoners per transaction. Every body needs its ``id``. With ``checker`` the
    bodies of each batch are checked there, one batch ahead of the writing. Returns counts."""
    repo = Repository(runtime, AccessContext.full("bulk-load"))
    loaded = Loaded()
    started = time.perf_counter()
    if shared:
        with runtime.db.write() as conn:
            for body in shared:
                repo.update(conn, body["resourceType"], body["id"], body)
        loaded.resources += len(shared)
    # Each batch's checks are set going when it is taken, one batch ahead of the writing.
    batches = ((chunk, _checks(checker, chunk)) for chunk in _chunks(inwoners, batch))
    for chunk, checks in _one_ahead(batches):
        begun = time.perf_counter()
        with runtime.db.write() as conn:
            for inwoner in chunk:
                repo.update(conn, "Patient", inwoner.patient["id"], inwoner.patient)
            prepared = repo.place_many(conn, checks())  # a body that fails raises here
            insert_records(runtime, conn, prepared, None)
            later = [body for inwoner in chunk for body in _one_by_one(inwoner)]
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


def _one_by_one(inwoner: Inwoner) -> list[dict[str, Any]]:
    return [body for body in inwoner.resources if body["resourceType"] in _ONE_BY_ONE]


def _checks(checker: Executor | None, chunk: list[Inwoner]) -> Callable[[], list[Checked]]:
    """The checked bodies of ``chunk`` (all but its Patients' and Consents'), to be asked
    for when they are written: checked then, or under way in ``checker`` from now on."""
    bodies = [
        body
        for inwoner in chunk
        for body in inwoner.resources
        if body["resourceType"] not in _ONE_BY_ONE
    ]
    if checker is None:
        return lambda: _check_all(bodies)
    return checker.submit(_check_all, bodies).result


def _check_all(bodies: list[dict[str, Any]]) -> list[Checked]:
    """``checked`` of each body, as its own ``id``; a function of this module, so a
    process pool can run it."""
    return [checked(body["resourceType"], body, body["id"]) for body in bodies]


def _one_ahead(items: Iterable[_T]) -> Iterator[_T]:
    """``items`` in order, each once the one after it has been taken: what taking an item
    sets going (its batch's checks) runs while the one before it is written."""
    iterator = iter(items)
    taken = list(itertools.islice(iterator, 1))
    for following in iterator:
        taken.append(following)
        yield taken.pop(0)
    yield from taken
