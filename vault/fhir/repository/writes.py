"""Create, update (a partner's ``correct`` included, with its Provenance) and delete.

Writes use SQLAlchemy Core inside the transaction the caller opened (``Database.write``);
nothing here commits. What lands in the tables is done by the store
(``vault/store/writes.py``); what a write means (versions, Consent grants, Provenance, the
compartment) is decided here.

Over 500 lines: create, update, a partner's correction and delete share one preparation of
a body (validation, its compartment, its owner's check, one statement for a whole batch in
``prepare_many``) and one writing of a version; apart, each would reach into the others'.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, insert, select, text, true, update

from vault.consent.access import Interaction
from vault.consent.decision import visible
from vault.consent.family import drop_family, record_family
from vault.consent.representation import record_birth_date
from vault.consent.service import check_consent, drop_grants, replace_grants
from vault.fhir.repository.base import INTERACTIONS, ROW, R, not_found, resource_type_or_404
from vault.fhir.repository.history import History
from vault.fhir.resources import ID_PATTERN, validate_resource
from vault.kernel.db import pairs_in
from vault.kernel.errors import (
    BadRequest,
    Conflict,
    Forbidden,
    MethodNotAllowed,
    NotFound,
    PreconditionFailed,
    Unprocessable,
)
from vault.kernel.fhirdata import format_instant, split_reference
from vault.kernel.runtime import now_micros
from vault.store.index import clear_index, write_index
from vault.store.models import SHARED_OWNER, ResourceRow, SearchToken, VersionRow
from vault.store.reads import previous_version
from vault.store.registry import FAMILY_TYPES, ResourceType
from vault.store.writes import (
    DATA_KEY,
    INSERT_RESOURCE,
    INSERT_VERSION,
    Prepared,
    Stored,
    create_compartment_key,
    ensure_data_key,
    seal,
    version_row,
    write_internal,
)


def _parse_if_match(value: str) -> int:
    tag = value.strip()
    if tag.startswith("W/"):
        tag = tag[2:]
    tag = tag.strip('"')
    if not (tag.isascii() and tag.isdigit()) or len(tag) > 18:
        raise BadRequest('If-Match must be an ETag such as W/"3"')
    return int(tag)


class Writes(History):
    def create(
        self, conn: Connection, resource_type: str, body: Any, *, if_none_exist: str | None = None
    ) -> tuple[Stored, bool]:
        """Create with a server-assigned id. Returns (stored, created)."""
        spec = self._check_writable("c", resource_type)
        if if_none_exist is not None:
            self._lock_condition(conn, resource_type, if_none_exist)
            ids = self.find_ids(conn, resource_type, if_none_exist)
            if len(ids) > 1:
                raise PreconditionFailed("If-None-Exist matches more than one resource")
            if ids:
                if not self._ctx.allows("r", spec.name):
                    # Inside the write's transaction: the refusal is logged after it ends.
                    self._deny_write("read", spec.name, ids[0], None)
                    raise Forbidden(f"The access token's scopes do not allow reading {spec.name}")
                found = self._read(conn, resource_type, ids[0])
                self._record_write(conn, "read", found)
                return found, False
        resource_id = str(uuid.uuid4())
        prepared = self._prepare(conn, spec, body, resource_id=resource_id)
        stored = self._insert(conn, prepared, resource_id)
        self._record_write(conn, "create", stored)
        return stored, True

    def update(
        self,
        conn: Connection,
        resource_type: str,
        resource_id: str,
        body: Any,
        *,
        if_match: str | None = None,
    ) -> tuple[Stored, bool]:
        """Update, or create with the client's id. Returns (stored, created)."""
        spec = self._check_writable("u", resource_type)
        if not ID_PATTERN.match(resource_id):
            raise BadRequest("The id in the URL is not a valid FHIR id")
        if isinstance(body, dict) and body.get("id") != resource_id:
            raise BadRequest(
                "The id in the resource must match the id in the URL",
                expression=[f"{resource_type}.id"],
            )
        row = self._current_for_update(conn, resource_type, resource_id)
        expected = _parse_if_match(if_match) if if_match is not None else None
        if self._ctx.kind == "system":
            return self._correct(conn, spec, resource_id, body, row, expected), False
        if self._ctx.patient_id is not None and (
            row is None or row.patient_id != self._ctx.patient_id
        ):
            # No update-as-create for an inwoner's app (issue 12 B9): a free id and an id
            # of another inwoner answer alike, before the body is even looked at, so a
            # PUT cannot tell which ids exist. Apps create with POST.
            raise not_found(resource_type, resource_id)
        if row is None:
            if expected is not None:
                raise PreconditionFailed(f"{resource_type}/{resource_id} does not exist")
            prepared = self._prepare(conn, spec, body, resource_id=resource_id)
            if self._ctx.patient_id is not None and prepared.patient_id != self._ctx.patient_id:
                raise NotFound(f"{resource_type}/{resource_id} is not known")
            stored = self._insert(conn, prepared, resource_id)
            self._record_write(conn, "create", stored)
            return stored, True
        if self._ctx.patient_id is not None and row.patient_id != self._ctx.patient_id:
            raise not_found(resource_type, resource_id)
        if expected is not None and expected != row.version_id:
            raise PreconditionFailed(
                f"Version conflict: {resource_type}/{resource_id} is at version "
                f"{row.version_id}, not {expected}"
            )
        prepared = self._prepare(conn, spec, body, resource_id=resource_id)
        if prepared.patient_id != row.patient_id and not row.deleted:
            raise Unprocessable("A resource cannot move to another inwoner's compartment")
        stored = self._new_version(conn, prepared, row)
        self._record_write(conn, "update", stored)
        return stored, False

    def _correct(
        self,
        conn: Connection,
        spec: ResourceType,
        resource_id: str,
        body: Any,
        row: Any,
        expected: int | None,
    ) -> Stored:
        """A partner changes what a Consent lets it correct; a Provenance says who did."""

        def may(action: str) -> bool:
            found = conn.execute(
                select(R.pk).where(
                    R.pk == row.pk,
                    R.deleted.is_(False),
                    visible(self._ctx, ROW, action=action),
                    *self._restriction(spec),
                ),
                self._params,
            ).first()
            return found is not None

        if row is None or not may("access"):
            self._deny_write("update", spec.name, resource_id, row.patient_id if row else None)
            raise not_found(spec.name, resource_id)
        if spec.name == "Consent" or not may("correct"):
            self._deny_write("update", spec.name, resource_id, row.patient_id)
            raise Forbidden(
                f"The inwoner did not allow this client to change {spec.name}/{resource_id}"
            )
        if expected is not None and expected != row.version_id:
            raise PreconditionFailed(
                f"Version conflict: {spec.name}/{resource_id} is at version "
                f"{row.version_id}, not {expected}"
            )
        prepared = self._prepare(conn, spec, body, resource_id=resource_id)
        if prepared.patient_id != row.patient_id:
            raise Unprocessable("A resource cannot move to another inwoner's compartment")
        labels = self._labels(conn, row.pk)
        stored = self._new_version(conn, prepared, row)
        if self._labels(conn, row.pk) != labels:
            # Labels decide who else may see a resource: a partner's write never changes
            # that (docs/partner-writes.md); the inwoner labels her own data.
            self._deny_write("update", spec.name, resource_id, row.patient_id)
            raise Forbidden(
                "A partner cannot change meta.security; send the labels the resource has"
            )
        if not may("correct"):
            # The change would take the resource out of what was granted (e.g. a label).
            self._deny_write("update", spec.name, resource_id, row.patient_id)
            raise Forbidden("This change would take the resource outside your grant")
        self._provenance(conn, stored)
        self._record_write(conn, "update", stored)
        return stored

    @staticmethod
    def _labels(conn: Connection, pk: int) -> list[tuple[str | None, str]]:
        t = SearchToken.__table__.c
        rows = conn.execute(
            select(t.system, t.code_hash).where(t.resource_pk == pk, t.param == "_security")
        )
        return sorted(set((row.system, row.code_hash) for row in rows), key=str)

    def _provenance(self, conn: Connection, stored: Stored) -> None:
        ctx = self._ctx
        agent: dict[str, Any] = {
            "type": {
                "coding": [
                    {
                        "system": "http://terminology.hl7.org/CodeSystem/provenance-participant-type",
                        "code": "author",
                    }
                ]
            },
            "who": {"reference": ctx.practitioner or ctx.organization or "Organization/unknown"},
        }
        if ctx.practitioner and ctx.organization:
            agent["onBehalfOf"] = {"reference": ctx.organization}
        provenance = {
            "resourceType": "Provenance",
            "id": str(uuid.uuid4()),
            "target": [
                {
                    "reference": f"{stored.resource_type}/{stored.resource_id}"
                    f"/_history/{stored.version_id}"
                }
            ],
            "recorded": format_instant(stored.last_updated),
            "activity": {
                "coding": [
                    {
                        "system": "http://terminology.hl7.org/CodeSystem/v3-DataOperation",
                        "code": "UPDATE",
                    }
                ]
            },
            "agent": [agent],
        }
        write_internal(self._rt, conn, "Provenance", provenance, patient_id=stored.patient_id)

    def delete(self, conn: Connection, resource_type: str, resource_id: str) -> None:
        spec = self._check_writable("d", resource_type)
        row = self._current_for_update(conn, resource_type, resource_id)
        if row is None or (
            self._ctx.patient_id is not None and row.patient_id != self._ctx.patient_id
        ):
            raise not_found(resource_type, resource_id)
        if row.deleted:
            return
        if spec.name == "Patient":
            others = conn.execute(
                select(R.pk)
                .where(
                    R.patient_id == resource_id, R.deleted.is_(False), R.resource_type != "Patient"
                )
                .limit(1)
            ).first()
            if others is not None:
                raise Conflict(
                    "This Patient still has a plan, goals or other data; "
                    "delete those first or erase the vault"
                )
        now = self._next_instant(row.last_updated)
        version = row.version_id + 1
        conn.execute(
            update(ResourceRow)
            .where(R.pk == row.pk)
            .values(version_id=version, last_updated=now, deleted=True)
        )
        conn.execute(
            insert(VersionRow).values(
                resource_pk=row.pk,
                version_id=version,
                resource_type=resource_type,
                resource_id=resource_id,
                patient_id=row.patient_id,
                last_updated=now,
                deleted=True,
                body=None,
            )
        )
        # The labels stay: a deny by label must keep hiding the history of a deleted resource.
        clear_index(conn, row.pk, keep_labels=True)
        if spec.name == "Consent":
            drop_grants(conn, consent_pk=row.pk)
        if spec.name == "Group":
            drop_family(conn, family_id=resource_id)
        self._record_write(
            conn,
            "delete",
            Stored(resource_type, resource_id, version, now, True, None, row.patient_id, row.pk),
        )

    def _check_writable(self, interaction: Interaction, resource_type: str) -> ResourceType:
        spec = resource_type_or_404(resource_type)
        if not spec.writable:
            raise MethodNotAllowed(f"{spec.name} is written by the vault only")
        self._require(interaction, spec.name)
        if self._ctx.kind == "system" and interaction != "u":
            # Partners only correct what an inwoner's Consent lets them (see _correct).
            self._deny_write(INTERACTIONS[interaction], spec.name, "", None)
            raise Forbidden(f"This client may not create or delete {spec.name} resources")
        return spec

    def _lock_condition(self, conn: Connection, resource_type: str, criteria: str) -> None:
        # Two concurrent conditional creates with the same criteria must not both create.
        # SQLite serialises writers with BEGIN IMMEDIATE; PostgreSQL needs a lock.
        if conn.dialect.name == "postgresql":
            conn.execute(
                text("SELECT pg_advisory_xact_lock(hashtextextended(:k, 0))"),
                {"k": f"{resource_type}?{criteria}"},
            )

    def _current_for_update(self, conn: Connection, resource_type: str, resource_id: str) -> Any:
        stmt = select(R.pk, R.patient_id, R.version_id, R.last_updated, R.deleted).where(
            R.resource_type == resource_type, R.resource_id == resource_id
        )
        if conn.dialect.name == "postgresql":
            stmt = stmt.with_for_update()
        return conn.execute(stmt).first()

    def _prepare(
        self, conn: Connection, spec: ResourceType, body: Any, *, resource_id: str
    ) -> Prepared:
        return self.prepare_many(conn, [(spec, body, resource_id)])[0]

    def prepare_many(
        self, conn: Connection, items: Sequence[tuple[ResourceType, Any, str]]
    ) -> list[Prepared]:
        """Each ``(type, body, id)`` validated and placed in its compartment, as a write
        does before it stores anything; the first that cannot be raises. The compartments'
        owners are looked up in one statement for all of them: the bulk loader
        (``app/bulk_load.py``) prepares thousands at a time, each a round trip apart."""
        placed = [
            (spec, self._validated(spec, body, resource_id)) for spec, body, resource_id in items
        ]
        owners = [self._owner(conn, spec, data) for spec, data in placed]
        present = self._present(conn, {owner for owner in owners if owner is not None})
        prepared = []
        for (spec, data), owner in zip(placed, owners, strict=True):
            if owner is not None and owner not in present:
                raise Unprocessable(
                    f"{spec.name}.{spec.compartment} points at a Patient this vault does not hold",
                    expression=[f"{spec.name}.{spec.compartment}"],
                )
            patient_id = (
                data["id"] if spec.compartment == "self" else None if owner is None else owner[1]
            )
            prepared.append(Prepared(spec, data, patient_id))
        return prepared

    def _validated(self, spec: ResourceType, body: Any, resource_id: str) -> dict[str, Any]:
        if not isinstance(body, dict):
            raise BadRequest("The body must be a JSON object (a FHIR resource)")
        if body.get("resourceType") != spec.name:
            raise BadRequest(
                f"The body is a {str(body.get('resourceType'))[:40]!s}, expected {spec.name}",
                expression=["resourceType"],
            )
        data = dict(body)
        data["id"] = resource_id
        meta = data.get("meta")
        if meta is not None and not isinstance(meta, dict):
            raise BadRequest("meta must be an object", expression=[f"{spec.name}.meta"])
        # versionId and lastUpdated are the server's; placeholders keep validation honest.
        data["meta"] = {**(meta or {}), "versionId": "1", "lastUpdated": "1970-01-01T00:00:00Z"}
        validate_resource(spec, data)
        return data

    def _owner(
        self, conn: Connection, spec: ResourceType, data: dict[str, Any]
    ) -> tuple[str, str] | None:
        """The (type, id) of the compartment's owner that must already exist: None for a
        shared resource and for a compartment's own owner (a Patient, a family's Group)."""
        if spec.compartment is None:
            if self._ctx.patient_id is not None:
                raise Unprocessable(
                    f"{spec.name} is shared by all inwoners; it cannot be written for one inwoner"
                )
            return None
        where = f"{spec.name}.{spec.compartment}"
        if spec.compartment == "self":
            owner_type = spec.name
        else:
            owners = ("Patient", "Group") if spec.name in FAMILY_TYPES else ("Patient",)
            ref_param = next(p for p in spec.params if p.compartment)
            refs = {ref for ref in ref_param.extract(data) if ref[0] in owners}
            if spec.name == "Provenance":
                refs = self._patients_of(conn, data)
            if len(refs) != 1:
                raise Unprocessable(
                    f"{where} must point at exactly one inwoner's Patient"
                    + (" or one family's Group" if len(owners) > 1 else ""),
                    expression=[where],
                )
            owner_type, patient_id = refs.pop()
        # The family compartment (docs/family.md section 6) is written by the operator's
        # tools; a partner only corrects what a member's Consent lets it (``_correct``).
        if owner_type == "Group" and self._ctx.kind not in ("full", "system"):
            raise Unprocessable("A family plan is written by the operator", expression=[where])
        return None if spec.compartment == "self" else (owner_type, patient_id)

    def _present(self, conn: Connection, owners: set[tuple[str, str]]) -> set[tuple[str, str]]:
        """Which of these (type, id) owners the vault holds, not deleted."""
        if not owners:
            return set()
        rows = conn.execute(
            select(R.resource_type, R.resource_id).where(
                pairs_in(R.resource_type, R.resource_id, owners),
                R.deleted.is_(False),
                # A partner correcting a resource keeps it where it is (checked by the
                # caller); it need not be able to read the Patient itself.
                true() if self._ctx.kind == "system" else visible(self._ctx, ROW),
            ),
            self._params,
        ).all()
        return {(row[0], row[1]) for row in rows}

    def _patients_of(self, conn: Connection, data: dict[str, Any]) -> set[tuple[str, str]]:
        targets = [
            split_reference(t.get("reference"))
            for t in data.get("target") or []
            if isinstance(t, dict)
        ]
        pairs = [t for t in targets if t is not None]
        if not pairs:
            return set()
        rows = conn.execute(
            select(R.patient_id).where(pairs_in(R.resource_type, R.resource_id, pairs))
        ).all()
        return {("Patient", row.patient_id) for row in rows if row.patient_id}

    def _insert(self, conn: Connection, prepared: Prepared, resource_id: str) -> Stored:
        spec = prepared.spec
        if spec.compartment == "self":  # a Patient, or a family's Group: a key of its own
            create_compartment_key(self._rt, conn, resource_id, owner_type=spec.name)
        now = now_micros()
        pk = conn.execute(
            INSERT_RESOURCE,
            {
                "resource_type": spec.name,
                "resource_id": resource_id,
                "patient_id": prepared.patient_id,
                "version_id": 1,
                "last_updated": now,
                "deleted": False,
            },
        ).scalar_one()
        return self._write_version(
            conn, prepared, pk=pk, resource_id=resource_id, version=1, now=now
        )

    def _new_version(self, conn: Connection, prepared: Prepared, row: Any) -> Stored:
        now = self._next_instant(row.last_updated)
        version = row.version_id + 1
        if prepared.spec.compartment == "self":
            ensure_data_key(self._rt, conn, prepared.data["id"])
        result = conn.execute(
            update(ResourceRow)
            .where(R.pk == row.pk, R.version_id == row.version_id)
            .values(
                version_id=version, last_updated=now, deleted=False, patient_id=prepared.patient_id
            )
        )
        if result.rowcount != 1:
            raise PreconditionFailed("The resource changed while this update was made")
        clear_index(conn, row.pk)
        return self._write_version(
            conn, prepared, pk=row.pk, resource_id=prepared.data["id"], version=version, now=now
        )

    @staticmethod
    def _next_instant(previous: int) -> int:
        # lastUpdated must grow with every version, even when the clock does not.
        return max(now_micros(), previous + 1)

    def _write_version(
        self,
        conn: Connection,
        prepared: Prepared,
        *,
        pk: int,
        resource_id: str,
        version: int,
        now: int,
    ) -> Stored:
        spec = prepared.spec
        data = prepared.data
        key = conn.execute(DATA_KEY, {"owner": prepared.patient_id or SHARED_OWNER}).first()
        plaintext, sealed = seal(
            self._rt, prepared, key, resource_id=resource_id, version=version, now=now
        )
        conn.execute(
            INSERT_VERSION,
            version_row(
                prepared, pk=pk, resource_id=resource_id, version=version, now=now, body=sealed
            ),
        )
        write_index(self._rt, conn, prepared, pk)
        if spec.name == "Patient":
            record_birth_date(
                conn, patient_id=resource_id, patient=data, may_change=self._ctx.kind == "full"
            )
        if spec.name == "Group":
            record_family(
                conn, family_id=resource_id, group=data, may_change=self._ctx.kind == "full"
            )
        if spec.name == "Consent":
            assert prepared.patient_id is not None
            grants = check_consent(
                conn,
                data,
                patient_id=prepared.patient_id,
                now=now,
                writer=self._ctx.signer,
                previous=previous_version(self._rt, conn, pk, version),
            )
            replace_grants(
                conn,
                consent_pk=pk,
                patient_id=prepared.patient_id,
                grants=grants,
                blind=self._blind,
            )
        return Stored(
            spec.name, resource_id, version, now, False, plaintext, prepared.patient_id, pk
        )
