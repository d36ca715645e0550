"""Incremental sync: bring a partner's copy in step with what the inwoner grants today.

A sync runs per resource type and per inwoner (or over everything granted), and keeps one
watermark for each: the newest ``meta.lastUpdated`` it has seen.

1. **Changes** — ``Type?_lastUpdated=ge{watermark - overlap}&_sort=_lastUpdated``: every
   version written since the last sync is upserted (FHIR R4 search, ``_lastUpdated``). The
   small overlap catches a write that committed just after the previous sync read, with a
   slightly older timestamp; versions the target already holds are skipped.
2. **Removals** — a grant that ends does not change the resources it covered, so no
   ``_lastUpdated`` search can see it. The sync therefore compares the *set of ids*:
   the full listing of what the client may see now against what the target holds; every id
   the target holds that the vault no longer returns is removed (``remove``) and reported
   as ``AccessRevoked``. The listing costs a full search, so it runs only when something
   hints at a change: the first sync, ``full=True``, a count (``_summary=count``) that
   differs from the target's, or a Consent naming the client that changed since the
   watermark. A resource newly granted through a wider Consent keeps its old
   ``lastUpdated``; the Consent change is what makes the sync list and fetch it.

We chose the id-set comparison over reading ``Consent/_history``: a partner does not see
every Consent version that matters (a deleted Consent is a tombstone, a period simply
ends), while the listing is exact whatever the reason for the removal.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol

from adapters.sdk.client import VaultClient, to_model
from adapters.sdk.errors import AccessRevoked, RequestRejected

__all__ = ["DEFAULT_TYPES", "SyncResult", "SyncTarget", "Synchroniser"]

DEFAULT_TYPES = ("CarePlan", "Goal", "CareTeam")
PAGE_SIZE = "500"  # the vault's largest page: fewest round trips for a listing


class SyncTarget(Protocol):
    """What a sync writes to: the partner's own records (``adapters.base.Adapter``)."""

    def transaction(self) -> AbstractContextManager[Any]:
        """One unit of work: one type for one inwoner, records and watermark together."""
        ...

    def get_watermark(self, key: str) -> str | None:
        """The stored watermark for ``key`` (``"Goal|<patient>"``), or None."""
        ...

    def set_watermark(self, key: str, value: str) -> None:
        """Store the watermark for ``key``, in the same transaction as the records."""
        ...

    def known(self, resource_type: str, patient_id: str | None) -> Mapping[str, str]:
        """Ids of ``resource_type`` held for ``patient_id`` (None: all), with versionId."""
        ...

    def upsert(self, resource: Any) -> None:
        """Insert or replace the record of ``resource`` (an R4B model)."""
        ...

    def remove(self, reference: str) -> None:
        """Delete the record of ``reference`` (``"Goal/<id>"``): no longer granted."""
        ...


@dataclass
class SyncResult:
    """What one sync did, as ``"Type/id"`` references."""

    upserted: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    listed: list[str] = field(default_factory=list)  # "Type|patient" keys fully compared

    @property
    def revoked(self) -> AccessRevoked | None:
        """The removals as one ``AccessRevoked`` (None when nothing was removed)."""
        return AccessRevoked(self.removed) if self.removed else None

    def raise_for_revoked(self) -> None:
        """Raise ``AccessRevoked`` if this sync removed anything."""
        if self.revoked is not None:
            raise self.revoked


def _instant(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def _format(moment: datetime) -> str:
    return moment.isoformat(timespec="microseconds").replace("+00:00", "Z")


class Synchroniser:
    """Runs syncs of ``types`` for ``patients`` (None: every inwoner that granted access)."""

    def __init__(
        self,
        client: VaultClient,
        target: SyncTarget,
        *,
        types: Sequence[str] = DEFAULT_TYPES,
        patients: Sequence[str] | None = None,
        overlap: timedelta = timedelta(seconds=5),
    ) -> None:
        self._client = client
        self._target = target
        self._types = tuple(types)
        self._patients: tuple[str | None, ...] = tuple(patients) if patients else (None,)
        self._overlap = overlap

    def sync(self, *, full: bool = False) -> SyncResult:
        """One sync of every type and inwoner; ``full`` forces the id-set comparison."""
        result = SyncResult()
        for patient_id in self._patients:
            consent_changed = self._consents_changed(patient_id) if not full else True
            for resource_type in self._types:
                with self._target.transaction():
                    self._sync_one(resource_type, patient_id, result, full or consent_changed)
        return result

    # -- steps -----------------------------------------------------------------------------

    def _consents_changed(self, patient_id: str | None) -> bool:
        marks = [self._target.get_watermark(_key(t, patient_id)) for t in self._types]
        if any(mark is None for mark in marks):
            return True
        oldest = min(_instant(m) for m in marks if m is not None)
        params = [*_patient_param("Consent", patient_id), ("_lastUpdated", f"ge{_format(oldest)}")]
        try:
            return self._client.count("Consent", params) > 0
        except RequestRejected as exc:
            if exc.status == 403:  # no Consent scope: cannot tell, so always compare
                return True
            raise

    def _sync_one(
        self, resource_type: str, patient_id: str | None, result: SyncResult, listing: bool
    ) -> None:
        key = _key(resource_type, patient_id)
        mark = self._target.get_watermark(key)
        newest = _instant(mark) if mark is not None else None
        base = [*_patient_param(resource_type, patient_id), ("_count", PAGE_SIZE)]
        known = dict(self._target.known(resource_type, patient_id))

        if mark is not None:
            since = _format(_instant(mark) - self._overlap)
            changes = [*base, ("_lastUpdated", f"ge{since}"), ("_sort", "_lastUpdated")]
            for data in self._client.search_json(resource_type, changes):
                newest = self._apply(data, known, result, newest)
            if not listing:
                listing = self._client.count(resource_type, base[:-1]) != len(known)

        if mark is None or listing:
            result.listed.append(key)
            visible: set[str] = set()
            for data in self._client.search_json(resource_type, base):
                visible.add(str(data["id"]))
                newest = self._apply(data, known, result, newest)
            for gone in sorted(set(known) - visible):
                reference = f"{resource_type}/{gone}"
                self._target.remove(reference)
                result.removed.append(reference)

        if newest is not None:
            self._target.set_watermark(key, _format(newest))

    def _apply(
        self,
        data: dict[str, Any],
        known: dict[str, str],
        result: SyncResult,
        newest: datetime | None,
    ) -> datetime | None:
        meta = data.get("meta") or {}
        version = str(meta.get("versionId", ""))
        resource_id = str(data["id"])
        if known.get(resource_id) != version:
            self._target.upsert(to_model(data))
            known[resource_id] = version
            result.upserted.append(f"{data['resourceType']}/{resource_id}")
        updated = meta.get("lastUpdated")
        if updated:
            moment = _instant(str(updated))
            if newest is None or moment > newest:
                return moment
        return newest


def _key(resource_type: str, patient_id: str | None) -> str:
    return f"{resource_type}|{patient_id or '*'}"


def _patient_param(resource_type: str, patient_id: str | None) -> Iterator[tuple[str, str]]:
    if patient_id is None:
        return
    if resource_type == "Patient":
        yield ("_id", patient_id)
    else:
        yield ("patient", patient_id)
